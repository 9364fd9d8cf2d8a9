"""The PyTorch side of locate: every module call's output, by module path, from forward hooks.

Runs in a worker process of its own (:class:`onnxparity._process.Service`). A pre-hook notes
which call encloses which and which calls produced a call's inputs (by tensor identity within one
forward); the hook copies the output at once, since an in-place module after it (``ReLU(inplace=
True)``) would overwrite the tensor. A module called twice (a block's shared ReLU) gives two calls.
"""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError, first_line


class TorchCapture:
    """``records()`` describes each module call in execution order; ``run(x, wanted)`` returns their outputs."""

    def __init__(self, path: str, architecture: str | None, input_shape: tuple[int, ...], torch_kwargs=None,
                 trust: dict | None = None):
        import torch

        from onnxparity.models.torch_io import load_module
        from onnxparity.trust import Trust

        self._torch = torch
        self.model = load_module(path, architecture, kwargs=torch_kwargs, trust=Trust.from_dict(trust))
        self.model.eval()
        self._paths = {m: name for name, m in self.model.named_modules()}
        for module in self._paths:
            module.register_forward_pre_hook(self._enter)
            module.register_forward_hook(self._exit)
        self._wanted: set[int] = set()
        probe = np.zeros((2, *input_shape), np.float32)
        try:
            self._forward(probe)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the model raises for a wrong shape
            raise InputError(f"{path}: the model does not take input shape {list(input_shape)} "
                             f"({first_line(exc)})") from None
        self._records = self._finish()

    def _forward(self, x: np.ndarray) -> None:
        torch = self._torch
        self._calls, self._exits, self._stack, self._owner, self._keep, self._out = [], [], [], {}, [], {}
        self._counts: dict[str, int] = {}
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            self._input_id = id(tensor)
            self._keep.append(tensor)
            self.model(tensor)

    def _tensors(self, value) -> list:
        torch = self._torch
        if isinstance(value, torch.Tensor):
            return [value]
        if isinstance(value, dict):
            return [t for v in value.values() for t in self._tensors(v)]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in self._tensors(v)]
        return []

    def _enter(self, module, args):
        entry = len(self._calls)
        path = self._paths[module]
        producers = [-1 if id(t) == self._input_id else self._owner.get(id(t)) for t in self._tensors(args)]
        self._calls.append({"path": path, "kind": type(module).__name__, "call": self._counts.get(path, 0),
                            "parent": self._stack[-1] if self._stack else None, "producers": producers,
                            "container": any(True for _ in module.children())})
        self._counts[path] = self._counts.get(path, 0) + 1
        self._stack.append(entry)

    def _exit(self, module, args, output):
        entry = self._stack.pop()
        tensors = self._tensors(output)
        self._keep.extend(tensors)
        for t in tensors:
            self._owner[id(t)] = entry
        call = self._calls[entry]
        call["n_outputs"] = len(tensors)
        if tensors:
            position = len(self._exits)
            self._exits.append(entry)
            call["shape"] = [int(d) for d in tensors[0].shape[1:]]
            if position in self._wanted:
                self._out[position] = tensors[0].detach().cpu().numpy().copy()

    def _finish(self) -> list[dict]:
        position = {entry: i for i, entry in enumerate(self._exits)}
        root = type(self.model).__name__
        records = []
        for i, entry in enumerate(self._exits):
            c = self._calls[entry]
            parent = c["parent"]
            while parent is not None and parent not in position:
                parent = self._calls[parent]["parent"]
            name = c["path"] or f"({root})"
            if self._counts[c["path"]] > 1:
                name += f"#{c['call'] + 1}"
            records.append({
                "index": i, "name": name, "path": c["path"], "call": c["call"], "kind": c["kind"],
                "parent": None if parent is None else position[parent],
                "inputs": [p if p in (-1, None) else position.get(p) for p in c["producers"]],
                "shape": c["shape"], "n_outputs": c["n_outputs"], "scope": None, "container": c["container"],
            })
        return records

    def records(self) -> list[dict]:
        return self._records

    def run(self, x: np.ndarray, wanted: list[int]) -> dict[int, np.ndarray]:
        self._wanted = set(wanted)
        self._forward(x)
        if len(self._exits) != len(self._records):
            raise InputError("the model ran a different sequence of modules on this batch than on the first; "
                             "locate needs a model whose forward does not branch on the data")
        out, self._out, self._keep = self._out, {}, []
        return out
