"""Plain metrics over a reference and a candidate array (NumPy only): the one definition of each.

Differences are taken in float64. NaN and Inf are judged apart (:func:`nonfinite_mismatches`):
the same non-finite value in the same place counts as exact, anything else is a mismatch; the
numbers below are then computed with those places zeroed on both sides.
"""

from __future__ import annotations

import math

import numpy as np

REL_FLOOR = 1e-6  # the relative difference covers reference values at least this large
# log10(|difference|) histogram bins: below 1e-12 (exact, in float32 terms), ..., at least 1.
HIST_EDGES = [-np.inf] + [float(e) for e in range(-12, 1)] + [np.inf]


def finite_or_none(value) -> float | None:
    """A float JSON can hold (None for an overflow, which strict JSON has no number for)."""
    value = float(value)
    return value if np.isfinite(value) else None


def nonfinite_counts(a: np.ndarray) -> dict:
    return {"nan": int(np.isnan(a).sum()), "inf": int(np.isinf(a).sum())}


def nonfinite_mismatches(reference: np.ndarray, candidate: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(places where NaN/Inf differ, both float64 arrays with every non-finite place zeroed)."""
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    bad_r, bad_c = ~np.isfinite(r), ~np.isfinite(c)
    if not (bad_r.any() or bad_c.any()):
        return 0, r, c
    same = bad_r & bad_c & ((np.isnan(r) & np.isnan(c)) | (r == c))
    bad = bad_r | bad_c
    return int((bad & ~same).sum()), np.where(bad, 0.0, r), np.where(bad, 0.0, c)


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """The largest ``|c - r|`` (0 over no elements) where every difference is finite; None when the
    shapes differ or NaN/Inf leave no number that means anything."""
    if np.shape(reference) != np.shape(candidate):
        return None
    diff = np.abs(np.asarray(reference, np.float64) - np.asarray(candidate, np.float64))
    return float(diff.max(initial=0.0)) if np.isfinite(diff).all() else None


def max_rel(diff: np.ndarray, reference: np.ndarray) -> float | None:
    """The largest ``|c - r| / |r|`` over reference values of at least ``REL_FLOOR`` (relative error
    against about zero, 2e+38 at 1e-38, says nothing); None when there are none."""
    sizable = np.abs(reference) >= REL_FLOOR
    return float((diff[sizable] / np.abs(reference[sizable])).max()) if sizable.any() else None


def outside(diff: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """Where ``|c - r| > atol + rtol * |r|`` (NumPy's ``allclose`` rule, element by element)."""
    return diff > atol + rtol * np.abs(reference)


def log10_histogram(diff: np.ndarray) -> list[int]:
    """Counts of ``log10 |c - r|`` per ``HIST_EDGES`` bin."""
    with np.errstate(divide="ignore"):
        log_diff = np.log10(diff.ravel())
    hist, _ = np.histogram(np.clip(log_diff, -13.0, 1.0), bins=[-14.0] + HIST_EDGES[1:-1] + [2.0])
    return [int(h) for h in hist]


def sqnr_db(sum_sq_ref: float, sum_sq_err: float) -> float:
    """Signal-to-quantization-noise ratio, ``10 log10(sum r^2 / sum (c - r)^2)``; inf when exact."""
    if sum_sq_err == 0.0:
        return math.inf
    if sum_sq_ref == 0.0:
        return -math.inf
    return 10.0 * math.log10(sum_sq_ref / sum_sq_err)


def cosine_per_sample(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's values (axis 0 is the sample axis), as Polygraphy defines
    it over flattened arrays: 1 when both are all zero, 0 when only one is."""
    r = np.asarray(reference, np.float64).reshape(len(reference), -1)
    c = np.asarray(candidate, np.float64).reshape(len(candidate), -1)
    norm_r, norm_c = np.linalg.norm(r, axis=1), np.linalg.norm(c, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (r * c).sum(axis=1) / (norm_r * norm_c)
    cos = np.where((norm_r == 0) & (norm_c == 0), 1.0, np.where((norm_r == 0) | (norm_c == 0), 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-noise ratio in dB over every value, ``10 log10(sum r^2 / sum (c - r)^2)`` (Polygraphy's
    SNR: mean over mean); inf when exact."""
    r, c = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    return sqnr_db(float(np.square(r).sum()), float(np.square(c - r).sum()))


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The share of rows (2-D class scores) whose top class is the same on both sides."""
    return float(np.mean(np.asarray(reference).argmax(1) == np.asarray(candidate).argmax(1)))


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> dict | None:
    """Top-1 accuracy over the labelled inputs (labels >= 0); None when there are none."""
    mask = labels >= 0
    if not mask.any():
        return None
    correct = int((probabilities[mask].argmax(axis=1) == labels[mask]).sum())
    return {"accuracy": correct / int(mask.sum()), "correct": correct, "n": int(mask.sum())}


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels (probabilities clipped at 1e-12)."""
    p = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None)
    return float(-np.log(p).mean())
