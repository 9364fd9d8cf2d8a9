"""The fp32 file and its variant on the held-out data, compared with the parity metrics.

Both run in plain ONNX Runtime sessions (``make_session(tuned=False)``): the files are judged as
they will be deployed, not as the toolkit's CPU rewrites run them. Top-1 agreement and the max abs
difference come from :func:`onnxparity.parity.metrics.compare`, accuracy from its ``accuracy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxparity.errors import InputError

EVAL_BATCH = 256


@dataclass(frozen=True)
class Agreement:
    """The variant against the fp32 file on the held-out data."""

    output: str  # the class-score output top-1 is judged on
    top1_agreement: float
    disagreements: int
    max_abs_diff: dict[str, float | None]  # per output
    accuracy: dict[str, float] | None  # {"fp32": x, "<precision>": y}; None without labels

    def accuracy_drop(self, precision: str) -> float | None:
        return None if self.accuracy is None else self.accuracy["fp32"] - self.accuracy[precision]


def outputs_of(path, feeds_batches, providers=None) -> dict[str, np.ndarray]:
    """Every output of the file at ``path`` over the batches, concatenated, by output name."""
    from onnxparity.runners.sessions import make_session

    session = make_session(path, providers, tuned=False)
    names = [o.name for o in session.get_outputs()]
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed in feeds_batches:
        for name, value in zip(names, session.run(None, feed)):
            parts[name].append(np.asarray(value))
    return {n: np.concatenate(v) for n, v in parts.items()}


def class_output(outputs: dict[str, np.ndarray]) -> str:
    """The first output that holds class scores (2-D, more than one class)."""
    for name, value in outputs.items():
        if value.ndim == 2 and value.shape[1] > 1:
            return name
    raise InputError("no output holds class scores (2-D with more than one class); the quantize gate "
                     "judges top-1 agreement, so it cannot judge this model")


def agreement(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], labels: np.ndarray | None,
              precision: str) -> Agreement:
    from onnxparity.parity.metrics import Tolerance, accuracy, compare

    name = class_output(reference)
    index = np.arange(len(reference[name]))

    def as_run(out: dict[str, np.ndarray], label: str) -> dict:
        return {"outputs": out[name].astype(np.float32, copy=False), "indices": index, "output_name": name,
                "label": label}

    # No element-wise tolerance: a variant is judged by top-1 agreement and accuracy.
    judged = compare("variant", as_run(reference, "fp32"), as_run(candidate, precision),
                     Tolerance(atol=float("inf"), rtol=0.0, min_agreement=0.0))
    diffs = {}
    for out, ref in reference.items():
        cand = candidate[out]
        diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64)) if ref.shape == cand.shape else None
        diffs[out] = None if diff is None or not np.isfinite(diff).all() else float(diff.max(initial=0.0))
    acc = None
    if labels is not None:
        ref_acc, cand_acc = accuracy(reference[name], labels), accuracy(candidate[name], labels)
        if ref_acc and cand_acc:
            acc = {"fp32": ref_acc["accuracy"], precision: cand_acc["accuracy"]}
    return Agreement(output=name, top1_agreement=float(judged.top1_agreement or 0.0),
                     disagreements=len(judged.disagreements), max_abs_diff=diffs, accuracy=acc)
