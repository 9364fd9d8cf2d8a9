"""What a framework front end hands the converter: a loaded model, how to run it and export it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from onnxparity.signature import TensorSpec
from onnxparity.spec import ModelSpec

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
