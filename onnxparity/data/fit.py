"""Whether a dataset fits a model: checked before any backend runs, so a mismatch is one line, not a
reshape traceback after start-up (images of another size) or a silent 0% accuracy (more classes)."""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError
from onnxparity.spec import ModelSpec


def check_fits(images: np.ndarray, labels: np.ndarray, spec: ModelSpec, source: str) -> None:
    """``images`` (N, H, W) must fill the model's input; labels (-1: none) must be among its classes."""
    size = int(np.prod(images.shape[1:]))
    if size != int(np.prod(spec.input_shape)):
        raise InputError(f"{source}: images are {'x'.join(map(str, images.shape[1:]))} pixels, but {spec.name} "
                         f"takes {'x'.join(map(str, spec.input_shape))}")
    labelled = labels[labels >= 0]
    if labelled.size and int(labelled.max()) >= len(spec.labels):
        raise InputError(f"{source}: labels go up to {int(labelled.max())}, but {spec.name} has "
                         f"{len(spec.labels)} classes (0..{len(spec.labels) - 1})")
