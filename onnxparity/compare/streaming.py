"""The metrics of :mod:`~onnxparity.compare.metrics`, accumulated batch by batch (NumPy only).

The interface is three functions over a small value type, so that a whole run never has to be
held in memory and partial results from several batches (or processes) can be combined:

    acc = None
    for ref, cand in batches:
        acc = merge(acc, batch_stats(ref, cand, rtol=1e-3, offset=i0))
    summary = summarize(acc, atol=1e-4)   # max abs, max rel, SQNR dB, within tolerance

Within tolerance is NumPy's ``allclose`` rule, ``|c - r| <= atol' + rtol * |r|`` for every
element, with ``atol' = atol * max(1, max |r|)`` (:func:`~onnxparity.compare.tolerances.scaled_atol`):
intermediate activations range far wider than a model's probabilities, so the absolute part
scales with the values' own magnitude. It is decided from running maxima (``max(|c - r| - rtol *
|r|)`` against the peak), which makes it exact over the whole run without keeping any element.
NaN or Inf in the same place with the same value on both sides counts as exact; anywhere else it
is a mismatch and the values are out of tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from onnxparity.compare.metrics import max_rel, nonfinite_mismatches, sqnr_db
from onnxparity.compare.tolerances import scaled_atol


@dataclass(frozen=True)
class ErrorStats:
    """Sufficient statistics of |candidate - reference| over the elements seen so far."""

    n: int = 0  # elements compared
    max_abs: float = 0.0
    max_rel: float | None = None  # metrics.max_rel: over reference values >= REL_FLOOR; None when there are none
    max_excess: float = -math.inf  # max(|c - r| - rtol * |r|): the allclose margin before atol
    peak_ref: float = 0.0  # max |r|
    sum_sq_ref: float = 0.0
    sum_sq_err: float = 0.0
    nonfinite_mismatch: int = 0  # NaN/Inf on one side only, or different non-finite values
    worst_input: int | None = None  # index (with the batch's offset) of the input holding max_abs


def batch_stats(reference: np.ndarray, candidate: np.ndarray, *, rtol: float, offset: int = 0) -> ErrorStats:
    """Statistics of one batch; axis 0 is the input axis (``offset`` numbers its first input)."""
    if np.shape(reference) != np.shape(candidate):
        raise ValueError(f"shapes differ: reference {np.shape(reference)}, candidate {np.shape(candidate)}")
    if np.size(reference) == 0:
        return ErrorStats()
    mismatch, r, c = nonfinite_mismatches(reference, candidate)
    abs_r = np.abs(r)
    diff = np.abs(c - r)
    worst = int(diff.argmax())
    per_input = max(1, diff.size // max(1, diff.shape[0])) if diff.ndim else 1
    return ErrorStats(
        n=int(r.size),
        max_abs=float(diff.ravel()[worst]),
        max_rel=max_rel(diff, r),
        max_excess=float((diff - rtol * abs_r).max()),
        peak_ref=float(abs_r.max()),
        sum_sq_ref=float(np.square(r).sum()),
        sum_sq_err=float(np.square(c - r).sum()),
        nonfinite_mismatch=mismatch,
        worst_input=offset + worst // per_input,
    )


def merge(a: ErrorStats | None, b: ErrorStats) -> ErrorStats:
    """The statistics of both parts together (``a`` may be None: nothing seen yet)."""
    if a is None or a.n == 0:
        return b
    if b.n == 0:
        return a
    rels = [x for x in (a.max_rel, b.max_rel) if x is not None]
    return ErrorStats(
        n=a.n + b.n,
        max_abs=max(a.max_abs, b.max_abs),
        max_rel=max(rels) if rels else None,
        max_excess=max(a.max_excess, b.max_excess),
        peak_ref=max(a.peak_ref, b.peak_ref),
        sum_sq_ref=a.sum_sq_ref + b.sum_sq_ref,
        sum_sq_err=a.sum_sq_err + b.sum_sq_err,
        nonfinite_mismatch=a.nonfinite_mismatch + b.nonfinite_mismatch,
        worst_input=a.worst_input if a.max_abs >= b.max_abs else b.worst_input,
    )


def within(stats: ErrorStats, *, atol: float) -> bool:
    """Every element within ``atol * max(1, peak |r|) + rtol * |r|`` (rtol was applied per batch)."""
    if stats.nonfinite_mismatch:
        return False
    return stats.n == 0 or stats.max_excess <= scaled_atol(atol, stats.peak_ref)


def summarize(stats: ErrorStats | None, *, atol: float) -> dict:
    """The figures a report shows: max abs / rel diff, SQNR in dB (None for exact), the verdict."""
    stats = stats or ErrorStats()
    db = sqnr_db(stats.sum_sq_ref, stats.sum_sq_err)
    return {
        "max_abs_diff": stats.max_abs,
        "max_rel_diff": stats.max_rel,
        "sqnr_db": round(db, 2) if math.isfinite(db) else None,
        "exact": stats.sum_sq_err == 0.0 and not stats.nonfinite_mismatch,
        "peak_reference": stats.peak_ref,
        "nonfinite_mismatch": stats.nonfinite_mismatch,
        "worst_input": stats.worst_input,
        "n_elements": stats.n,
        "within_tolerance": within(stats, atol=atol),
    }
