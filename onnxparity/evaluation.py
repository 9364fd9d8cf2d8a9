"""Accuracy and loss of any runner on labelled digits, computed the same way for every backend."""

from __future__ import annotations

from onnxparity.compare.metrics import accuracy, log_loss
from onnxparity.data import Digits
from onnxparity.runners import Runner, predict


def evaluate(runner: Runner, digits: Digits) -> dict:
    """Mean negative log-likelihood (``loss``) and top-1 ``accuracy`` (with ``correct`` and ``n``)."""
    from onnxparity.data.fit import check_fits

    check_fits(digits.images, digits.labels, runner.spec, digits.source)
    probabilities = runner.spec.probabilities(predict(runner, digits.images))
    return {"loss": log_loss(probabilities, digits.labels), **accuracy(probabilities, digits.labels)}
