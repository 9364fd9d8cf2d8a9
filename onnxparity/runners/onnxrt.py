"""ONNX files in ONNX Runtime, on the execution providers asked for."""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef
from onnxparity.spec import ModelSpec


class OnnxRuntimeRunner:
    def __init__(self, ref: ModelRef, providers: list[str] | None = None):
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(ref.path), providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise InputError(f"{ref.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None
        self.spec = ModelSpec.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.name = "onnxruntime"

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]
