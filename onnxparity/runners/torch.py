"""PyTorch models in eager mode under ``inference_mode``, from a state dict and the model's class."""

from __future__ import annotations

import numpy as np

from onnxparity.errors import BackendUnavailable, InputError
from onnxparity.models import ModelRef
from onnxparity.runners import cuda_unavailable_reason, name_outputs, ordered_inputs


class TorchRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu", trust: dict | None = None):
        import torch

        from onnxparity.models.torch_io import load_module

        from onnxparity.trust import Trust

        trust = Trust.from_dict(trust)
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

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from onnxparity.convert.torch import flatten_outputs

        torch = self._torch
        xs = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in ordered_inputs(self.spec, feeds)]
        with torch.inference_mode():
            out = self.model(*xs)
        arrays = [t.detach().cpu().numpy() for t in flatten_outputs(out)]
        return name_outputs(self.spec, arrays, f"PyTorch model {self.spec.architecture}")

    def details(self) -> dict:
        torch = self._torch
        d = {"torch": str(torch.__version__), "device": self.device}  # a str: the parent need not import torch
        if self.device.startswith("cuda"):
            d["gpu"] = torch.cuda.get_device_name(0)
            d["cuda"] = torch.version.cuda
            d["precision"] = self.precision
        return d
