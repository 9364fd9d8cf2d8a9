"""The fp32 file and its variant on the held-out data, compared by :mod:`onnxparity.compare`.

Both run in plain ONNX Runtime sessions (``make_session(tuned=False)``): the files are judged as
they will be deployed, not as the toolkit's CPU rewrites run them. Top-1 agreement comes from
:func:`onnxparity.compare.compare`, accuracy and the max abs difference from its metrics; the
gate that reads them is :func:`onnxparity.compare.variant_gate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxparity.compare import Tolerance, accuracy, class_output, compare
from onnxparity.compare.metrics import max_abs_diff
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


def agreement(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], labels: np.ndarray | None,
              precision: str) -> Agreement:
    name = class_output(reference)
    if name is None:
        raise InputError("no output holds class scores (2-D with more than one class); the quantize gate "
                         "judges top-1 agreement, so it cannot judge this model")
    index = np.arange(len(reference[name]))

    def as_run(out: dict[str, np.ndarray], label: str) -> dict:
        return {"outputs": out[name].astype(np.float32, copy=False), "indices": index, "output_name": name,
                "label": label}

    # No element-wise tolerance: a variant is judged by top-1 agreement and accuracy.
    judged = compare("variant", as_run(reference, "fp32"), as_run(candidate, precision),
                     Tolerance(atol=float("inf"), rtol=0.0, min_agreement=0.0))
    diffs = {out: max_abs_diff(ref, candidate[out]) for out, ref in reference.items()}
    acc = None
    if labels is not None:
        ref_acc, cand_acc = accuracy(reference[name], labels), accuracy(candidate[name], labels)
        if ref_acc and cand_acc:
            acc = {"fp32": ref_acc["accuracy"], precision: cand_acc["accuracy"]}
    return Agreement(output=name, top1_agreement=float(judged.top1_agreement or 0.0),
                     disagreements=len(judged.disagreements), max_abs_diff=diffs, accuracy=acc)
