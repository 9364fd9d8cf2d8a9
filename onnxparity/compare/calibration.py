"""The calibrated verdict: a candidate judged by its distance from the float64 truth (NumPy only).

The reference (the original on the CPU) is run twice, in float32 and in float64. Float32 noise
grows with a model's depth and width, so a fixed atol is either too tight for a transformer or
too loose for a subtle fault; the reference's own error against float64 measures, per output,
how far an honest float32 run of *this* model lands from its mathematics. A candidate passes when

    max |candidate - float64| <= K * max |reference - float64| + FLOOR_ULPS * eps32 * max |float64|

that is, when it is at most K times as far from the truth as the original itself, with a floor of
a few float32 ulps of the output's scale for outputs the reference computes (almost) exactly.
K and the floor were chosen from the ratios measured on every model in docs/parity.md
(``scripts/float64_ratios.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from onnxparity.compare.metrics import finite_or_none

K = 4.0  # a candidate may be this many times as far from float64 as the reference (docs/parity.md)
FLOOR_ULPS = 8  # float32 ulps of the output's largest magnitude that every candidate is allowed
EPS32 = float(np.finfo(np.float32).eps)
CALIBRATED = "float64-calibrated"


@dataclass(frozen=True)
class Calibration:
    """One output's errors against float64 and the allowance they give (JSON: a comparison's ``float64``)."""

    reference_error: float  # max |reference - float64|: the original's own float32 noise
    candidate_error: float  # max |candidate - float64|
    ratio: float | None  # candidate_error / reference_error; None when the reference is exact
    floor: float  # FLOOR_ULPS * eps32 * max |float64|
    allowance: float  # k * reference_error + floor: the most candidate_error may be
    k: float = K

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def passed(self) -> bool:
        return self.candidate_error <= self.allowance

    def summary(self, candidate: str = "the candidate", reference: str = "the original") -> str:
        """"onnxruntime:cpu is 1.3x as far from float64 as torch:cpu (3.1e-05 vs 2.4e-05)"."""
        times = "infinitely" if self.ratio is None and self.candidate_error else f"{self.ratio or 0:.3g}x"
        return (f"{candidate} is {times} as far from float64 as {reference} "
                f"({self.candidate_error:.3g} vs {self.reference_error:.3g})")


def calibrate(reference: np.ndarray, candidate: np.ndarray, truth: np.ndarray, k: float = K,
              floor_ulps: float = FLOOR_ULPS) -> Calibration:
    """Errors of ``reference`` (float32) and ``candidate`` against ``truth`` (float64), over the
    places all three are finite (NaN/Inf are judged apart)."""
    r, c, t = (np.asarray(a, np.float64) for a in (reference, candidate, truth))
    finite = np.isfinite(r) & np.isfinite(c) & np.isfinite(t)
    r, c, t = r[finite], c[finite], t[finite]
    ref_err = float(np.abs(r - t).max(initial=0.0))
    cand_err = float(np.abs(c - t).max(initial=0.0))
    floor = floor_ulps * EPS32 * float(np.abs(t).max(initial=0.0))
    return Calibration(reference_error=ref_err, candidate_error=cand_err,
                       ratio=cand_err / ref_err if ref_err > 0 else None, floor=floor,
                       allowance=k * ref_err + floor, k=k)


def beyond(candidate: np.ndarray, truth: np.ndarray, cal: Calibration) -> np.ndarray:
    """Where ``|candidate - truth|`` exceeds the allowance (non-finite places count as within: judged apart)."""
    diff = np.abs(np.asarray(candidate, np.float64) - np.asarray(truth, np.float64))
    return np.isfinite(diff) & (diff > cal.allowance)


def smallest_tolerances(diff: np.ndarray, reference: np.ndarray) -> tuple[float | None, float | None]:
    """(the smallest atol that passes with rtol 0, the smallest rtol that passes with atol 0) for
    ``diff = |candidate - reference|``; rtol is None where a reference zero differs (none would pass)."""
    if diff.size == 0:
        return 0.0, 0.0
    atol = finite_or_none(diff.max())
    ref = np.abs(reference)
    if ((ref == 0) & (diff > 0)).any():
        return atol, None
    sizable = ref > 0
    rtol = float((diff[sizable] / ref[sizable]).max()) if sizable.any() else 0.0
    return atol, finite_or_none(rtol)
