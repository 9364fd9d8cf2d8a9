"""How to feed a model file that came without a ``spec.json``: what ``onnxparity convert`` infers.

A plain ``.keras``/``.h5`` file or SavedModel folder says its input shape; its layout is Keras'
(NHWC), pixels are scaled to 0..1, and the output kind (probabilities, log-probabilities,
logits) is read off its answers to real digits. The same inference as convert's, so ``evaluate``,
``predict`` and ``convert`` treat a bare file alike.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from onnxparity.errors import InputError
from onnxparity.spec import ModelSpec


def inferred_spec(model, path: str | Path) -> ModelSpec:
    """The spec convert would give ``model`` (a loaded Keras model or keras_cnn.SavedModel)."""
    from onnxparity.convert.pipeline import infer_spec
    from onnxparity.signature import BATCH, TensorSpec

    shape = getattr(model, "sample_shape", None)
    if shape is None:
        inputs = getattr(model, "inputs", None) or []
        if len(inputs) != 1:
            raise InputError(f"{path}: a model with {len(inputs)} inputs; only one-input models run here")
        shape = tuple(inputs[0].shape[1:])
    if not shape or not all(isinstance(d, int) for d in shape):
        raise InputError(f"{path}: the model does not say its input shape ({list(shape)}); write a spec.json "
                         "beside it or convert it with --input-shape and use the ONNX file")
    source = SimpleNamespace(name=getattr(model, "name", Path(path).stem), framework="keras", architecture=None,
                             torch_kwargs=None)
    return infer_spec(source, [TensorSpec("input", "float32", (BATCH, *shape))],
                      lambda xs: [np.asarray(model.predict_on_batch(xs[0]))])
