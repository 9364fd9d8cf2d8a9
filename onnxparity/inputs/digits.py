"""Real digits as inputs: the test split of ``--data`` (bundled held-out digits by default) plus pixel edge cases.

Digits stay raw pixels; each model's spec preprocesses them (Keras NHWC x/255, PyTorch NCHW
Normalize), so both frameworks see the same pixels.
"""

from __future__ import annotations

import numpy as np

from onnxparity.errors import InputError
from onnxparity.inputs.samples import DIGIT, Inputs, unlabelled
from onnxparity.inputs.synthetic import pixel_cases

def load_digits_inputs(data: str | None = None, n: int | None = None, synthetic: bool = True) -> Inputs:
    """The test split of ``data`` (bundled held-out digits by default), its first ``n``, plus edge cases."""
    from onnxparity.data import load_digits

    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    digits = load_digits(data, "test").head(n)
    images = digits.images.astype(np.float32)
    labels = digits.labels.astype(np.int64)
    kinds = [DIGIT] * len(digits)
    if synthetic:
        extra, extra_kinds = pixel_cases(digits.images, shape=digits.images.shape[1:])
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, unlabelled(len(extra))])
        kinds += extra_kinds
    return Inputs(labels, tuple(kinds), digits.source, images=images)
