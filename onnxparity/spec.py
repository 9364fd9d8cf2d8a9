"""ModelSpec: the one description of a model that training, conversion, parity and serving read.

A spec says what a model eats and what it returns: the per-sample input shape and layout, the
preprocessing from raw uint8 pixels (``(pixels * scale - mean) / std``), what the output holds
and the class labels. Training writes it next to a checkpoint as ``spec.json``; conversion
copies it into the ONNX file's ``metadata_props`` under the ``onnxparity.`` prefix, so any later
step can prepare inputs for any backend from the file alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from onnxparity.errors import InputError

SPEC_FILE = "spec.json"
METADATA_PREFIX = "onnxparity."
OUTPUT_KINDS = ("probabilities", "log_probabilities", "logits")
LAYOUTS = ("NHWC", "NCHW")
INPUT_DTYPES = ("float32", "uint8")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model and how to read its output."""

    name: str
    framework: str  # "keras" or "torch"
    input_shape: tuple[int, ...]  # one sample, no batch axis: (28, 28, 1) or (1, 28, 28)
    layout: str  # "NHWC" or "NCHW"
    scale: float = 1.0 / 255.0
    mean: float = 0.0
    std: float = 1.0
    output: str = "probabilities"
    labels: tuple[str, ...] = DIGITS
    # "package.module:Class" that rebuilds a PyTorch model from its state dict.
    architecture: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # "float32": the model takes preprocessed floats. "uint8": it takes raw pixels (N, H, W) and
    # applies scale/mean/std and layout itself (``onnxparity convert --embed-preprocessing``);
    # scale, mean, std and layout then say what the graph does inside.
    input_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"model spec: layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.output not in OUTPUT_KINDS:
            raise InputError(f"model spec: output must be one of {OUTPUT_KINDS}, not {self.output!r}")
        if self.input_dtype not in INPUT_DTYPES:
            raise InputError(f"model spec: input_dtype must be one of {INPUT_DTYPES}, not {self.input_dtype!r}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "extra", dict(self.extra))

    # -- inputs -----------------------------------------------------------------------------
    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw images (N, H, W) uint8 -> float32 batch in this model's layout and scaling.

        A model that preprocesses inside its graph (``input_dtype == "uint8"``) gets the raw
        pixels, only reshaped to its input shape.
        """
        if self.input_dtype == "uint8":
            raw = np.asarray(images, dtype=np.uint8)
            return np.ascontiguousarray(raw.reshape((len(raw), *self.input_shape)))
        x = (np.asarray(images, dtype=np.float32) * np.float32(self.scale) - np.float32(self.mean)) / np.float32(
            self.std
        )
        x = x[..., None] if self.layout == "NHWC" else x[:, None, ...]
        return np.ascontiguousarray(x.reshape((len(x), *self.input_shape)), dtype=np.float32)

    # -- outputs ----------------------------------------------------------------------------
    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Turn this model's raw output into class probabilities (for display and accuracy)."""
        out = np.asarray(outputs, dtype=np.float64)
        if self.output == "probabilities":
            return out
        if self.output == "log_probabilities":
            return np.exp(out)
        shifted = np.exp(out - out.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as exc:
            raise InputError(f"model spec is incomplete: {exc}") from None

    def save(self, folder: str | Path) -> Path:
        from onnxparity._io import write_text

        path = Path(folder) / SPEC_FILE
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "ModelSpec":
        path = Path(folder) / SPEC_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise InputError(f"{folder}: no {SPEC_FILE}; not a checkpoint folder written by onnxparity") from None
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
            raise InputError(f"{path}: not a valid model spec ({exc})") from None

    def to_metadata(self) -> dict[str, str]:
        """ONNX ``metadata_props`` entries (string to string)."""
        meta = {}
        for key, value in self.to_dict().items():
            if value is None:
                continue
            meta[METADATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
        return meta

    @classmethod
    def from_metadata(cls, props: Mapping[str, str]) -> "ModelSpec":
        d = {}
        for key, value in props.items():
            if not key.startswith(METADATA_PREFIX):
                continue
            name = key[len(METADATA_PREFIX) :]
            try:
                d[name] = json.loads(value)
            except json.JSONDecodeError:
                d[name] = value
        if not d:
            raise InputError("the ONNX file carries no onnxparity metadata; convert it with `onnxparity convert`")
        for name in ("name", "framework", "layout", "output", "architecture", "input_dtype"):
            if name in d and d[name] is not None:
                d[name] = str(d[name])
        return cls.from_dict(d)
