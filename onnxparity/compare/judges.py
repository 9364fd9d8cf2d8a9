"""Judges: one backend's output against the reference's, as a :class:`Comparison` with its verdict.

A judge is a plain function over saved arrays (after Polygraphy's ``CompareFunc``), so saved runs
can be judged again later (``onnxparity compare``). :func:`compare` picks the rule by the output:

- **exact** for integer and bool outputs;
- **class scores** for outputs that hold them (:func:`holds_classes`: 2-D with a last axis above 1,
  or marked so by the spec): element-wise as below, and top-1 agreement over the last axis;
- **element-wise** for any other output: within tolerance when ``|candidate - reference| <= atol +
  rtol * |reference|`` (NumPy's ``allclose`` rule).

A top-1 disagreement is a *near tie* when the reference's own margin between the two classes
involved is within that tolerance: any within-tolerance wobble could flip it. Near ties are
reported apart and do not count against ``min_agreement``; real disagreements do. :func:`within`
is the element-wise verdict alone, for callers that need no :class:`Comparison`.

:func:`judge_variant` judges a quantized variant instead, by the gate it passed when it was
written (:func:`variant_gate`: top-1 agreement and accuracy), not by float32's tolerance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from onnxparity.compare.metrics import (accuracy, finite_or_none, log10_histogram, max_rel, nonfinite_counts,
                                        nonfinite_mismatches, outside)
from onnxparity.compare.tolerances import Tolerance
from onnxparity.errors import InputError

MIN_AGREEMENT = 0.99  # a variant's default gate
MAX_ACCURACY_DROP = 0.005
JUDGED_BY = ("{precision} variant: judged by top-1 agreement (at least {min_agreement:.2%}) and accuracy (drop at "
             "most {max_drop:.4f}) on the {n} labelled inputs, not by element-wise tolerance")


@dataclass
class Comparison:
    """One candidate against the reference, on the same inputs (JSON: one item of ``comparisons``)."""

    model: str
    reference: str
    candidate: str
    device: str
    passed: bool
    reasons: list[str]  # why it failed (empty when passed)
    n: int
    atol: float
    rtol: float
    min_agreement: float
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None  # metrics.max_rel: over reference values >= REL_FLOOR; None when there are none
    mean_abs_diff: float | None = None
    p99_abs_diff: float | None = None
    outside_tolerance: int = 0  # elements beyond atol + rtol * |reference|
    worst_index: int | None = None  # the input holding max_abs_diff
    top1_agreement: float | None = None  # 0..1, near ties counted as disagreements
    top1_agree_count: int = 0
    disagreements: list[int] = field(default_factory=list)  # input indices where top-1 differs
    near_ties: list[int] = field(default_factory=list)  # the subset whose reference margin is within tolerance
    real_disagreements: int = 0
    nonfinite: dict = field(default_factory=dict)  # {"reference": {"nan": n, "inf": n}, "candidate": {...}}
    checks: dict = field(default_factory=dict)  # output name / shape / dtype: {"name": {"ok": bool, ...}}
    histogram: list[int] = field(default_factory=list)  # counts per metrics.HIST_EDGES bin of log10|diff|
    output: str | None = None  # the output compared (one comparison per candidate and output)
    judged_as: str = "class scores"  # "class scores", "element-wise" or "exact" (integer and bool outputs)
    probes: bool = False  # on the out-of-domain probes only: reported apart, decides only under --strict-probes

    def to_dict(self) -> dict:
        return asdict(self)


def holds_classes(array: np.ndarray, marked: bool = False) -> bool:
    """Whether an output holds class scores: floats, 2-D with a last axis above 1, or marked by the spec."""
    a = np.asarray(array)
    if a.dtype.kind != "f" or a.ndim < 2 or a.shape[-1] < 2:
        return False
    return marked or a.ndim == 2


def class_output(arrays: dict, named: str | None = None) -> str | None:
    """The output whose top-1 is the prediction: ``named`` (the spec's class output) where it holds
    classes, else the first that does; None when none does."""
    if named is not None and named in arrays and holds_classes(arrays[named], True):
        return named
    return next((n for n, a in arrays.items() if holds_classes(a)), None)


def positions(ref_idx: np.ndarray, idx: np.ndarray, ref_label: str, cand_label: str) -> np.ndarray:
    """Where each of the candidate's inputs sits among the reference's (both number the shared inputs)."""
    lookup = np.full(int(max(ref_idx.max(initial=-1), idx.max(initial=-1))) + 1, -1)
    lookup[ref_idx] = np.arange(len(ref_idx))
    pos = lookup[idx]
    if (pos < 0).any():
        raise InputError(f"{ref_label} has no output for {int((pos < 0).sum())} of the inputs {cand_label} ran "
                         f"(first: input {int(idx[pos < 0][0])}); pick a reference that ran every input")
    return pos


def within(reference: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> bool:
    """The element-wise verdict alone: every value within ``tol``, NaN/Inf only where they match."""
    mismatch, r, c = nonfinite_mismatches(reference, candidate)
    return not mismatch and not outside(np.abs(c - r), r, tol.atol, tol.rtol).any()


def compare(model: str, reference: dict, candidate: dict, tol: Tolerance, device: str = "cpu", *,
            output: str | None = None, classes: bool | None = None) -> Comparison:
    """Compare one output of two backends (``outputs``: that output's array, ``output_name``,
    ``indices`` of the inputs each ran, ``label``). ``classes`` forces the class-score rule."""
    ref_all = np.asarray(reference["outputs"])
    cand = np.asarray(candidate["outputs"])
    idx = np.asarray(candidate["indices"])
    ref = ref_all[positions(np.asarray(reference["indices"]), idx, reference["label"], candidate["label"])]
    exact = ref.dtype.kind in "biu"
    is_classes = (not exact) and (holds_classes(ref, bool(classes)) if classes is not False else False)
    reasons: list[str] = []
    checks = {
        "name": {"ok": reference["output_name"] == candidate["output_name"],
                 "reference": reference["output_name"], "candidate": candidate["output_name"]},
        "shape": {"ok": ref.shape == cand.shape, "reference": list(ref.shape), "candidate": list(cand.shape)},
        "dtype": {"ok": cand.dtype == ref.dtype, "reference": str(ref.dtype), "candidate": str(cand.dtype)},
    }
    for what, check in checks.items():
        if not check["ok"]:
            reasons.append(f"output {what} differs: {check['candidate']} (reference {check['reference']})")
    if exact:
        tol = replace(tol, atol=0.0, rtol=0.0)
    base = Comparison(model=model, reference=reference["label"], candidate=candidate["label"], device=device,
                      passed=False, reasons=reasons, n=int(len(cand)), atol=tol.atol, rtol=tol.rtol,
                      min_agreement=tol.min_agreement, checks=checks, output=output or reference["output_name"],
                      judged_as="exact" if exact else "class scores" if is_classes else "element-wise",
                      nonfinite={"reference": nonfinite_counts(ref), "candidate": nonfinite_counts(cand)}
                      if not reasons else {})
    if not checks["shape"]["ok"] or len(cand) == 0:
        if len(cand) == 0:
            reasons.append("no outputs")
        return base

    mismatch, r, c = nonfinite_mismatches(ref, cand)
    if mismatch:
        reasons.append(f"NaN/Inf: {int((~np.isfinite(cand)).sum())} in the candidate, "
                       f"{int((~np.isfinite(ref)).sum())} in the reference")
    diff = np.abs(c - r)
    beyond = outside(diff, r, tol.atol, tol.rtol)
    flat_worst = int(diff.argmax()) if diff.size else 0
    per_sample = max(1, diff.size // max(1, len(r)))
    if beyond.any():
        reasons.append(f"{int(beyond.sum())} of {beyond.size} values beyond atol {tol.atol:g} + rtol {tol.rtol:g}"
                       f" (max abs diff {diff.max():.3g} at input {int(idx[flat_worst // per_sample])})")
    rel = max_rel(diff, r)
    result = replace(
        base,
        max_abs_diff=finite_or_none(diff.max()) if diff.size else 0.0,
        max_rel_diff=None if rel is None else finite_or_none(rel),
        mean_abs_diff=finite_or_none(diff.mean()) if diff.size else 0.0,
        p99_abs_diff=finite_or_none(np.percentile(diff, 99)) if diff.size else 0.0,
        outside_tolerance=int(beyond.sum()),
        worst_index=int(idx[flat_worst // per_sample]),
        histogram=log10_histogram(diff),
    )
    if is_classes:
        result = _top1(result, r, c, idx, tol, reasons)
    return replace(result, passed=not reasons, reasons=reasons)


def _top1(result: Comparison, r: np.ndarray, c: np.ndarray, idx: np.ndarray, tol: Tolerance,
          reasons: list[str]) -> Comparison:
    """Top-1 agreement over the last axis, near ties apart; one sample disagrees if any of its rows does."""
    rr, cc = r.reshape(len(r), -1, r.shape[-1]), c.reshape(len(c), -1, c.shape[-1])
    ref_top, cand_top = rr.argmax(axis=-1), cc.argmax(axis=-1)
    ref_best = np.take_along_axis(rr, ref_top[..., None], -1)[..., 0]
    ref_at_cand = np.take_along_axis(rr, cand_top[..., None], -1)[..., 0]
    differs = ref_top != cand_top
    near_rows = differs & (ref_best - ref_at_cand <= tol.atol + tol.rtol * np.abs(ref_best))
    real_rows = differs & ~near_rows
    differ = np.flatnonzero(differs.any(axis=1))
    real = np.flatnonzero(real_rows.any(axis=1))
    near = np.setdiff1d(differ, real)
    agree_count = int(len(r) - len(differ))
    agreement_wo_near = (len(r) - len(real)) / len(r)
    if agreement_wo_near < tol.min_agreement:
        reasons.append(f"top-1 agreement {agreement_wo_near:.4%} below {tol.min_agreement:.4%} "
                       f"({len(real)} real disagreements)")
    return replace(result, top1_agreement=agree_count / len(r), top1_agree_count=agree_count,
                   disagreements=[int(idx[i]) for i in differ], near_ties=[int(idx[i]) for i in near],
                   real_disagreements=int(len(real)))


# -- quantized variants ------------------------------------------------------------------------
def variant_gate(top1_agreement: float | None, disagreements: int, accuracies: tuple[float, float] | None, *,
                 min_agreement: float, max_accuracy_drop: float) -> list[str]:
    """Why a variant may not stand in for its fp32 file (empty: it may): top-1 agreement below
    ``min_agreement`` (None: not judged), or an accuracy drop ``(fp32, variant)`` beyond ``max_accuracy_drop``."""
    reasons = []
    if top1_agreement is not None and top1_agreement < min_agreement:
        reasons.append(f"top-1 agreement {top1_agreement:.2%} is below {min_agreement:.2%} "
                       f"({disagreements} disagreements)")
    if accuracies is not None and accuracies[0] - accuracies[1] > max_accuracy_drop:
        reasons.append(f"accuracy drops by {accuracies[0] - accuracies[1]:.4f} ({accuracies[0]:.4f} -> "
                       f"{accuracies[1]:.4f}), more than {max_accuracy_drop:.4f}")
    return reasons


def judge_variant(model: str, reference: dict, candidate: dict, labels: np.ndarray, device: str = "cpu",
                  min_agreement: float | None = None, *, variant: dict) -> Comparison:
    """:func:`compare` for a quantized variant (``variant``: its metadata, with ``precision`` and the
    ``gate`` it passed; ``min_agreement`` overrides the gate's). Element-wise numbers are reported,
    not judged; the gate is judged on the labelled inputs, where the synthetic edge cases (outside
    the calibrated ranges by design) are reported only. ``checks["variant"]`` says how."""
    gate = variant.get("gate") or {}
    min_agreement = gate.get("min_agreement", MIN_AGREEMENT) if min_agreement is None else min_agreement
    max_drop = gate.get("max_accuracy_drop", MAX_ACCURACY_DROP)
    unjudged = Tolerance(float("inf"), 0.0, 0.0)
    full = compare(model, reference, candidate, unjudged, device)
    idx = np.asarray(candidate["indices"])
    keep = labels[idx] >= 0
    if not keep.any():
        keep[:] = True
    cand = {**candidate, "outputs": np.asarray(candidate["outputs"])[keep], "indices": idx[keep]}
    judged = compare(model, reference, cand, unjudged, device)
    check = {"ok": True, "precision": variant["precision"],
             "judged_by": JUDGED_BY.format(precision=variant["precision"], min_agreement=min_agreement,
                                           max_drop=max_drop, n=int(keep.sum())),
             "top1_agreement_all_inputs": full.top1_agreement, "max_accuracy_drop": max_drop}
    accuracies = None
    if full.n and (labels[idx] >= 0).any():
        ref_rows = np.asarray(reference["outputs"])[positions(np.asarray(reference["indices"]), cand["indices"],
                                                              reference["label"], candidate["label"])]
        accuracies = (accuracy(ref_rows, labels[cand["indices"]])["accuracy"],
                      accuracy(cand["outputs"], labels[cand["indices"]])["accuracy"])
        check["accuracy"] = {"reference": accuracies[0], "variant": accuracies[1]}
    reasons = full.reasons + variant_gate(judged.top1_agreement, len(judged.disagreements), accuracies,
                                          min_agreement=min_agreement, max_accuracy_drop=max_drop)
    check["ok"] = not reasons
    return replace(full, passed=not reasons, reasons=reasons, atol=None, rtol=None, min_agreement=min_agreement,
                   outside_tolerance=0, top1_agreement=judged.top1_agreement, top1_agree_count=judged.top1_agree_count,
                   real_disagreements=len(judged.disagreements), near_ties=[],
                   checks={**full.checks, "variant": check})
