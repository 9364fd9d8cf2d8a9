"""The samples every backend sees (:class:`Inputs`), and the sha256 that says two sets are the same.

Sample arrays past :data:`SPILL_BYTES` live in an unlinked temporary file (:func:`rows_array`) and
every pass over them goes a block at a time (:func:`row_blocks`), so that what the parent process
holds stays bounded whatever the number of inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Mapping

import numpy as np

from onnxparity._io import scratch_array

# What one sample is (``Inputs.kinds``); edge cases carry their own kind ("zeros", "maximum"...).
DIGIT = "digit"
RANDOM = "random"
IMAGE = "image"
GIVEN = "given"
SPILL_BYTES = 256 * 2**20  # a sample array larger than this lives on disk (rows_array)
BLOCK_BYTES = 32 * 2**20  # what one step of a pass over samples holds (row_blocks)


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

    def take(self, index) -> Inputs:
        """The samples at ``index`` (a slice gives views, not copies)."""
        kinds = self.kinds[index] if isinstance(index, slice) else tuple(self.kinds[i] for i in index)
        return Inputs(self.labels[index], kinds, self.source,
                      images=None if self.images is None else self.images[index],
                      arrays=None if self.arrays is None else {k: v[index] for k, v in self.arrays.items()})

    @property
    def n_digits(self) -> int:
        return int((self.labels >= 0).sum())

    def fingerprint(self) -> str:
        """sha256 of the samples, labels and kinds: two saved runs are comparable when these agree."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:  # computed once: a pass over every sample
        h = hashlib.sha256()
        if self.images is not None:
            _hash_rows(h, self.images, np.float32)
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
        a = np.asarray(arrays[name])
        a = a.reshape(1) if a.ndim == 0 else a  # as np.ascontiguousarray has always given it
        digest.update(f"{name}:{a.dtype}:{a.shape}".encode())
        _hash_rows(digest, a, a.dtype)


def _hash_rows(digest, array: np.ndarray, dtype) -> None:
    """The bytes of ``array`` as ``dtype``, in C order, a block of rows at a time (no whole copy)."""
    for rows in row_blocks(len(array), array[:1].nbytes, release=(array,)):
        digest.update(memoryview(np.ascontiguousarray(array[rows], dtype=dtype)).cast("B"))


def rows_array(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An empty array of samples: in memory up to :data:`SPILL_BYTES`, else on disk
    (:func:`onnxparity._io.scratch_array`), filled and read a block at a time."""
    dtype = np.dtype(dtype)
    if math.prod(shape) * dtype.itemsize <= SPILL_BYTES:
        return np.empty(shape, dtype)
    return scratch_array(shape, dtype)


def take_rows(array: np.ndarray, index: np.ndarray | None = None, dtype=None) -> np.ndarray:
    """``array[index]`` along the first axis (every row by default), as a C-ordered array of ``dtype``
    (``array``'s by default), copied a block at a time into a :func:`rows_array`."""
    n = len(array) if index is None else len(index)
    out = rows_array((n, *array.shape[1:]), array.dtype if dtype is None else dtype)
    for rows in row_blocks(n, out[:1].nbytes + array[:1].nbytes, release=(array, out)):
        out[rows] = array[rows if index is None else index[rows]]
    return out


def row_blocks(n: int, row_bytes: int, release: tuple = ()) -> Iterator[slice]:
    """Slices over ``n`` rows of ``row_bytes`` each, about :data:`BLOCK_BYTES` a slice; after each
    block, the pages of the disk-backed arrays in ``release`` are let go (:func:`release_pages`)."""
    step = max(1, BLOCK_BYTES // max(1, int(row_bytes)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))
        release_pages(*release)


def release_pages(*arrays) -> None:
    """Let go of the pages this process has read or written of disk-backed ``arrays``: they stay in
    the file (and the page cache), so a pass over mapped samples holds one block, not all it read,
    and a worker's resident size (``--max-memory``) counts what it holds, not what it has read."""
    for array in arrays:
        while isinstance(array, np.ndarray) and not isinstance(array, np.memmap):
            array = array.base
        mapping = getattr(array, "_mmap", None)  # NumPy's own handle on the mapping
        if mapping is not None and array.mode != "c" and hasattr(mapping, "madvise"):  # shared: nothing is lost
            mapping.madvise(mmap.MADV_DONTNEED)
