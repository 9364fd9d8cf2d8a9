"""PyTorch models in eager mode under ``inference_mode``, from a state dict and the model's class."""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef
from onnxparity.runners import BackendUnavailable, cuda_unavailable_reason


class TorchRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu"):
        import torch

        from onnxparity.models.torch_io import load_module

        if ref.spec is None or not ref.spec.architecture:
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
        self.model = load_module(ref.path, ref.spec.architecture)
        self.model.eval().to(device)
        self.name = "torch" if device == "cpu" else f"torch-{device}"
        self._torch = torch

    def infer(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).cpu().numpy()

    def details(self) -> dict:
        torch = self._torch
        d = {"torch": str(torch.__version__), "device": self.device}  # a str: the parent need not import torch
        if self.device.startswith("cuda"):
            d["gpu"] = torch.cuda.get_device_name(0)
            d["cuda"] = torch.version.cuda
            d["precision"] = self.precision
        return d
