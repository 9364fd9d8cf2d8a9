"""The samples every backend sees (:class:`Inputs`), and the sha256 that says two sets are the same."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

import numpy as np

# What one sample is (``Inputs.kinds``); edge cases carry their own kind ("zeros", "maximum"...).
DIGIT = "digit"
RANDOM = "random"
IMAGE = "image"
GIVEN = "given"


@dataclass(frozen=True)
class Inputs:
    """Samples for every backend: raw ``images`` (pixels) or named ``arrays``, with labels and kinds."""

    labels: np.ndarray  # (N,) int64; -1 where there is no label
    kinds: tuple[str, ...]  # per sample: "digit", "image", "random", "given" or an edge case's kind
    source: str
    images: np.ndarray | None = None  # (N, H, W[, C]) float32 raw pixel values (edge cases may leave 0..255)
    arrays: Mapping[str, np.ndarray] | None = None  # input name -> (N, ...) in the model's own form

    def __post_init__(self) -> None:
        if (self.images is None) == (self.arrays is None):
            raise ValueError("Inputs hold either images or arrays")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_digits(self) -> int:
        return int((self.labels >= 0).sum())

    def fingerprint(self) -> str:
        """sha256 of the samples, labels and kinds: two saved runs are comparable when these agree."""
        h = hashlib.sha256()
        if self.images is not None:
            h.update(np.ascontiguousarray(self.images, dtype=np.float32).tobytes())
        else:
            hash_arrays(h, self.arrays)
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        h.update(json.dumps(list(self.kinds)).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for kind in self.kinds:
            counts[kind] = counts.get(kind, 0) + 1
        n_real = sum(1 for k in self.kinds if k in (DIGIT, IMAGE, GIVEN))
        return {"source": self.source, "n": len(self), "n_digits": self.n_digits,
                "n_synthetic": len(self) - n_real, "kinds": counts, "fingerprint": self.fingerprint()}


def unlabelled(n: int) -> np.ndarray:
    """The labels of ``n`` samples nobody labelled."""
    return np.full(n, -1, np.int64)


def hash_arrays(digest, arrays: Mapping[str, np.ndarray]) -> None:
    """Feed named arrays (name, dtype, shape, bytes; in name order) into a hashlib ``digest``."""
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype}:{a.shape}".encode())
        digest.update(a.tobytes())
