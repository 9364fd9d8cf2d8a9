"""Accuracy and loss of any runner on labelled digits, computed the same way for every backend."""

from __future__ import annotations

import numpy as np

from onnxparity.data import Digits
from onnxparity.runners import Runner, predict


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Mean negative log-likelihood and top-1 accuracy from class probabilities."""
    p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)
    correct = int((probabilities.argmax(axis=1) == labels).sum())
    return {"loss": float(-np.log(p).mean()), "accuracy": correct / len(labels), "correct": correct, "n": len(labels)}


def evaluate(runner: Runner, digits: Digits) -> dict:
    from onnxparity.data.fit import check_fits

    check_fits(digits.images, digits.labels, runner.spec, digits.source)
    return scores(runner.spec.probabilities(predict(runner, digits.images)), digits.labels)
