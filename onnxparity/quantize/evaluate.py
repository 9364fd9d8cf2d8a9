"""The fp32 file and its variant on the held-out data, judged by :mod:`onnxparity.compare`.

Both run in plain ONNX Runtime sessions (``make_session(tuned=False)``): the files are judged as
they will be deployed, not as the toolkit's CPU rewrites run them. Each output is judged by
:func:`onnxparity.compare.judge_variant`, the judge ``check`` uses for a variant, against the same
:class:`~onnxparity.compare.VariantGate`: class scores by top-1 agreement and accuracy, other float
outputs by cosine and SNR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxparity.compare import VariantGate, class_output, judge_variant, tolerance_for
from onnxparity.compare.metrics import max_abs_diff

EVAL_BATCH = 256


@dataclass(frozen=True)
class Agreement:
    """The variant against the fp32 file on the held-out data."""

    output: str | None  # the class-score output top-1 is judged on; None when no output holds class scores
    top1_agreement: float | None  # near ties by the fp32 file's margins excepted; None without class scores
    disagreements: int  # real top-1 disagreements
    max_abs_diff: dict[str, float | None]  # per output
    accuracy: dict[str, float] | None  # {"fp32": x, "<precision>": y}; None without labels
    cosine: dict[str, dict]  # per other float output: {"median": x, "lowest": y, "snr_db": z}
    reasons: list[str]  # the gate's refusals (empty: it passes)

    @property
    def score(self) -> float:
        """How close the variant is, to rank attempts: top-1 agreement, else the worst median cosine."""
        if self.top1_agreement is not None:
            return self.top1_agreement
        return min((c["median"] for c in self.cosine.values()), default=1.0)


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
              precision: str, gate: VariantGate, marked=()) -> Agreement:
    """Every output of the variant against the fp32 file's by ``gate``; ``marked``: the outputs the
    spec or the graph marks as class scores. Accuracy is read from the first class output."""
    name = class_output(reference, marked)
    n = len(next(iter(reference.values())))
    index = np.arange(n)
    no_labels = np.full(n, -1, np.int64)
    info = {"precision": precision, "gate": gate.to_dict()}
    judged = {}
    for out, ref in reference.items():
        judged[out] = judge_variant(
            "variant", {"outputs": ref, "indices": index, "output_name": out, "label": "fp32"},
            {"outputs": candidate[out].astype(ref.dtype, copy=False), "indices": index, "output_name": out,
             "label": precision},
            labels if labels is not None and out == name else no_labels, tolerance_for("cpu"), variant=info,
            classes=True if out in set(marked) else None)
    top = judged.get(name) if name else None
    acc = (top.checks["variant"].get("accuracy") if top is not None else None)
    return Agreement(
        output=name,
        top1_agreement=None if top is None else (top.n - top.real_disagreements) / max(1, top.n),
        disagreements=0 if top is None else top.real_disagreements,
        max_abs_diff={out: max_abs_diff(ref, candidate[out]) for out, ref in reference.items()},
        accuracy=None if acc is None else {"fp32": acc["reference"], precision: acc["variant"]},
        cosine={out: {"median": c.cosine_median, "lowest": c.cosine_min, "snr_db": c.snr_db}
                for out, c in judged.items() if c.judged_as == "element-wise"},
        reasons=[r for c in judged.values() for r in c.reasons])
