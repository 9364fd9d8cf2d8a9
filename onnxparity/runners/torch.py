"""PyTorch models in eager mode under ``inference_mode``, from a state dict and the model's class."""

from __future__ import annotations

import importlib

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef
from onnxparity.runners import BackendUnavailable, cuda_unavailable_reason


def import_class(path: str):
    """``"package.module:Class"`` -> the class, with a one-line error when it does not import."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InputError(f"cannot import model class {path!r} ({exc})") from None


class TorchRunner:
    def __init__(self, ref: ModelRef, device: str = "cpu"):
        import torch

        from onnxparity.models.torch_net import _load_state

        if ref.spec is None or not ref.spec.architecture:
            raise InputError(f"{ref.path}: no spec.json naming the model class beside it")
        if device.startswith("cuda"):
            reason = cuda_unavailable_reason()
            if reason:
                raise BackendUnavailable(f"PyTorch: {reason}")
        self.spec = ref.spec
        self.device = device
        self.model = import_class(ref.spec.architecture)()
        try:
            self.model.load_state_dict(_load_state(ref.path))
        except RuntimeError as exc:
            raise InputError(f"{ref.path}: weights do not fit {ref.spec.architecture} ({str(exc).splitlines()[0]})") from None
        self.model.eval().to(device)
        self.name = "torch" if device == "cpu" else f"torch-{device}"
        self._torch = torch

    def infer(self, x: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            return self.model(self._torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).cpu().numpy()

    def details(self) -> dict:
        torch = self._torch
        d = {"torch": torch.__version__, "device": self.device}
        if self.device.startswith("cuda"):
            d["gpu"] = torch.cuda.get_device_name(0)
            d["cuda"] = torch.version.cuda
        return d
