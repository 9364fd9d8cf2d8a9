"""Judges: one backend's output against the reference's, as a :class:`Comparison` with its verdict.

A judge is a plain function over saved arrays (after Polygraphy's ``CompareFunc``), so saved runs
can be judged again later (``onnxparity compare``). :func:`compare` picks the rule by what the
output is (:func:`holds_classes`, the one rule):

- **exact** for integer and bool outputs;
- **class scores** for float outputs marked so (the spec's ``class_outputs``, or computed by
  Softmax/LogSoftmax in the graph: :attr:`onnxparity.onnx_model.OnnxModel.class_outputs`) or named so
  (``logits``, ``probabilities``, ``probs``, ``log_probs``...): element-wise as below, and top-1
  agreement over the last axis. Shape alone says nothing: an embedding (N, 384) is no class scores;
- **element-wise** for any other float output: within tolerance when ``|candidate - reference| <=
  atol + rtol * |reference|`` (NumPy's ``allclose`` rule).

Every float output also gets its cosine similarity per sample (the lowest and the median) and its
SNR in dB, reported; they judge variants only.

A top-1 disagreement is a *near tie* when the reference's own margin between the two classes
involved is within that tolerance: any within-tolerance wobble could flip it. Near ties are
reported apart and do not count against ``min_agreement``; real disagreements do. :func:`within`
is the element-wise verdict alone, for callers that need no :class:`Comparison`.

:func:`judge_variant` judges a quantized variant instead, by its outputs' kinds against the
thresholds of :class:`VariantGate` (quantize's gate too): class scores by top-1 agreement (near ties
by the fp32 file's own margins within float32's tolerance) and accuracy, other float outputs by
cosine and SNR.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import re

import numpy as np

from onnxparity.compare import calibration
from onnxparity.compare.metrics import (accuracy, cosine_per_sample, finite_or_none, log10_histogram, max_rel,
                                        nonfinite_counts, nonfinite_mismatches, outside, snr_db)
from onnxparity.compare.tolerances import Tolerance
from onnxparity.errors import InputError

# Words in an output's name that say it holds class scores (the name split at "_", ".", "/", ":", "-").
CLASS_WORDS = frozenset({"logits", "logit", "probabilities", "probability", "probs", "prob", "proba", "probas",
                         "logprobs", "logprob", "softmax", "logsoftmax"})


@dataclass(frozen=True)
class VariantGate:
    """What an int8/fp16 variant must keep of its fp32 file: ``onnxparity quantize``'s gate and
    ``check``'s verdict of a variant, the one set of thresholds (docs/quantize.md has the measurements).

    Class scores: top-1 agreement (near ties by the fp32 file's margins excepted) and, where labels
    exist, the accuracy drop. Other float outputs: the median and the lowest cosine similarity over the
    samples, and the SNR over all values, against the fp32 file."""

    min_agreement: float = 0.99
    max_accuracy_drop: float = 0.005
    # Measured on the real MiniLM over 32 sentences (docs/quantize.md): a good dynamic-int8 file keeps a
    # median cosine of 0.956 (last_hidden_state) and 0.983 (pooler_output), the lowest sentence at 0.80
    # to 0.97, SNR 9.9 to 19 dB; a broken one (static QDQ of every op on one sample) falls to a median of
    # 0.39 and 0.64, the lowest at 0.25, SNR -0.3 to 1.7 dB.
    min_cosine_median: float = 0.9
    min_cosine: float = 0.5  # the lowest sample's
    min_snr_db: float = 6.0

    @classmethod
    def recorded(cls, variant: dict | None, **overrides) -> "VariantGate":
        """The gate a variant file records (``variant["gate"]``; defaults for keys it lacks), with
        every override that is not None applied."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: float(v) for k, v in ((variant or {}).get("gate") or {}).items() if k in known}
        values.update({k: float(v) for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def reasons(self, c: "Comparison", accuracies: tuple[float, float] | None = None) -> list[str]:
        """Why output ``c`` of a variant may not stand in for the fp32 file's (empty: it may), by its
        kind; ``accuracies`` (fp32, variant) where labels exist. Exact outputs are left to ``compare``."""
        found = []
        if c.judged_as == "class scores" and c.n:
            agreement = (c.n - c.real_disagreements) / c.n
            if agreement < self.min_agreement:
                found.append(f"output {c.output}: top-1 agreement {agreement:.2%} is below {self.min_agreement:.2%} "
                             f"({c.real_disagreements} real disagreements)")
            # Rounded: accuracies are fractions of counts, and 199/200 - 198/200 is 0.0050000000000000044.
            drop = None if accuracies is None else round(accuracies[0] - accuracies[1], 12)
            if drop is not None and drop > self.max_accuracy_drop:
                found.append(f"output {c.output}: accuracy drops by {drop:.4f} "
                             f"({accuracies[0]:.4f} -> {accuracies[1]:.4f}), more than {self.max_accuracy_drop:.4f}")
        elif c.judged_as == "element-wise" and c.cosine_min is not None:
            if c.cosine_median < self.min_cosine_median or c.cosine_min < self.min_cosine:
                found.append(f"output {c.output}: cosine similarity median {c.cosine_median:.4f}, lowest "
                             f"{c.cosine_min:.4f} over {c.n} samples (at least {self.min_cosine_median:g} and "
                             f"{self.min_cosine:g})")
            if c.snr_db is not None and c.snr_db < self.min_snr_db:
                found.append(f"output {c.output}: SNR {c.snr_db:.1f} dB is below {self.min_snr_db:g} dB")
        return found


JUDGED_BY = ("{precision} variant: class scores by top-1 agreement (at least {min_agreement:.2%}; near ties by the "
             "fp32 file's margins within atol {atol:g}) and accuracy (drop at most {max_accuracy_drop:.4f}) on the "
             "{n} judged inputs; other float outputs by cosine (median at least {min_cosine_median:g}, lowest sample "
             "at least {min_cosine:g}) and SNR (at least {min_snr_db:g} dB); not by element-wise tolerance")


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
    cosine_min: float | None = None  # float outputs: the lowest cosine similarity over the samples
    cosine_median: float | None = None
    snr_db: float | None = None  # float outputs: 10 log10(sum r^2 / sum (c - r)^2); inf when exact
    tolerance_source: str = "fixed"  # "float64-calibrated" (atol is then its allowance), "exact", "fixed: <why>"
    float64: dict | None = None  # calibration.Calibration: both errors against float64, their ratio, the allowance
    smallest_atol: float | None = None  # the smallest atol (rtol 0) that would have passed
    smallest_rtol: float | None = None  # the smallest rtol (atol 0); None where none would
    probes: bool = False  # on the out-of-domain probes only: reported apart, decides only under --strict-probes

    def to_dict(self) -> dict:
        return asdict(self)


def names_classes(name: str | None) -> bool:
    """Whether an output's name says it holds class scores (``logits``, ``probabilities``, ``log_probs``...)."""
    return bool(name) and any(w in CLASS_WORDS for w in re.split(r"[_./:\-]+", name.lower()))


def holds_classes(array: np.ndarray, name: str | None = None, marked: bool = False) -> bool:
    """The one rule of what holds class scores: a float output with a last axis above 1, marked so
    (``marked``: the spec's ``class_outputs``, or the graph computes it with Softmax/LogSoftmax) or
    named so (:func:`names_classes`)."""
    a = np.asarray(array)
    if a.dtype.kind != "f" or a.ndim < 2 or a.shape[-1] < 2:
        return False
    return marked or names_classes(name)


def class_outputs(arrays: dict, marked=()) -> list[str]:
    """The outputs among ``arrays`` (name -> array) that hold class scores; ``marked``: names marked so."""
    return [n for n, a in arrays.items() if holds_classes(a, n, n in set(marked))]


def class_output(arrays: dict, marked=()) -> str | None:
    """The output whose top-1 is the prediction: the first that holds class scores; None when none does."""
    return next(iter(class_outputs(arrays, marked)), None)


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
            output: str | None = None, classes: bool | None = None, truth: np.ndarray | None = None,
            fixed_why: str | None = None) -> Comparison:
    """Compare one output of two backends (``outputs``: that output's array, ``output_name``,
    ``indices`` of the inputs each ran, ``label``). ``classes``: True when the output is marked as class
    scores (:func:`holds_classes`), False to judge it element-wise whatever its name.
    ``truth``: the reference's float64 run of that output, which decides by :mod:`.calibration`
    unless ``fixed_why`` says why ``tol`` decides instead (the errors against it are reported)."""
    ref_all = np.asarray(reference["outputs"])
    cand = np.asarray(candidate["outputs"])
    idx = np.asarray(candidate["indices"])
    pos = positions(np.asarray(reference["indices"]), idx, reference["label"], candidate["label"])
    ref = ref_all[pos]
    exact = ref.dtype.kind in "biu"
    name = output or reference["output_name"]
    is_classes = classes is not False and holds_classes(ref, name, bool(classes))
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
                      min_agreement=tol.min_agreement, checks=checks, output=name,
                      judged_as="exact" if exact else "class scores" if is_classes else "element-wise",
                      nonfinite={"reference": nonfinite_counts(ref), "candidate": nonfinite_counts(cand)}
                      if not reasons else {},
                      tolerance_source="exact" if exact else f"fixed: {fixed_why or 'no float64 truth'}")
    if not checks["shape"]["ok"] or len(cand) == 0:
        if len(cand) == 0:
            reasons.append("no outputs")
        return base

    mismatch, r, c = nonfinite_mismatches(ref, cand)
    if mismatch:
        reasons.append(f"NaN/Inf: {int((~np.isfinite(cand)).sum())} in the candidate, "
                       f"{int((~np.isfinite(ref)).sum())} in the reference")
    diff = np.abs(c - r)
    flat_worst = int(diff.argmax()) if diff.size else 0
    per_sample = max(1, diff.size // max(1, len(r)))
    t = None if exact or truth is None or np.shape(truth)[1:] != ref.shape[1:] else np.asarray(truth)[pos]
    cal = calibration.calibrate(ref, cand, t) if t is not None else None
    if cal is not None and fixed_why is None:  # the calibrated rule decides; its allowance is the atol
        tol = replace(tol, atol=cal.allowance, rtol=0.0)
        beyond = calibration.beyond(cand, t, cal)
        base = replace(base, atol=tol.atol, rtol=0.0, tolerance_source=calibration.CALIBRATED)
        if beyond.any():
            reasons.append(f"{int(beyond.sum())} of {beyond.size} values beyond the float64-calibrated allowance "
                           f"{cal.allowance:.3g} ({cal.k:g}x the reference's own error + floor): "
                           f"{cal.summary(candidate['label'], reference['label'])}")
    else:
        beyond = outside(diff, r, tol.atol, tol.rtol)
        if beyond.any():
            reasons.append(f"{int(beyond.sum())} of {beyond.size} values beyond atol {tol.atol:g} + rtol "
                           f"{tol.rtol:g} (max abs diff {diff.max():.3g} at input {int(idx[flat_worst // per_sample])})")
    rel = max_rel(diff, r)
    smallest_atol, smallest_rtol = calibration.smallest_tolerances(diff, r)
    result = replace(
        base, float64=cal.to_dict() if cal else None, smallest_atol=smallest_atol, smallest_rtol=smallest_rtol,
        max_abs_diff=finite_or_none(diff.max()) if diff.size else 0.0,
        max_rel_diff=None if rel is None else finite_or_none(rel),
        mean_abs_diff=finite_or_none(diff.mean()) if diff.size else 0.0,
        p99_abs_diff=finite_or_none(np.percentile(diff, 99)) if diff.size else 0.0,
        outside_tolerance=int(beyond.sum()),
        worst_index=int(idx[flat_worst // per_sample]),
        histogram=log10_histogram(diff),
    )
    if not exact:
        cosine = cosine_per_sample(r, c)
        result = replace(result, cosine_min=float(cosine.min()), cosine_median=float(np.median(cosine)),
                         snr_db=snr_db(r, c))
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
def judge_variant(model: str, reference: dict, candidate: dict, labels: np.ndarray, tol: Tolerance,
                  device: str = "cpu", *, variant: dict, classes: bool | None = None,
                  min_agreement: float | None = None) -> Comparison:
    """:func:`compare` for a quantized variant (``variant``: its metadata, with ``precision`` and the
    ``gate`` it passed; ``min_agreement`` overrides the gate's): judged by :class:`VariantGate` on the
    output's kind, not by ``tol`` (float32's tolerance of the device, which only tells near ties).
    With labels, the gate is judged on the labelled inputs, where the synthetic edge cases (outside
    the calibrated ranges by design) are reported only. ``checks["variant"]`` says how."""
    gate = VariantGate.recorded(variant, min_agreement=min_agreement)
    output = candidate["output_name"]
    loose = compare(model, reference, candidate, Tolerance(float("inf"), 0.0, 0.0), device, output=output,
                    classes=classes)  # names, shapes, dtypes and NaN/Inf judged; the numbers of every input
    idx = np.asarray(candidate["indices"])
    keep = labels[idx] >= 0
    if not keep.any():
        keep[:] = True
    cand = {**candidate, "outputs": np.asarray(candidate["outputs"])[keep], "indices": idx[keep]}
    judged = compare(model, reference, cand, replace(tol, min_agreement=0.0), device, output=output, classes=classes)
    check = {"ok": True, "precision": variant["precision"], "gate": gate.to_dict(),
             "judged_by": JUDGED_BY.format(precision=variant["precision"], n=int(keep.sum()), atol=tol.atol,
                                           **gate.to_dict()),
             "top1_agreement_all_inputs": loose.top1_agreement, "cosine_min_all_inputs": loose.cosine_min}
    accuracies = None
    if judged.judged_as == "class scores" and loose.n and (labels[idx] >= 0).any():
        ref_rows = np.asarray(reference["outputs"])[positions(np.asarray(reference["indices"]), cand["indices"],
                                                              reference["label"], candidate["label"])]
        accuracies = (accuracy(ref_rows, labels[cand["indices"]])["accuracy"],
                      accuracy(cand["outputs"], labels[cand["indices"]])["accuracy"])
        check["accuracy"] = {"reference": accuracies[0], "variant": accuracies[1]}
    reasons = loose.reasons + (gate.reasons(judged, accuracies) if judged.n and not loose.reasons else [])
    check["ok"] = not reasons
    return replace(loose, passed=not reasons, reasons=reasons, atol=None, rtol=None, min_agreement=gate.min_agreement,
                   outside_tolerance=0, top1_agreement=judged.top1_agreement, top1_agree_count=judged.top1_agree_count,
                   disagreements=judged.disagreements, near_ties=judged.near_ties,
                   real_disagreements=judged.real_disagreements, cosine_min=judged.cosine_min,
                   cosine_median=judged.cosine_median, snr_db=judged.snr_db, checks={**loose.checks, "variant": check})
