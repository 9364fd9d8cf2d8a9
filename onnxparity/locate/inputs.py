"""The inputs both sides of locate see: an array file, digits, or seeded random tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnxparity.errors import InputError
from onnxparity.spec import ModelSpec

DEFAULT_N = 64
SEED = 0


def model_inputs(spec: ModelSpec, data: str | None = None, n: int | None = None,
                 inputs: str | Path | None = None) -> tuple[np.ndarray, str]:
    """(float32 batch of ``spec``'s input shape, where it came from).

    ``inputs``: a ``.npy`` file, or a ``.npz`` holding one array (or one named ``input``), already
    preprocessed. Otherwise digits (``data`` as everywhere; the bundled held-out digits by default)
    for a model that takes one 28x28 grayscale image, and seeded standard-normal tensors for others.
    """
    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    if inputs is not None and data is not None:
        raise InputError("give --inputs or --data, not both")
    shape = tuple(spec.input_shape)
    if inputs is not None:
        x = _read_array(Path(inputs))
        if tuple(x.shape[1:]) != shape:
            raise InputError(f"{inputs}: arrays of shape {list(x.shape[1:])} per input; the model takes {list(shape)}")
        x = x[:n] if n else x
        if len(x) == 0:
            raise InputError(f"{inputs}: no inputs")
        return np.ascontiguousarray(x, dtype=np.float32), f"{inputs} ({len(x)} inputs)"
    digits = _digit_shape(spec)
    if digits:
        from onnxparity.data import load_digits

        d = load_digits(data, "test").head(n or DEFAULT_N)
        return spec.preprocess(d.images), f"{len(d)} digits from {d.source}"
    if data is not None:
        raise InputError(f"--data holds 28x28 digits; this model takes {list(shape)}: pass --inputs FILE.npy")
    count = n or DEFAULT_N
    x = np.random.default_rng(SEED).standard_normal((count, *shape)).astype(np.float32)
    return x, f"{count} seeded standard-normal inputs (seed {SEED})"


def _digit_shape(spec: ModelSpec) -> bool:
    from onnxparity.convert.graph import raw_image_shape

    try:
        return raw_image_shape(spec) == (28, 28)
    except InputError:
        return False


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a .npy or .npz array file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        names = list(loaded.keys())
        if len(names) != 1 and "input" not in names:
            raise InputError(f"{path}: holds {names}; give one array, or one named 'input'")
        return loaded["input" if "input" in names else names[0]]
