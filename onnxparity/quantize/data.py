"""The data a quantization calibrates on and is judged on.

Reference digit models (a ModelSpec with ten digit labels and 28x28 inputs in the metadata):
the training split of ``--data`` calibrates (the bundled digits by default; a test-only set falls
back to the bundled training digits, as ``onnxparity run`` does) and its test split is held out.
Any other model: ``--inputs`` arrays, one per input name (an optional ``labels`` array gives
accuracy); one file is split, seeded, into calibration and held-out parts, two files are used as
they are (calibration first).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError
from onnxparity.spec import DIGITS, ModelSpec

log = logging.getLogger(__name__)

CALIBRATION_SIZE = 1000  # samples drawn (seeded) from the calibration split
HELD_OUT_FRACTION = 0.2  # of a single --inputs file
SEED = 0
LABELS = "labels"
_ONNX_TO_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16,
                  11: np.float64}


@dataclass(frozen=True)
class InputInfo:
    """A graph input: name, numpy dtype and shape (None for a dynamic axis)."""

    name: str
    dtype: type
    shape: tuple[int | None, ...]


@dataclass
class QuantizeData:
    """Feeds (input name -> array, batch first) to calibrate on and to judge on, with labels where known."""

    calibration: dict[str, np.ndarray]
    held_out: dict[str, np.ndarray]
    labels: np.ndarray | None  # for held_out; None without labels
    calibration_source: str
    held_out_source: str

    @property
    def n_calibration(self) -> int:
        return len(next(iter(self.calibration.values())))

    @property
    def n_held_out(self) -> int:
        return len(next(iter(self.held_out.values())))

    def fingerprint(self) -> str:
        """sha256 of the calibration arrays (names, dtypes, shapes and bytes, in name order)."""
        digest = hashlib.sha256()
        for name in sorted(self.calibration):
            a = np.ascontiguousarray(self.calibration[name])
            digest.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    def batches(self, which: str, batch: int = 64):
        """Feeds of at most ``batch`` samples, in order, from ``"calibration"`` or ``"held_out"``."""
        feeds = getattr(self, which)
        n = len(next(iter(feeds.values())))
        for i in range(0, n, batch):
            yield {k: v[i:i + batch] for k, v in feeds.items()}


def graph_inputs(model) -> list[InputInfo]:
    """The inputs a caller feeds (graph inputs that are not initializers)."""
    inits = {t.name for t in model.graph.initializer}
    found = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.elem_type not in _ONNX_TO_NUMPY:
            raise InputError(f"input {value.name!r} is not a tensor of a supported type; cannot quantize this model")
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        found.append(InputInfo(value.name, _ONNX_TO_NUMPY[tensor.elem_type], shape))
    return found


def is_digit_model(spec: ModelSpec | None) -> bool:
    return spec is not None and spec.labels == DIGITS and int(np.prod(spec.input_shape)) == 28 * 28


def load(spec: ModelSpec | None, inputs: list[InputInfo], *, data: str | None = None,
         input_files: list[str] | None = None, calibration_size: int = CALIBRATION_SIZE) -> QuantizeData:
    """The calibration and held-out data for a model (see the module docstring)."""
    if input_files:
        if data is not None:
            raise InputError("give either --data (digit models) or --inputs, not both")
        return _from_files(input_files, inputs, calibration_size)
    if not is_digit_model(spec):
        raise InputError("this model is not one of the reference digit models: give its inputs with "
                         "--inputs FILE.npz (one array per input name: " + ", ".join(i.name for i in inputs) + ")")
    if len(inputs) != 1:
        raise InputError(f"a digit model has one input, this file has {len(inputs)}")
    return _from_digits(spec, inputs[0], data, calibration_size)


def _sample(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` indices, seeded, in ascending order (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size=k, replace=False))


def _from_digits(spec: ModelSpec, info: InputInfo, data: str | None, calibration_size: int) -> QuantizeData:
    from onnxparity.data import load_digits

    test = load_digits(data, "test")  # a bad --data fails here, before anything is computed
    try:
        train = load_digits(data, "train")
    except InputError as exc:
        if "test-only" not in str(exc) and "no x_train" not in str(exc):
            raise
        log.warning("%s; calibrating on the bundled training digits instead", exc)
        train = load_digits(None, "train")
    picks = _sample(len(train), calibration_size)
    calibration = spec.preprocess(train.images[picks]).astype(info.dtype, copy=False)
    held_out = spec.preprocess(test.images).astype(info.dtype, copy=False)
    return QuantizeData({info.name: calibration}, {info.name: held_out}, test.labels.astype(np.int64),
                        f"{len(picks)} digits of {train.source}", test.source)


def _read(path: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        if p.suffix == ".npy":
            return {"": np.load(p, allow_pickle=False)}
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{p}: not a .npz or .npy of arrays ({str(exc).splitlines()[0][:120]})") from None


def _feeds(arrays: dict[str, np.ndarray], inputs: list[InputInfo], path: str):
    """The arrays as feeds for ``inputs`` (checked: names, sample counts, static dims), plus labels."""
    if "" in arrays:  # a .npy: the one input
        if len(inputs) != 1:
            raise InputError(f"{path}: a .npy feeds one input, the model has {len(inputs)}; use an .npz")
        arrays = {inputs[0].name: arrays[""]}
    missing = [i.name for i in inputs if i.name not in arrays]
    if missing:
        raise InputError(f"{path}: no array for input {', '.join(map(repr, missing))} "
                         f"(it holds {', '.join(map(repr, arrays)) or 'nothing'})")
    feeds = {}
    for info in inputs:
        a = arrays[info.name]
        if a.ndim != len(info.shape) or any(d is not None and d != s for d, s in zip(info.shape[1:], a.shape[1:])):
            raise InputError(f"{path}: {info.name!r} has shape {list(a.shape)}, the model takes "
                             f"{['?' if d is None else d for d in info.shape]}")
        feeds[info.name] = np.ascontiguousarray(a.astype(info.dtype, copy=False))
    counts = {len(a) for a in feeds.values()}
    labels = arrays.get(LABELS) if LABELS not in feeds else None
    if labels is not None:
        counts.add(len(labels))
        labels = np.asarray(labels).astype(np.int64)
    if len(counts) != 1:
        raise InputError(f"{path}: the arrays hold different numbers of samples ({sorted(counts)})")
    return feeds, labels


def _from_files(files: list[str], inputs: list[InputInfo], calibration_size: int) -> QuantizeData:
    if len(files) > 2:
        raise InputError("--inputs takes one file (split into calibration and held-out parts) or two "
                         "(calibration, then held out)")
    feeds, labels = _feeds(_read(files[0]), inputs, files[0])
    n = len(next(iter(feeds.values())))
    if len(files) == 2:
        held, held_labels = _feeds(_read(files[1]), inputs, files[1])
        cal_idx = _sample(n, calibration_size)
        cal_source, held_source = f"{len(cal_idx)} samples of {files[0]}", f"{files[1]}"
    else:
        if n < 2:
            raise InputError(f"{files[0]}: {n} sample(s); at least 2 are needed to calibrate and to judge")
        order = np.random.default_rng(SEED).permutation(n)
        n_held = max(1, int(round(n * HELD_OUT_FRACTION)))
        held_idx, rest = np.sort(order[:n_held]), np.sort(order[n_held:])
        cal_idx = rest[_sample(len(rest), calibration_size)]
        held = {k: v[held_idx] for k, v in feeds.items()}
        held_labels = None if labels is None else labels[held_idx]
        cal_source = f"{len(cal_idx)} samples of {files[0]} (seeded split)"
        held_source = f"{len(held_idx)} other samples of {files[0]}"
    n_held = len(next(iter(held.values())))
    if n_held == 0 or len(cal_idx) == 0:
        raise InputError("no samples to calibrate on or to judge with")
    calibration = {k: v[cal_idx] for k, v in feeds.items()}
    return QuantizeData(calibration, held, held_labels, cal_source, f"{n_held} samples of {held_source}"
                        if len(files) == 2 else held_source)
