"""A :class:`~onnxparity.migrate.plan.Plan` as a readable PyTorch module: ``model.py`` + ``model.pth``.

``model.py`` holds one ``nn.Module`` class that imports only torch: each layer an attribute named
after the source's layer, ``forward`` in plain torch. ``model.pth`` is its state dict. The folder is
loaded back the way every onnxparity command loads it (``torch_io.load_module`` with the spec's
``./model.py:Class``), so the parity check runs the files a user gets, not the objects that wrote them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError
from onnxparity.migrate.plan import Plan, Step

MODEL_PY = "model.py"
MODEL_PTH = "model.pth"


def class_name(name: str) -> str:
    words = [w for w in re.split(r"\W+|_", name) if w]
    ident = "".join(w[:1].upper() + w[1:] for w in words) or "Migrated"
    return ident if not ident[0].isdigit() else f"Model{ident}"


def architecture(plan: Plan) -> str:
    """What the migrated spec's ``architecture`` says: a class in ``model.py`` beside the weights."""
    return f"./{MODEL_PY}:{class_name(plan.name)}"


def _tuple(values) -> str:
    values = tuple(int(v) for v in values)
    return str(values[0]) if len(set(values)) == 1 else str(values)


def _args(*positional, **options) -> str:
    parts = [str(p) for p in positional] + [f"{k}={v}" for k, v in options.items()]
    return ", ".join(parts)


def _float(v: float) -> str:
    """The shortest literal for a float32 value (0.001, not 0.0010000000474974513)."""
    return repr(float(str(np.float32(v))))


class _Writer:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.init: list[str] = []
        self.forward: list[str] = []
        self.state: dict[str, np.ndarray] = {}
        self.uses_f = False

    def layer(self, step: Step, text: str) -> None:
        self.init.append(f"self.{step.name} = {text}")

    def line(self, step: Step, expr: str) -> None:
        self.forward.append(f"{step.output} = {expr}")

    def padded(self, step: Step, x: str, pads, value: str | None = None, pool: bool = False) -> tuple[str, tuple]:
        """(input expression, padding for the layer): symmetric pads go to the layer, others to F.pad
        (pooling layers take at most half the kernel)."""
        top, left, bottom, right = pads
        if top == bottom and left == right and (not pool or 2 * max(top, left) <= min(step.attrs["kernel"])):
            return x, (top, left)
        self.uses_f = True
        fill = "" if value is None else f", value={value}"
        self.forward.append(f"{step.output} = F.pad({x}, ({left}, {right}, {top}, {bottom}){fill})")
        return step.output, (0, 0)

    def write(self) -> str:
        for step in self.plan.steps:
            getattr(self, f"_{step.kind}")(step, *[self.arg(i) for i in step.inputs])
        outputs = ", ".join(self.plan.outputs)
        self.forward.append(f"return {outputs}")
        imports = ["import torch", "from torch import nn"]
        if self.uses_f:
            imports.append("import torch.nn.functional as F")
        cls = class_name(self.plan.name)
        body = "\n".join(f"        {line}" for line in ["super().__init__()", *self.init])
        fwd = "\n".join(f"        {line}" for line in self.forward)
        doc = (f'"""{self.plan.name}, migrated by onnxparity from an ONNX graph: input '
               f'{self.plan.layout} {list(self.plan.input_shape)} per sample."""')
        return (f"{doc}\n\n" + "\n".join(imports) + "\n\n\n"
                f"class {cls}(nn.Module):\n    def __init__(self):\n{body}\n\n"
                f"    def forward(self, x):\n{fwd}\n")

    @staticmethod
    def arg(name: str) -> str:
        return name

    # -- one method per step kind -----------------------------------------------------------
    def _conv(self, s: Step, x: str):
        a = s.attrs
        x, padding = self.padded(s, x, a["pads"])
        opts = {"kernel_size": _tuple(a["kernel"])}
        if max(a["strides"]) > 1:
            opts["stride"] = _tuple(a["strides"])
        if any(padding):
            opts["padding"] = _tuple(padding)
        if max(a["dilations"]) > 1:
            opts["dilation"] = _tuple(a["dilations"])
        if a["groups"] > 1:
            opts["groups"] = a["groups"]
        if "bias" not in s.weights:
            opts["bias"] = False
        self.layer(s, f"nn.Conv2d({_args(a['in_channels'], a['out_channels'], **opts)})")
        self.state[f"{s.name}.weight"] = s.weights["weight"]
        if "bias" in s.weights:
            self.state[f"{s.name}.bias"] = s.weights["bias"]
        self.line(s, f"self.{s.name}({x})")

    def _pool(self, s: Step, x: str, cls: str, fill: str | None, extra: dict):
        a = s.attrs
        x, padding = self.padded(s, x, a["pads"], fill, pool=True)
        opts = {"kernel_size": _tuple(a["kernel"]), "stride": _tuple(a["strides"])}
        if any(padding):
            opts["padding"] = _tuple(padding)
        opts.update(extra)
        if a["ceil_mode"]:
            opts["ceil_mode"] = True
        self.layer(s, f"nn.{cls}({_args(**opts)})")
        self.line(s, f"self.{s.name}({x})")

    def _maxpool(self, s: Step, x: str):
        extra = {"dilation": _tuple(s.attrs["dilations"])} if max(s.attrs["dilations"]) > 1 else {}
        self._pool(s, x, "MaxPool2d", 'float("-inf")', extra)

    def _avgpool(self, s: Step, x: str):
        a = s.attrs
        top, left, bottom, right = a["pads"]
        uneven = top != bottom or left != right or 2 * max(a["pads"]) > min(a["kernel"])
        if uneven and any(a["pads"]) and not a["count_include_pad"]:
            raise InputError(f"migrate: average pool {s.name!r}: PyTorch cannot leave these pads out of the average")
        extra = {} if a["count_include_pad"] or not any(a["pads"]) else {"count_include_pad": False}
        self._pool(s, x, "AvgPool2d", None, extra)

    def _global_avgpool(self, s: Step, x: str):
        self.layer(s, "nn.AdaptiveAvgPool2d(1)")
        self.line(s, f"self.{s.name}({x})" if s.attrs["keepdims"] else f"torch.flatten(self.{s.name}({x}), 1)")

    def _batchnorm(self, s: Step, x: str):
        a = s.attrs
        cls = "BatchNorm2d" if a["rank"] == 4 else "BatchNorm1d"
        # ONNX's momentum weighs the running value; torch's weighs the new batch.
        momentum = _float(round(1 - a["momentum"], 7))
        self.layer(s, f"nn.{cls}({a['channels']}, eps={_float(a['epsilon'])}, momentum={momentum})")
        w = s.weights
        self.state.update({f"{s.name}.weight": w["gamma"], f"{s.name}.bias": w["beta"],
                           f"{s.name}.running_mean": w["mean"], f"{s.name}.running_var": w["var"],
                           f"{s.name}.num_batches_tracked": np.array(0, dtype=np.int64)})
        self.line(s, f"self.{s.name}({x})")

    def _dense(self, s: Step, x: str):
        a = s.attrs
        bias = "" if "bias" in s.weights else ", bias=False"
        self.layer(s, f"nn.Linear({a['in_features']}, {a['out_features']}{bias})")
        self.state[f"{s.name}.weight"] = np.ascontiguousarray(s.weights["kernel"].T)
        if "bias" in s.weights:
            self.state[f"{s.name}.bias"] = s.weights["bias"]
        self.line(s, f"self.{s.name}({x})")

    def _module(self, s: Step, x: str, text: str):
        self.layer(s, text)
        self.line(s, f"self.{s.name}({x})")

    def _relu(self, s, x):
        self._module(s, x, "nn.ReLU()")

    def _sigmoid(self, s, x):
        self._module(s, x, "nn.Sigmoid()")

    def _tanh(self, s, x):
        self._module(s, x, "nn.Tanh()")

    def _hardswish(self, s, x):
        self._module(s, x, "nn.Hardswish()")

    def _hardsigmoid(self, s, x):
        alpha, beta = s.attrs["alpha"], s.attrs["beta"]
        if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5):
            self._module(s, x, "nn.Hardsigmoid()")
        else:
            self.line(s, f"torch.clamp({x} * {_float(alpha)} + {_float(beta)}, 0.0, 1.0)")

    def _softmax(self, s, x):
        self._module(s, x, f"nn.Softmax(dim={s.attrs['axis']})")

    def _log_softmax(self, s, x):
        self._module(s, x, f"nn.LogSoftmax(dim={s.attrs['axis']})")

    def _dropout(self, s, x):
        self._module(s, x, f"nn.Dropout({_float(s.attrs['rate'])})")

    def _binary(self, s: Step, symbol: str, a: str, b: str | None = None):
        if b is None:
            c = s.weights["constant"]
            if c.size == 1:
                self.line(s, f"{a} {symbol} {_float(c.reshape(-1)[0])}")
                return
            self.init.append(f"self.register_buffer({s.name!r}, torch.empty({tuple(c.shape)}))")
            self.state[s.name] = c
            b = f"self.{s.name}"
        self.line(s, f"{a} {symbol} {b}")

    def _add(self, s, a, b=None):
        self._binary(s, "+", a, b)

    def _mul(self, s, a, b=None):
        self._binary(s, "*", a, b)

    def _concat(self, s, *parts):
        self.line(s, f"torch.cat([{', '.join(parts)}], dim={s.attrs['axis']})")

    def _flatten(self, s, x):
        self.line(s, f"torch.flatten({x}, 1)")

    def _reshape(self, s, x):
        self.line(s, f"{x}.reshape({', '.join(['-1', *map(str, s.attrs['shape'])])})")

    def _permute(self, s, x):
        self.line(s, f"{x}.permute({', '.join(map(str, s.attrs['perm']))})")


def source(plan: Plan) -> tuple[str, dict[str, np.ndarray]]:
    """(model.py's text, the state dict as arrays)."""
    writer = _Writer(plan)
    return writer.write(), writer.state


def write_and_run(plan: Plan, folder: str | Path, x: np.ndarray, batch_size: int = 500) -> list[np.ndarray]:
    """Write model.py and model.pth into ``folder``, load them back as onnxparity does, run ``x``."""
    import torch

    from onnxparity.models.torch_io import load_module

    folder = Path(folder)
    code, state = source(plan)
    (folder / MODEL_PY).write_text(code)
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, folder / MODEL_PTH)
    module = load_module(folder / MODEL_PTH, architecture(plan)).eval()
    outputs: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out = module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))
            outs = out if isinstance(out, (tuple, list)) else (out,)
            outputs.append([o.numpy() for o in outs])
    return [np.concatenate(parts) for parts in zip(*outputs)]
