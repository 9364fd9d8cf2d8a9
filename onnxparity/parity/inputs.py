"""The inputs every backend sees: real digits plus seeded synthetic edge cases, prepared once.

Raw inputs are pixel arrays (N, 28, 28) in float32, so that edge cases may leave the 0..255
range the models were trained on. :func:`prepare` turns them into one model's batch (layout and
preprocessing from its :class:`~onnxparity.spec.ModelSpec`, i.e. from the ONNX metadata) and
writes it as ``.npy`` beside the others, where every worker maps it read-only instead of
receiving a copy through a pipe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxparity.data import load_digits
from onnxparity.errors import InputError
from onnxparity.spec import ModelSpec

DIGIT = "digit"
# kind -> how many of it; all seeded (SYNTHETIC_SEED), so two runs see the same pixels.
SYNTHETIC = {"zeros": 1, "maximum": 1, "noise": 4, "over-range": 2, "negative": 1}
SYNTHETIC_SEED = 20240531


@dataclass(frozen=True)
class ParityInputs:
    images: np.ndarray  # (N, H, W) float32 raw pixel values (digits 0..255; edge cases anywhere)
    labels: np.ndarray  # (N,) int64; -1 where there is no label (synthetic cases)
    kinds: tuple[str, ...]  # per input: "digit" or the synthetic case's kind
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_digits(self) -> int:
        return int((self.labels >= 0).sum())

    def fingerprint(self) -> str:
        """sha256 of the pixels, labels and kinds: two saved runs are comparable when these agree."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        h.update(json.dumps(list(self.kinds)).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for kind in self.kinds:
            counts[kind] = counts.get(kind, 0) + 1
        return {"source": self.source, "n": len(self), "n_digits": self.n_digits,
                "n_synthetic": len(self) - self.n_digits, "kinds": counts, "fingerprint": self.fingerprint()}


def synthetic_cases(digits: np.ndarray, seed: int = SYNTHETIC_SEED, shape=(28, 28)) -> tuple[np.ndarray, list[str]]:
    """Edge cases: all zeros, all at maximum, uniform noise, and values out of the training range
    (real digits brightened four times past 255, and a negated digit)."""
    rng = np.random.default_rng(seed)
    out, kinds = [], []
    out += [np.zeros(shape, np.float32)] * SYNTHETIC["zeros"]
    out += [np.full(shape, 255.0, np.float32)] * SYNTHETIC["maximum"]
    out += list(rng.uniform(0, 255, size=(SYNTHETIC["noise"], *shape)).astype(np.float32))
    base = digits[: SYNTHETIC["over-range"]].astype(np.float32) if len(digits) else np.zeros((0, *shape), np.float32)
    out += list(base * 4.0)
    out += list(-digits[: SYNTHETIC["negative"]].astype(np.float32))
    for kind, count in SYNTHETIC.items():
        if kind in ("over-range", "negative"):
            count = min(count, len(digits))
        kinds += [kind] * count
    return np.stack(out).astype(np.float32), kinds


def load_inputs(data: str | None = None, n: int | None = None, synthetic: bool = True) -> ParityInputs:
    """The test split of ``data`` (bundled held-out digits by default), its first ``n``, plus edge cases."""
    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    digits = load_digits(data, "test").head(n)
    images = digits.images.astype(np.float32)
    labels = digits.labels.astype(np.int64)
    kinds = [DIGIT] * len(digits)
    if synthetic:
        extra, extra_kinds = synthetic_cases(digits.images, shape=digits.images.shape[1:])
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, np.full(len(extra), -1, np.int64)])
        kinds += extra_kinds
    return ParityInputs(images, labels, tuple(kinds), digits.source)


def spec_key(spec: ModelSpec, pixels_only: bool = False) -> str:
    """A file name that is the same for specs that prepare inputs the same way."""
    fields = (spec.layout, spec.input_shape, spec.scale, spec.mean, spec.std, spec.input_dtype, pixels_only)
    return "x-" + hashlib.sha1(repr(fields).encode()).hexdigest()[:12]


def prepare(inputs: ParityInputs, spec: ModelSpec, folder: str | Path, pixels_only: bool = False) -> Path:
    """Write ``inputs`` preprocessed for ``spec`` to ``folder`` (once per distinct preprocessing).

    ``pixels_only``: first round and clip the raw values to whole pixels 0..255, for every backend
    of a model whose ONNX file takes raw uint8 pixels (preprocessing embedded in the graph), which
    cannot be fed the out-of-range edge cases as they are.
    """
    path = Path(folder) / f"{spec_key(spec, pixels_only)}.npy"
    if not path.exists():
        images = np.clip(np.rint(inputs.images), 0, 255) if pixels_only else inputs.images
        np.save(path, spec.preprocess(images))
    return path
