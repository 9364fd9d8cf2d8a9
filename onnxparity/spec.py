"""ModelSpec: the one description of a model that training, conversion, parity and serving read.

A spec says what a model eats and what it returns: its :class:`~onnxparity.signature.Signature`
(named input and output tensors with dtypes and dynamic axes), and for a model whose first input is
an image, that image's per-sample shape, layout and preprocessing from raw uint8 pixels
(``(pixels * scale - mean) / std``); what the class output holds and the class labels. Training writes it next to a checkpoint as ``spec.json``; conversion
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
from onnxparity.signature import Signature

SPEC_FILE = "spec.json"
METADATA_PREFIX = "onnxparity."
OUTPUT_KINDS = ("probabilities", "log_probabilities", "logits")
LAYOUTS = ("NHWC", "NCHW", None)  # None: the first input is no image (ids, features...)
INPUT_DTYPES = ("float32", "uint8")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model and how to read its output."""

    name: str
    framework: str  # "keras" or "torch"
    input_shape: tuple[int, ...]  # the first input's sample, no batch axis: (28, 28, 1) or (1, 28, 28)
    layout: str | None = None  # the image input's "NHWC" or "NCHW"; None when the first input is no image
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
    # Named inputs and outputs (dtypes, dynamic axes): written by convert, read from the ONNX graph.
    signature: Signature | None = None
    # Keyword arguments that ``architecture`` is called with to rebuild the model ({"num_classes": 10}).
    torch_kwargs: Mapping | None = None
    # Outputs marked as holding class scores (convert --class-output): judged by top-1 too, whatever their
    # name (compare.holds_classes).
    class_outputs: tuple[str, ...] = ()
    # Modules imported before the model loads (--import: custom layers, registered output classes); a later
    # command imports them only as onnxparity.trust allows.
    imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"model spec: layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.output not in OUTPUT_KINDS:
            raise InputError(f"model spec: output must be one of {OUTPUT_KINDS}, not {self.output!r}")
        if self.input_dtype not in INPUT_DTYPES and self.layout is not None:
            raise InputError(f"model spec: input_dtype must be one of {INPUT_DTYPES}, not {self.input_dtype!r}")
        if isinstance(self.signature, Mapping):
            object.__setattr__(self, "signature", Signature.from_dict(self.signature))
        if self.signature is not None and not isinstance(self.signature, Signature):
            raise InputError(f"model spec: signature must be a JSON object, not {self.signature!r}")
        for name in ("scale", "mean", "std"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise InputError(f"model spec: {name} must be a finite number, not {value!r}")
        if self.torch_kwargs is not None and not isinstance(self.torch_kwargs, Mapping):
            raise InputError(f"model spec: torch_kwargs must be a JSON object, not {self.torch_kwargs!r}")
        object.__setattr__(self, "class_outputs", tuple(str(x) for x in self.class_outputs))
        object.__setattr__(self, "imports", tuple(str(x) for x in self.imports))
        try:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        except (TypeError, ValueError):
            raise InputError(f"model spec: input_shape must be integers, not {self.input_shape!r}") from None
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if not isinstance(self.extra, Mapping):
            raise InputError(f"model spec: extra must be a JSON object, not {self.extra!r}")
        object.__setattr__(self, "extra", dict(self.extra))

    # -- inputs -----------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int, int] | None:
        """(height, width, channels) of the image input; None when the first input is no image."""
        shape = self.input_shape
        if self.layout is None:
            return None
        if self.input_dtype == "uint8" and len(shape) == 2:  # raw pixels (H, W), preprocessing embedded
            return shape[0], shape[1], 1
        if len(shape) != 3:
            return None
        h, w, c = shape if self.layout == "NHWC" else (shape[1], shape[2], shape[0])
        return (h, w, c) if c in (1, 3, 4) else None

    @property
    def takes_digits(self) -> bool:
        """Whether the model takes one 28x28 grayscale image, as the reference models do: every
        command feeds it real digits unless told otherwise."""
        one_input = self.signature is None or len(self.signature.inputs) == 1
        return one_input and self.image_size == (28, 28, 1)

    @property
    def reads_digits(self) -> bool:
        """A digit model: it takes digits and its classes are the ten digits (not Fashion-MNIST's
        clothes), so a photo of a digit is framed as MNIST framed its digits before it is fed."""
        return self.takes_digits and self.labels == DIGITS

    def with_classes(self, names: tuple[str, ...] | None) -> "ModelSpec":
        """This spec with the class names of the data it was trained on (None: as it is)."""
        return self if names is None else dataclasses.replace(self, labels=tuple(names))

    @property
    def input_name(self) -> str | None:
        return self.signature.inputs[0].name if self.signature and self.signature.inputs else None

    @property
    def output_names(self) -> list[str]:
        """The outputs' names: the signature's, else the one class output convert names after its kind."""
        return self.signature.output_names if self.signature else [self.output]

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """Raw images (N, H, W) or (N, H, W, C), uint8 values -> the image input's batch, in this
        model's layout, scaling and dtype.

        A model that preprocesses inside its graph (``input_dtype == "uint8"``) gets the raw
        pixels, only reshaped to its input shape.
        """
        size = self.image_size
        if size is None:
            raise InputError(f"model {self.name}: its first input {list(self.input_shape)} is no image "
                             f"(layout {self.layout}); give its inputs as arrays (--inputs FILE.npz)")
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[-1] != size[2]:
            raise InputError(f"images have {images.shape[-1]} channels; model {self.name} takes {size[2]}")
        if self.input_dtype == "uint8":
            raw = np.asarray(images, dtype=np.uint8)
            return np.ascontiguousarray(raw.reshape((len(raw), *self.input_shape)))
        x = (images.astype(np.float32) * np.float32(self.scale) - np.float32(self.mean)) / np.float32(self.std)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        dtype = np.dtype(self.signature.inputs[0].dtype) if self.signature and self.signature.inputs else np.float32
        # A fresh C-ordered copy: after the transpose a reshape may keep odd strides on size-1 axes,
        # which numpy calls contiguous but torch.from_numpy keeps.
        return np.array(x.reshape((len(x), *self.input_shape)), dtype=dtype, order="C", copy=True)

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
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["input_shape"] = list(self.input_shape)
        d["labels"] = list(self.labels)
        d["extra"] = dict(self.extra)
        d["class_outputs"] = list(self.class_outputs)
        d["imports"] = list(self.imports)
        d["signature"] = self.signature.to_dict() if self.signature else None
        d["torch_kwargs"] = dict(self.torch_kwargs) if self.torch_kwargs is not None else None
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
        """The ``spec.json`` of a checkpoint folder."""
        if not (Path(folder) / SPEC_FILE).is_file():
            raise InputError(f"{folder}: no {SPEC_FILE}; not a checkpoint folder written by onnxparity")
        return cls.read(Path(folder) / SPEC_FILE)

    @classmethod
    def read(cls, path: str | Path) -> "ModelSpec":
        """A spec from a JSON file, with a one-line error for a missing or broken one."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: no such spec file") from None
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
        for name in ("name", "framework", "output", "architecture", "input_dtype"):
            if name in d and d[name] is not None:
                d[name] = str(d[name])
        if d.get("layout") is not None:
            d["layout"] = str(d["layout"])
        return cls.from_dict(d)


def as_spec(spec) -> ModelSpec:
    """A spec given in any form: a ModelSpec, a dict, a spec.json path or its checkpoint folder."""
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec)
    path = Path(spec)
    return ModelSpec.load(path) if path.is_dir() else ModelSpec.read(path)
