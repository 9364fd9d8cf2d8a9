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
from onnxparity.runners import cuda_unavailable_reason, name_outputs, ordered_inputs

MODES = ("eager", "compile")


class TorchRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu", trust: dict | None = None, mode: str | None = None):
        import torch

        from onnxparity.models.torch_io import load_module

        from onnxparity.trust import Trust

        trust = Trust.from_dict(trust)
        if mode is not None and mode not in MODES:
            raise InputError(f"PyTorch runner: mode must be one of {', '.join(MODES)}, not {mode!r}")
        if ref.spec is None or not (ref.spec.architecture or trust.torch_class):
            raise InputError(f"{ref.path}: no spec.json naming the model class beside it")
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
        self.model = load_module(ref.path, ref.spec.architecture, kwargs=ref.spec.torch_kwargs, trust=trust)
        self.model.eval().to(device)
        self.name = "torch" if device == "cpu" else f"torch-{device}"
        self._torch = torch
        if mode is not None and device == "cuda":
            torch.backends.cudnn.benchmark = True
        self.compiles = mode == "compile"
        self._call = torch.compile(self.model, dynamic=False) if self.compiles else self.model

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        xs = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in ordered_inputs(self.spec, feeds)]
        with torch.inference_mode():
            out = self.model(*xs)
        arrays = [t.detach().cpu().numpy() for t in flatten_outputs(out)]
        return name_outputs(self.spec, arrays, f"PyTorch model {self.spec.architecture}")

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
        ts = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in ordered_inputs(self.spec, feeds)]
        if self.device == "cuda":
            def run():
                with torch.inference_mode():
                    out = model(*ts)
                torch.cuda.synchronize()
                return out
            return run

        def run_cpu():
            with torch.inference_mode():
                return [t.numpy() for t in flatten_outputs(model(*ts))]
        return run_cpu

    def details(self) -> dict:
        torch = self._torch
        d = {"torch": str(torch.__version__), "device": self.device,  # a str: the parent need not import torch
             "threads": torch.get_num_threads()}
        if self.device.startswith("cuda"):
            d["gpu"] = torch.cuda.get_device_name(0)
            d["cuda"] = torch.version.cuda
            d["precision"] = self.precision
        return d


RUNNERS = {"torch": TorchRunner}
