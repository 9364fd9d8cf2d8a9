"""The data a quantization calibrates on and is judged on: a calibration part and a held-out part.

Reference digit models (:attr:`~onnxparity.spec.ModelSpec.takes_digits`): the training split of
``--data`` calibrates (the bundled digits by default; a test-only set falls back to the bundled
training digits, as ``onnxparity run`` does) and its test split is held out. Any other model:
``--inputs`` arrays, one per input name (an optional ``labels`` array gives accuracy); one file is
split, seeded, into calibration and held-out parts, two files are used as they are (calibration first).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from onnxparity.errors import InputError
from onnxparity.inputs.digits import load_digits_inputs
from onnxparity.inputs.feeding import feeds
from onnxparity.inputs.files import load_arrays
from onnxparity.inputs.samples import DIGIT, Inputs, hash_arrays, release_pages, take_rows
from onnxparity.signature import Signature
from onnxparity.spec import ModelSpec

log = logging.getLogger(__name__)

CALIBRATION_SIZE = 1000  # samples drawn (seeded) from the calibration split
HELD_OUT_FRACTION = 0.2  # of a single --inputs file
SEED = 0


@dataclass
class CalibrationSplit:
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
        """sha256 of the calibration arrays alone (labels are not calibrated on): a variant records it."""
        digest = hashlib.sha256()
        hash_arrays(digest, self.calibration)
        return digest.hexdigest()

    def batches(self, which: str, batch: int = 64):
        """Feeds of at most ``batch`` samples, in order, from ``"calibration"`` or ``"held_out"``."""
        part = getattr(self, which)
        n = len(next(iter(part.values())))
        for i in range(0, n, batch):
            yield {k: v[i:i + batch] for k, v in part.items()}
            release_pages(*part.values())  # parts on disk: one batch held, not all read so far


def calibration_split(spec: ModelSpec | None, signature: Signature, *, data: str | None = None,
                      input_files: list[str] | None = None,
                      calibration_size: int = CALIBRATION_SIZE) -> CalibrationSplit:
    """The calibration and held-out data for a model (see the module docstring)."""
    if input_files:
        if data is not None:
            raise InputError("give either --data (digit models) or --inputs, not both")
        return _from_files(input_files, signature, calibration_size)
    if spec is None or not spec.takes_digits:
        raise InputError("this model is not one of the reference digit models: give its inputs with "
                         "--inputs FILE.npz (one array per input name: " + ", ".join(signature.input_names) + ")")
    if len(signature.inputs) != 1:
        raise InputError(f"a digit model has one input, this file has {len(signature.inputs)}")
    return _from_digits(spec, signature, data, calibration_size)


def _sample(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` indices, seeded, in ascending order (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size=k, replace=False))


def _from_digits(spec: ModelSpec, signature: Signature, data: str | None, calibration_size: int) -> CalibrationSplit:
    from onnxparity.data import load_digits

    test = load_digits_inputs(data, synthetic=False)  # a bad --data fails here, before anything is computed
    try:
        train = load_digits(data, "train")
    except InputError as exc:
        if "test-only" not in str(exc) and "no x_train" not in str(exc):
            raise
        log.warning("%s; calibrating on the bundled training digits instead", exc)
        train = load_digits(None, "train")
    picks = _sample(len(train), calibration_size)
    picked = Inputs(train.labels[picks], (DIGIT,) * len(picks), train.source, images=train.images[picks])
    return CalibrationSplit(feeds(picked, spec, signature), feeds(test, spec, signature), test.labels,
                            f"{len(picks)} digits of {train.source}", test.source)


def _given(path: str, signature: Signature) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    given = load_arrays(path, signature)
    return dict(given.arrays), (None if (given.labels < 0).all() else given.labels)


def _from_files(files: list[str], signature: Signature, calibration_size: int) -> CalibrationSplit:
    if len(files) > 2:
        raise InputError("--inputs takes one file (split into calibration and held-out parts) or two "
                         "(calibration, then held out)")
    arrays, labels = _given(files[0], signature)
    n = len(next(iter(arrays.values())))
    if len(files) == 2:
        held, held_labels = _given(files[1], signature)
        cal_idx = _sample(n, calibration_size)
        cal_source, held_source = f"{len(cal_idx)} samples of {files[0]}", f"{files[1]}"
    else:
        if n < 2:
            raise InputError(f"{files[0]}: {n} sample(s); at least 2 are needed to calibrate and to judge")
        order = np.random.default_rng(SEED).permutation(n)
        n_held = max(1, int(round(n * HELD_OUT_FRACTION)))
        held_idx, rest = np.sort(order[:n_held]), np.sort(order[n_held:])
        cal_idx = rest[_sample(len(rest), calibration_size)]
        held = {k: take_rows(v, held_idx) for k, v in arrays.items()}
        held_labels = None if labels is None else labels[held_idx]
        cal_source = f"{len(cal_idx)} samples of {files[0]} (seeded split)"
        held_source = f"{len(held_idx)} other samples of {files[0]}"
    n_held = len(next(iter(held.values())))
    if n_held == 0 or len(cal_idx) == 0:
        raise InputError("no samples to calibrate on or to judge with")
    calibration = {k: take_rows(v, cal_idx) for k, v in arrays.items()}
    return CalibrationSplit(calibration, held, held_labels, cal_source, f"{n_held} samples of {held_source}"
                            if len(files) == 2 else held_source)
