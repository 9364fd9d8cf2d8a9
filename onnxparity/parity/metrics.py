"""Comparing one backend's outputs with the reference's: the numbers and the verdict.

The comparison function is separate from the runners and works on plain arrays (after
Polygraphy's ``CompareFunc``), so saved runs can be compared again later (``onnxparity compare``).

Element-wise, an output is within tolerance when ``|candidate - reference| <= atol + rtol *
|reference|`` (NumPy's ``allclose`` rule). A top-1 disagreement is a *near tie* when the
reference's own margin between the two classes involved is within that tolerance: any
within-tolerance wobble could flip it. Near ties are reported apart and do not count against
``min_agreement``; real disagreements do.

There is one comparison per (candidate, output). Top-1 agreement applies to outputs that hold
class scores (:func:`holds_classes`: 2-D with a last axis above 1, or marked so by the spec);
integer and bool outputs must match exactly; any other output is judged element-wise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from onnxparity.errors import InputError

REL_FLOOR = 1e-6  # max_rel_diff covers reference values at least this large
# log10(|difference|) histogram bins: below 1e-12 (exact, in float32 terms), ..., at least 1.
HIST_EDGES = [-np.inf] + [float(e) for e in range(-12, 1)] + [np.inf]


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    min_agreement: float = 1.0  # fraction of inputs whose top-1 must agree, near ties excepted


# Defaults by the candidate's device (all float32). Measured here and on the GPU machine; see
# docs/parity.md for the numbers behind them. CPU against CPU is far tighter than GPU against CPU.
# CPU: every CPU backend here stayed within 7.7e-7 of the reference on probabilities and within
# 2 float32 ulps (1.5e-5 at |log p| = 111) on log-probabilities, over 10,009 inputs.
# GPU: 1e-5 to 5e-5 seen on an H100 (ORT CUDA, PyTorch CUDA and Keras on torch against the CPU originals).
DEFAULT_TOLERANCES = {
    "cpu": Tolerance(atol=1e-5, rtol=1e-5),
    "cuda": Tolerance(atol=5e-4, rtol=1e-3),
}


# convert's own check of a fresh file against its original (scaled to the output's magnitude there).
CONVERT_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


def tolerance_for(device: str, atol: float | None = None, rtol: float | None = None,
                  min_agreement: float | None = None) -> Tolerance:
    """The default for ``device`` (every accelerator shares "cuda"'s), with any override applied."""
    base = DEFAULT_TOLERANCES["cpu" if device == "cpu" else "cuda"]
    changes = {k: v for k, v in dict(atol=atol, rtol=rtol, min_agreement=min_agreement).items() if v is not None}
    return replace(base, **changes)


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
    max_rel_diff: float | None = None  # over reference values >= REL_FLOOR; None when there are none
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
    histogram: list[int] = field(default_factory=list)  # counts per HIST_EDGES bin of log10|diff|
    output: str | None = None  # the output compared (one comparison per candidate and output)
    judged_as: str = "class scores"  # "class scores", "element-wise" or "exact" (integer and bool outputs)

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(value) -> float | None:
    """A float JSON can hold (None for an overflow, which strict JSON has no number for)."""
    value = float(value)
    return value if np.isfinite(value) else None


def _nonfinite(a: np.ndarray) -> dict:
    return {"nan": int(np.isnan(a).sum()), "inf": int(np.isinf(a).sum())}


def _positions(ref_idx: np.ndarray, idx: np.ndarray, ref_label: str, cand_label: str) -> np.ndarray:
    """Where each of the candidate's inputs sits among the reference's (both number the shared inputs)."""
    lookup = np.full(int(max(ref_idx.max(initial=-1), idx.max(initial=-1))) + 1, -1)
    lookup[ref_idx] = np.arange(len(ref_idx))
    pos = lookup[idx]
    if (pos < 0).any():
        raise InputError(f"{ref_label} has no output for {int((pos < 0).sum())} of the inputs {cand_label} ran "
                         f"(first: input {int(idx[pos < 0][0])}); pick a reference that ran every input")
    return pos


def holds_classes(array: np.ndarray, marked: bool = False) -> bool:
    """Whether an output holds class scores: floats, 2-D with a last axis above 1, or marked by the spec."""
    a = np.asarray(array)
    if a.dtype.kind != "f" or a.ndim < 2 or a.shape[-1] < 2:
        return False
    return marked or a.ndim == 2


def compare(model: str, reference: dict, candidate: dict, tol: Tolerance, device: str = "cpu", *,
            output: str | None = None, classes: bool | None = None) -> Comparison:
    """Compare one output of two backends (``outputs``: that output's array, ``output_name``,
    ``indices`` of the inputs each ran, ``label``). ``classes`` forces the class-score rule."""
    ref_all = np.asarray(reference["outputs"])
    cand = np.asarray(candidate["outputs"])
    idx = np.asarray(candidate["indices"])
    ref = ref_all[_positions(np.asarray(reference["indices"]), idx, reference["label"], candidate["label"])]
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
                      nonfinite={"reference": _nonfinite(ref), "candidate": _nonfinite(cand)} if not reasons else {})
    if not checks["shape"]["ok"] or len(cand) == 0:
        if len(cand) == 0:
            reasons.append("no outputs")
        return base

    r = ref.astype(np.float64)
    c = cand.astype(np.float64)
    bad_c = ~np.isfinite(c)
    bad_r = ~np.isfinite(r)
    if bad_c.any() or bad_r.any():
        # NaN/Inf must sit in the same places with the same values (Inf == Inf); they count as exact there.
        same = (bad_c == bad_r) & ((np.isnan(c) & np.isnan(r)) | (c == r) | ~bad_c)
        if not same.all() or bad_c.sum() != bad_r.sum():
            reasons.append(f"NaN/Inf: {int(bad_c.sum())} in the candidate, {int(bad_r.sum())} in the reference")
        r = np.where(bad_r | bad_c, 0.0, r)
        c = np.where(bad_r | bad_c, 0.0, c)
    diff = np.abs(c - r)
    sizable = np.abs(r) >= REL_FLOOR  # relative error against ~0 (2e+38 at 1e-38) says nothing
    limit = tol.atol + tol.rtol * np.abs(r)
    outside = diff > limit
    flat_worst = int(diff.argmax()) if diff.size else 0
    per_sample = max(1, diff.size // max(1, len(r)))
    with np.errstate(divide="ignore"):
        log_diff = np.log10(diff.ravel())
    hist, _ = np.histogram(np.clip(log_diff, -13.0, 1.0), bins=[-14.0] + HIST_EDGES[1:-1] + [2.0])
    if outside.any():
        reasons.append(f"{int(outside.sum())} of {outside.size} values beyond atol {tol.atol:g} + rtol {tol.rtol:g}"
                       f" (max abs diff {diff.max():.3g} at input {int(idx[flat_worst // per_sample])})")
    result = replace(
        base,
        max_abs_diff=_finite(diff.max()) if diff.size else 0.0,
        max_rel_diff=_finite((diff[sizable] / np.abs(r[sizable])).max()) if sizable.any() else None,
        mean_abs_diff=_finite(diff.mean()) if diff.size else 0.0,
        p99_abs_diff=_finite(np.percentile(diff, 99)) if diff.size else 0.0,
        outside_tolerance=int(outside.sum()),
        worst_index=int(idx[flat_worst // per_sample]),
        histogram=[int(h) for h in hist],
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


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> dict | None:
    """Top-1 accuracy over the labelled inputs (labels >= 0); None when there are none."""
    mask = labels >= 0
    if not mask.any():
        return None
    correct = int((probabilities[mask].argmax(axis=1) == labels[mask]).sum())
    return {"accuracy": correct / int(mask.sum()), "correct": correct, "n": int(mask.sum())}
