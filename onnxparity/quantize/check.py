"""How ``onnxparity check`` judges a quantized variant: by top-1 agreement and accuracy, not by
float32's element-wise tolerance (int8 rounds every activation to 1 of 256 levels; no atol fits).

The parity matrix asks :func:`judge_for` about each ONNX Runtime candidate's file; for a variant
it gets a comparison function with the thresholds the variant passed when it was written (its
``onnxparity.variant.gate`` metadata; ``--min-agreement`` overrides). Agreement and accuracy are
judged on the labelled (real) inputs: the synthetic edge cases lie outside the calibrated ranges
by design and are reported, not judged. The comparison's ``checks["variant"]`` says all this in
the JSON, and :func:`notes` in the console table.
"""

from __future__ import annotations

import functools
import os
from dataclasses import replace

import numpy as np

from onnxparity.quantize.variant import variant_of

JUDGED_BY = ("{precision} variant: judged by top-1 agreement (at least {min_agreement:.2%}) and accuracy (drop at "
             "most {max_drop:.4f}) on the {n} labelled inputs, not by element-wise tolerance")


def tolerance_class(path: str | os.PathLike) -> str:
    """``"float32"`` for a plain file, else the variant's precision (``"int8"``, ``"fp16"``)."""
    info = _info(str(path))
    return info["precision"] if info else "float32"


def judge_for(path: str | os.PathLike):
    """The comparison function for the file at ``path`` when it is a variant (see :func:`judge`), else None."""
    info = _info(str(path))
    return functools.partial(judge, info=info) if info else None


def _info(path: str) -> dict | None:
    try:
        return _cached(path, os.stat(path).st_mtime_ns)
    except OSError:
        return None


@functools.lru_cache(maxsize=32)
def _cached(path: str, mtime: int) -> dict | None:
    return variant_of(path)


def judge(model: str, reference: dict, candidate: dict, labels: np.ndarray, device: str = "cpu",
          min_agreement: float | None = None, *, info: dict):
    """``metrics.compare`` for a variant: element-wise numbers reported, not judged; top-1 agreement
    and the accuracy drop against the reference judged on the labelled inputs."""
    from onnxparity.parity.metrics import Tolerance, accuracy, compare

    gate = info.get("gate") or {}
    min_agreement = gate.get("min_agreement", 0.99) if min_agreement is None else min_agreement
    max_drop = gate.get("max_accuracy_drop", 0.005)
    full = compare(model, reference, candidate, Tolerance(float("inf"), 0.0, 0.0), device)
    idx = np.asarray(candidate["indices"])
    keep = labels[idx] >= 0
    if not keep.any():
        keep[:] = True
    cand = {**candidate, "outputs": np.asarray(candidate["outputs"])[keep], "indices": idx[keep]}
    judged = compare(model, reference, cand, Tolerance(float("inf"), 0.0, min_agreement), device)
    reasons = full.reasons + [r for r in judged.reasons if r.startswith("top-1")]
    check = {"ok": True, "precision": info["precision"],
             "judged_by": JUDGED_BY.format(precision=info["precision"], min_agreement=min_agreement, max_drop=max_drop,
                                           n=int(keep.sum())),
             "top1_agreement_all_inputs": full.top1_agreement, "max_accuracy_drop": max_drop}
    if full.n and (labels[idx] >= 0).any():
        where = {int(i): k for k, i in enumerate(np.asarray(reference["indices"]))}
        ref_rows = np.asarray(reference["outputs"])[[where[int(i)] for i in cand["indices"]]]
        ref_acc = accuracy(ref_rows, labels[cand["indices"]])["accuracy"]
        cand_acc = accuracy(cand["outputs"], labels[cand["indices"]])["accuracy"]
        check["accuracy"] = {"reference": ref_acc, "variant": cand_acc}
        if ref_acc - cand_acc > max_drop:
            reasons.append(f"accuracy drops by {ref_acc - cand_acc:.4f} ({ref_acc:.4f} -> {cand_acc:.4f}), "
                           f"more than {max_drop:.4f}")
    check["ok"] = not reasons
    return replace(full, passed=not reasons, reasons=reasons, atol=None, rtol=None, min_agreement=min_agreement,
                   outside_tolerance=0, top1_agreement=judged.top1_agreement, top1_agree_count=judged.top1_agree_count,
                   real_disagreements=len(judged.disagreements), near_ties=[],
                   checks={**full.checks, "variant": check})


def notes(result) -> list[str]:
    """Console lines naming the comparisons judged as variants (for the parity table)."""
    return [f"variant  {c.model}: {c.candidate}: {c.checks['variant']['judged_by']}"
            for c in result.comparisons if "variant" in (c.checks or {})]
