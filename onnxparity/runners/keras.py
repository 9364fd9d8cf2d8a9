"""Keras models on TensorFlow (the reference), from ``.keras`` / ``.h5`` files."""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef


class KerasRunner:
    def __init__(self, ref: ModelRef):
        from onnxparity.models.keras_cnn import load

        if ref.spec is None:
            raise InputError(f"{ref.path}: no spec.json beside it; say how to feed it (onnxparity convert) first")
        self.spec = ref.spec
        self.model = load(ref.path)
        self.name = "keras"

    def infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x))
