"""Runners: one per backend, all with the same small interface (after Polygraphy's runners).

A runner is built from a model path, knows the model's :class:`~onnxparity.spec.ModelSpec`, and
``infer(x)`` maps a preprocessed float32 batch to the model's raw output. ``predict`` feeds raw
uint8 digits in batches. Adding a backend is adding one module here and one line in BACKENDS.
Runners import their framework when built, never at import time.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol

import numpy as np

from onnxparity.errors import InputError, OnnxParityError
from onnxparity.models import resolve
from onnxparity.spec import ModelSpec

# backend name -> "module:class"; the default backend of each framework comes first.
BACKENDS = {
    "keras": "onnxparity.runners.keras:KerasRunner",
    # the same .keras file under Keras 3's torch backend (must be the first Keras import in its process)
    "keras-torch": "onnxparity.runners.keras:KerasTorchRunner",
    "torch": "onnxparity.runners.torch:TorchRunner",
    "onnxruntime": "onnxparity.runners.onnxrt:OnnxRuntimeRunner",
}


class BackendUnavailable(OnnxParityError):
    """This backend cannot run on this machine (no GPU, a provider missing from the build...)."""


def cuda_unavailable_reason() -> str | None:
    """Why PyTorch cannot use CUDA here, in a few words; None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return f"no CUDA device visible (torch {torch.__version__} built for CUDA {torch.version.cuda}; no NVIDIA driver or GPU)"
    return None
DEFAULT_BACKEND = {"keras": "keras", "torch": "torch", "onnx": "onnxruntime"}


class Runner(Protocol):
    name: str
    spec: ModelSpec

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed float32 batch -> raw model output (N, classes)."""


def open_runner(path: str | os.PathLike, backend: str | None = None, spec: ModelSpec | None = None,
                **options) -> Runner:
    """Build the runner for ``path``: its framework's own by default, or the named ``backend``.

    ``spec`` stands in where the file has none beside it (a bare ``.keras`` checked against its
    ONNX file, whose metadata carries the spec).
    """
    ref = resolve(path)
    if ref.spec is None and spec is not None and ref.framework != "onnx":
        from onnxparity.models import ModelRef

        ref = ModelRef(ref.framework, ref.path, spec)
    name = backend or DEFAULT_BACKEND[ref.framework]
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(ref, **options)


def predict(runner: Runner, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Raw uint8 digits (N, H, W) -> the runner's raw outputs, fed in batches."""
    x = runner.spec.preprocess(images)
    if len(x) == 0:
        raise InputError("no images to run")
    return np.concatenate([np.asarray(runner.infer(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
