"""What a framework front end hands the converter: a loaded model, how to run it and export it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from onnxparity.signature import TensorSpec
from onnxparity.spec import ModelSpec

CHUNK = 1 << 20


@dataclass
class Source:
    """A loaded model, ready to run (``forward``) and to export (``export``)."""

    framework: str  # "keras" or "torch"
    name: str
    # one batch per input, in order -> the model's outputs, flattened to a list (dicts in their order)
    forward: Callable[[list[np.ndarray]], list[np.ndarray]]
    # (one sample batch per input, the inputs' descriptions, opset, output names) -> (ModelProto, how it was exported)
    export: Callable[[list[np.ndarray], list[TensorSpec], int, list[str]], tuple[Any, str]]
    framework_version: str
    converter: str
    converter_version: str
    sha256: str
    # What the model declares of its inputs (names, dtypes, sample shapes), where it does; None: unknown.
    inputs: list[TensorSpec] | None = None
    # The names the model gives its outputs (Keras output layers, dict keys), where it does.
    output_names: list[str] | None = None
    # Integer inputs index embedding tables of at least this many rows (the smallest table found).
    embedding_rows: int | None = None
    spec: ModelSpec | None = None  # what a checkpoint folder or sibling spec.json says
    architecture: str | None = None
    torch_kwargs: dict | None = None
    converter_max_opset: int | None = None


def sha256_path(path: str | Path) -> str:
    """sha256 of a file; of a folder (a SavedModel), of its files' relative names and bytes in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_arrays(arrays) -> str:
    """sha256 of a live model's weights: each array's bytes, in the model's own order."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()
