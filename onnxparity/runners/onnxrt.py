"""ONNX files in ONNX Runtime, on the execution providers asked for."""

from __future__ import annotations

import os

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef
from onnxparity.spec import ModelSpec


def make_session(path: str | os.PathLike, providers: list[str] | None = None):
    """The one place where the toolkit creates ONNX Runtime sessions (parity, serving, bench)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise InputError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None


class OnnxRuntimeRunner:
    def __init__(self, ref: ModelRef, providers: list[str] | None = None):
        self.session = make_session(ref.path, providers)
        self.spec = ModelSpec.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.name = "onnxruntime"

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
