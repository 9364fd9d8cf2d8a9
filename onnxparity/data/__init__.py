"""Digits to train and test on: the bundled real-MNIST sample, or real datasets from local files.

Every loader returns a :class:`Digits` of raw uint8 images (N, 28, 28) and int64 labels; each
framework's view (Keras NHWC x/255, PyTorch NCHW Normalize) is made from it by
``onnxparity.models`` and :class:`onnxparity.spec.ModelSpec`, so all backends see the same pixels.

Sources (``path`` argument, the CLI's ``--data``):

- ``None`` / ``"bundled"``: 5,000 MNIST training digits shipped with the package, split 4,500/500.
- a folder of IDX files (``train-images-idx3-ubyte[.gz]`` and ``t10k-*``), as MNIST and
  Fashion-MNIST ship; a folder with only the ``t10k-*`` pair is a test-only set.
- Keras' ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``).
- ``"mnist"``: the full MNIST from the Keras or torchvision cache, downloaded when a network
  allows; offline it says so and falls back to the bundled sample.
"""

from __future__ import annotations

import gzip
import logging
import os
import urllib.request
import zipfile
from dataclasses import dataclass
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
BUNDLED = "bundled"
HELD_OUT_PER_CLASS = 50
SPLIT_SEED = 0
KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# Datasets in the MNIST layout whose classes are not digits, known by the sha256 of their labels (as uint8):
# a model trained on one records its class names, and predicts them.
FASHION_MNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
KNOWN_LABELS = {
    "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9": FASHION_MNIST,  # t10k labels
    "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7": FASHION_MNIST,  # train labels
}


@dataclass(frozen=True)
class Digits:
    """Raw images (N, H, W) uint8 and labels (N,) int64, with where they came from and, for a known
    dataset whose classes are not digits (Fashion-MNIST), the class names."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise InputError(
                f"{self.source}: {len(self.images)} images but {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "Digits":
        """The first ``n`` digits (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Digits(self.images[:n], self.labels[:n], f"{self.source}[:{n}]", self.class_names)


def load_digits(path: str | os.PathLike | None = None, split: str = "test") -> Digits:
    """Load one split ("train" or "test") of a dataset; see the module docstring for ``path``."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, not {split!r}")
    if path is None or str(path) == BUNDLED:
        return _bundled(split)
    if str(path) == "mnist":
        return _full_mnist(split)
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return _idx_folder(p, split)
    if p.suffix == ".npz":
        return _npz(p, split)
    raise InputError(f"{p}: not a dataset (expected a folder of IDX files or an .npz file)")


# -- bundled sample ---------------------------------------------------------------------------
def _bundled(split: str) -> Digits:
    with resources.files(__package__).joinpath("mnist_5k.npz").open("rb") as f:
        data = np.load(f)
        images, labels = data["images"], data["labels"].astype(np.int64)
    held_out = _stratified_held_out(labels)
    mask = np.zeros(len(labels), dtype=bool)
    mask[held_out] = True
    # The source file is sorted by class; a fixed shuffle makes any head (--n) a fair sample.
    keep = np.random.default_rng(SPLIT_SEED).permutation(np.flatnonzero(mask if split == "test" else ~mask))
    return Digits(images[keep], labels[keep], f"bundled MNIST sample ({split}, {len(keep)} digits)")


def _stratified_held_out(labels: np.ndarray) -> np.ndarray:
    """Fixed indices of the held-out part: HELD_OUT_PER_CLASS per class, chosen with a fixed seed."""
    rng = np.random.default_rng(SPLIT_SEED)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:HELD_OUT_PER_CLASS] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


# -- IDX --------------------------------------------------------------------------------------
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip or plain) of unsigned bytes into an array, checking its header."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise InputError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise InputError(f"{path}: truncated or padded: header says {expected} bytes of data, file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _idx_folder(folder: Path, split: str) -> Digits:
    img_stem, lbl_stem = IDX_NAMES[split]
    images, labels = _find(folder, img_stem), _find(folder, lbl_stem)
    if images is None or labels is None:
        if split == "train" and _find(folder, IDX_NAMES["test"][0]):
            raise InputError(f"{folder}: a test-only set (no {img_stem}); it cannot be trained on")
        missing = img_stem if images is None else lbl_stem
        raise InputError(f"{folder}: no {missing}[.gz]; expected MNIST-style IDX files")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise InputError(f"{images}: expected 3 dimensions (N, H, W), got shape {x.shape}")
    if y.ndim != 1:
        raise InputError(f"{labels}: expected 1 dimension (N,), got shape {y.shape}")
    if len(x) != len(y):
        raise InputError(f"{folder}: {len(x)} images in {images.name} but {len(y)} labels in {labels.name}")
    known = KNOWN_LABELS.get(hashlib.sha256(np.asarray(y, np.uint8).tobytes()).hexdigest())
    return Digits(np.array(x), y.astype(np.int64), f"{folder} ({split}, {len(y)} images)", known)


# -- npz --------------------------------------------------------------------------------------
def _npz(path: Path, split: str) -> Digits:
    keys = ("x_train", "y_train") if split == "train" else ("x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data]
            if missing:
                raise InputError(f"{path}: no {', '.join(missing)} (expected Keras' mnist.npz layout)")
            x, y = data[keys[0]], data[keys[1]]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    if x.ndim != 3 or x.dtype != np.uint8:
        raise InputError(f"{path}: {keys[0]} must be uint8 (N, H, W), got {x.dtype} {x.shape}")
    return Digits(x, y.astype(np.int64).reshape(-1), f"{path} ({split}, {len(y)} images)")


# -- full MNIST -------------------------------------------------------------------------------
def _full_mnist(split: str) -> Digits:
    """The full MNIST from a cache, or downloaded; offline, the bundled sample with a warning."""
    keras_cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    for folder in (Path.home() / ".cache" / "torchvision" / "MNIST" / "raw", Path("data") / "MNIST" / "raw"):
        if _find(folder, IDX_NAMES[split][0]):
            return _idx_folder(folder, split)
    if keras_cache.is_file():
        return _npz(keras_cache, split)
    try:
        from onnxparity._io import atomic_path

        with atomic_path(keras_cache) as tmp, urllib.request.urlopen(KERAS_MNIST_URL, timeout=15) as resp:
            tmp.write_bytes(resp.read())
        return _npz(keras_cache, split)
    except OSError as exc:
        log.warning(
            "full MNIST is not cached (%s) and cannot be downloaded (%s); using the bundled sample",
            keras_cache,
            getattr(exc, "reason", exc),
        )
        return _bundled(split)
