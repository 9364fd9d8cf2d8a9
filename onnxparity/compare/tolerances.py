"""How far a candidate may sit from its reference: the tolerances, by device, and their scaling."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


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


# A fresh file against its original (convert's own check, migrate's legs, locate's layers), with
# atol scaled to the values' magnitude: a converter reorders float sums.
CONVERT_TOLERANCE = Tolerance(atol=1e-4, rtol=1e-3)


def tolerance_for(device: str, atol: float | None = None, rtol: float | None = None,
                  min_agreement: float | None = None) -> Tolerance:
    """The default for ``device`` (every accelerator shares "cuda"'s), with any override applied."""
    base = DEFAULT_TOLERANCES["cpu" if device == "cpu" else "cuda"]
    changes = {k: v for k, v in dict(atol=atol, rtol=rtol, min_agreement=min_agreement).items() if v is not None}
    return replace(base, **changes)


def scaled_atol(atol: float, peak: float) -> float:
    """``atol * max(1, peak)``: the absolute part grows with the values' largest magnitude ``peak``."""
    return atol * max(1.0, peak)


def scaled_to(tol: Tolerance, reference: np.ndarray) -> Tolerance:
    """``tol`` with its atol scaled to the peak ``|reference|`` (1 where a value is NaN or Inf)."""
    reference = np.asarray(reference)
    finite = reference.size and np.isfinite(reference).all()
    return replace(tol, atol=scaled_atol(tol.atol, float(np.max(np.abs(reference))) if finite else 1.0))
