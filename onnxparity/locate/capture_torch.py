"""The PyTorch side of locate: every module call's output, by module path, from forward hooks.

Runs in a worker process of its own (:class:`onnxparity._process.Service`). A pre-hook notes
which call encloses which and which calls produced a call's inputs (by tensor identity within one
forward); the hook copies the output at once, since an in-place module after it (``ReLU(inplace=
True)``) would overwrite the tensor. A module called twice (a block's shared ReLU) gives two calls;
a call with several outputs (an attention returning its weights too) is compared on its first.
Inputs are matched with ``forward``'s parameters by name, else by order, as the parity runner does;
input ``k`` is producer ``-(k + 1)``.
"""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError, first_line


class TorchCapture:
    """``records()`` describes each module call in execution order; ``run(x, wanted)`` returns their outputs."""

    def __init__(self, path: str, architecture: str | None, probe: dict[str, np.ndarray], torch_kwargs=None,
                 trust: dict | None = None):
        import torch

        from onnxparity.models.torch_io import load_torch_file
        from onnxparity.runners import match_names
        from onnxparity.runners.torch import forward_parameters
        from onnxparity.trust import Trust

        self._torch = torch
        self.model = load_torch_file(path, architecture, kwargs=torch_kwargs, trust=Trust.from_dict(trust),
                                     submodules=True)
        try:
            self.model.eval()
        except (NotImplementedError, RuntimeError):  # an ExportedProgram's module has its mode baked in
            pass
        self._by_name = len(probe) > 1 and match_names(list(probe), forward_parameters(self.model))["by"] == "name"
        self._paths = {m: name for name, m in self.model.named_modules()}
        for module in self._paths:
            module.register_forward_pre_hook(self._enter, with_kwargs=True)
            module.register_forward_hook(self._exit)
        self._wanted: set[int] = set()
        try:
            self._forward(probe)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the model raises for a wrong shape
            shapes = ", ".join(f"{k} {v.dtype}{list(v.shape[1:])}" for k, v in probe.items())
            raise InputError(f"{path}: the model does not take inputs {shapes} ({first_line(exc)})") from None
        self._records = self._finish()

    def _forward(self, feeds: dict[str, np.ndarray]) -> None:
        torch = self._torch
        self._calls, self._exits, self._stack, self._owner, self._keep, self._out = [], [], [], {}, [], {}
        self._counts: dict[str, int] = {}
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(np.ascontiguousarray(x)) for k, x in feeds.items()}
            self._input_ids = {id(t): -(k + 1) for k, t in enumerate(tensors.values())}
            self._keep.extend(tensors.values())
            if self._by_name:
                self.model(**tensors)
            else:
                self.model(*tensors.values())

    def _tensors(self, value) -> list:
        from onnxparity._io import flatten_outputs

        return [t for t in flatten_outputs(value) if isinstance(t, self._torch.Tensor)]

    def _enter(self, module, args, kwargs):
        entry = len(self._calls)
        path = self._paths[module]
        producers = [self._input_ids.get(id(t), self._owner.get(id(t))) for t in self._tensors([args, kwargs])]
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
                "inputs": [p if p is None or p < 0 else position.get(p) for p in c["producers"]],
                "shape": c["shape"], "n_outputs": c["n_outputs"], "scope": None, "container": c["container"],
            })
        return records

    def records(self) -> list[dict]:
        return self._records

    def run(self, feeds: dict[str, np.ndarray], wanted: list[int]) -> dict[int, np.ndarray]:
        self._wanted = set(wanted)
        self._forward(feeds)
        if len(self._exits) != len(self._records):
            raise InputError("the model ran a different sequence of modules on this batch than on the first; "
                             "locate needs a model whose forward does not branch on the data")
        out, self._out, self._keep = self._out, {}, []
        return out
