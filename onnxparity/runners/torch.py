"""PyTorch models in eager mode under ``inference_mode``, from a state dict and the model's class.

``mode`` says how :meth:`TorchRunner.bind` runs the model for the bench: ``"eager"``, or
``"compile"`` (``torch.compile(model, dynamic=False)``: one specialised graph per batch size, whose
first call at each size compiles it, Inductor's C++ on the CPU and Triton on CUDA). A bench mode on
CUDA turns cuDNN's autotuner on, as ORT's exhaustive convolution search is.
"""

from __future__ import annotations

import numpy as np

from onnxparity._io import flatten_outputs
from onnxparity.errors import BackendUnavailable, InputError
from onnxparity.models import ModelRef
from onnxparity.runners import cuda_unavailable_reason, match_names, name_outputs, ordered_inputs

MODES = ("eager", "compile")


class TorchRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu", trust: dict | None = None, mode: str | None = None):
        import torch

        from onnxparity.models.torch_io import load_torch_file, needs_class

        from onnxparity.trust import Trust

        trust = Trust.from_dict(trust)
        if mode is not None and mode not in MODES:
            raise InputError(f"PyTorch runner: mode must be one of {', '.join(MODES)}, not {mode!r}")
        if ref.spec is None:
            raise InputError(f"{ref.path}: nothing says how to feed it (no spec.json beside it, no ONNX file's metadata)")
        if not (ref.spec.architecture or trust.torch_class) and needs_class(ref.path):
            raise InputError(f"{ref.path}: a state dict, and nothing names its model class; pass --torch-class "
                             "package.module:Class (or put a spec.json beside it)")
        if device.startswith("cuda"):
            reason = cuda_unavailable_reason()
            if reason:
                raise BackendUnavailable(f"PyTorch: {reason}")
        self.spec = ref.spec
        self.device = device
        self.precision = None
        if device.startswith("cuda"):
            from onnxparity.gpu import pin_full_precision

            self.precision = pin_full_precision(torch)  # no TF32: float32 against float32
        self.model = load_torch_file(ref.path, ref.spec.architecture, kwargs=ref.spec.torch_kwargs, trust=trust)
        try:
            self.model.eval().to(device)
        except (NotImplementedError, RuntimeError):  # an ExportedProgram's module has its mode baked in
            self.model.to(device)
        self.name = "torch" if device == "cpu" else f"torch-{device}"
        self._torch = torch
        if mode is not None and device == "cuda":
            torch.backends.cudnn.benchmark = True
        self.compiles = mode == "compile"
        self._call = torch.compile(self.model, dynamic=False) if self.compiles else self.model
        names = self.spec.signature.input_names if self.spec.signature else []
        self.matched = {"inputs": match_names(names, forward_parameters(self.model)) if len(names) > 1
                        else {"by": "order"}}

    def _arguments(self, feeds: dict[str, np.ndarray]) -> tuple[list, dict]:
        """(positional, keyword) tensors for ``forward``: by the parameters' names where they name every
        input, else in the signature's order."""
        def tensor(x):
            return self._torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        if self.matched["inputs"]["by"] == "name":
            return [], {n: tensor(feeds[n]) for n in self.spec.signature.input_names}
        return [tensor(x) for x in ordered_inputs(self.spec, feeds)], {}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args, kwargs = self._arguments(feeds)
        with self._torch.inference_mode():
            out = self.model(*args, **kwargs)
        arrays, self.matched["outputs"] = name_outputs(self.spec, out, f"PyTorch model {self.spec.architecture}",
                                                       lambda t: t.detach().cpu().numpy())
        return arrays

    def float64(self) -> "TorchRunner":
        """A copy of this runner with the module in float64 (``.double()``), on the CPU: the
        calibrated verdict's truth. Float inputs are cast by the caller; integer inputs stay."""
        import copy

        twin = copy.copy(self)
        twin.model = copy.deepcopy(self.model).double()
        twin._call = twin.model
        return twin

    def bind(self, feeds: dict[str, np.ndarray]):
        """One call on this batch, a tensor already on the device: numpy out on the CPU; on CUDA the
        result stays there and the call ends with a synchronisation."""
        torch, model = self._torch, self._call
        ts, kw = self._arguments(feeds)
        if self.device == "cuda":
            def run():
                with torch.inference_mode():
                    out = model(*ts, **kw)
                torch.cuda.synchronize()
                return out
            return run

        def run_cpu():
            with torch.inference_mode():
                return [t.numpy() for t in flatten_outputs(model(*ts, **kw))]
        return run_cpu

    def details(self) -> dict:
        torch = self._torch
        d = {"torch": str(torch.__version__), "device": self.device,  # a str: the parent need not import torch
             "threads": torch.get_num_threads(), "matched": self.matched}
        if self.device.startswith("cuda"):
            d["gpu"] = torch.cuda.get_device_name(0)
            d["cuda"] = torch.version.cuda
            d["precision"] = self.precision
        return d


def forward_parameters(module) -> list[str] | None:
    """The names ``module.forward`` takes its tensors by (None where it takes ``*args``)."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


RUNNERS = {"torch": TorchRunner}
