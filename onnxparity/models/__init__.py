"""The reference models (the article's Keras CNN and PyTorch Net) and how any model file is found.

``resolve(path)`` is the one place that decides what a model path holds: a checkpoint folder
written by ``onnxparity train`` (it carries ``spec.json``), a Keras file, a PyTorch state dict
beside a ``spec.json``, or an ONNX file (its spec lives in the metadata).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from onnxparity.errors import InputError
from onnxparity.spec import SPEC_FILE, ModelSpec

FRAMEWORKS = ("keras", "torch")
REFERENCE_MODULES = {"keras": "onnxparity.models.keras_cnn", "torch": "onnxparity.models.torch_net"}
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".pth", ".pt", ".pt2")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its framework ("keras", "torch" or "onnx"), weights file and spec."""

    framework: str
    path: Path
    spec: ModelSpec | None


def resolve(path: str | os.PathLike) -> ModelRef:
    """Say what ``path`` holds without importing any framework."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / SPEC_FILE).is_file():
            spec = ModelSpec.load(p)
            weights = p / ("model.keras" if spec.framework == "keras" else "model.pth")
            if not weights.is_file():
                raise InputError(f"{p}: checkpoint folder without {weights.name}")
            return ModelRef(spec.framework, weights, spec)
        if (p / "saved_model.pb").is_file():
            return ModelRef("keras", p, None)
        raise InputError(f"{p}: a folder, but neither an onnxparity checkpoint (spec.json) nor a SavedModel")
    suffix = p.suffix.lower()
    sibling_spec = ModelSpec.load(p.parent) if (p.parent / SPEC_FILE).is_file() else None
    if suffix == ".onnx":
        return ModelRef("onnx", p, None)
    if suffix in KERAS_SUFFIXES:
        return ModelRef("keras", p, sibling_spec if sibling_spec and sibling_spec.framework == "keras" else None)
    if suffix in TORCH_SUFFIXES:
        return ModelRef("torch", p, sibling_spec if sibling_spec and sibling_spec.framework == "torch" else None)
    raise InputError(f"{p}: unknown kind of model file (expected {', '.join(KERAS_SUFFIXES + TORCH_SUFFIXES)}, .onnx or a checkpoint folder)")


def train(framework: str, out_dir, **kwargs) -> dict:
    """Train a reference model natively; see ``keras_cnn.train`` / ``torch_net.train``."""
    import importlib

    if framework not in FRAMEWORKS:
        raise InputError(f"framework must be one of {FRAMEWORKS}, not {framework!r}")
    return importlib.import_module(REFERENCE_MODULES[framework]).train(out_dir, **kwargs)


def train_from(folder, out_dir=None, trust=None, **kwargs) -> dict:
    """Continue training any checkpoint folder (a migrated one too) with its framework's reference loop
    (Keras ``fit``; the article's PyTorch SGD loop); ``out_dir`` defaults to ``folder``. A PyTorch
    class that spec.json records is built only as ``trust`` (:class:`onnxparity.trust.Trust`) allows."""
    import importlib

    p = Path(folder).expanduser()
    ref = resolve(p)
    if not p.is_dir() or ref.spec is None or ref.framework not in FRAMEWORKS:
        raise InputError(f"{p}: not a checkpoint folder (a folder with spec.json and its weights)")
    if ref.framework == "torch":
        from onnxparity.trust import Trust

        trust = trust or Trust()
        trust.resolve(ref.spec.architecture, ref.spec.torch_kwargs, f"{p / SPEC_FILE}")  # before torch loads
        kwargs["trust"] = trust
    return importlib.import_module(REFERENCE_MODULES[ref.framework]).train_from(p, out_dir or p, **kwargs)
