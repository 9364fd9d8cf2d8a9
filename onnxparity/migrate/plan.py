"""The framework-neutral plan a migration writes: layers in order, weights already in the target's layout.

:mod:`onnxparity.migrate.walk` builds a :class:`Plan` from an ONNX graph for one target framework;
:mod:`~onnxparity.migrate.to_torch` and :mod:`~onnxparity.migrate.to_keras` only spell it out. Every
tensor a plan names is in the target's own layout (NCHW for PyTorch, NHWC for Keras), so the writers
never think about layouts. Plain data: it pickles into the target framework's worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TARGETS = ("torch", "keras")


@dataclass
class Step:
    """One layer (or one plain tensor operation) of the migrated model.

    ``kind`` is one of: conv, maxpool, avgpool, global_avgpool, batchnorm, dense, relu, sigmoid,
    tanh, hardsigmoid, hardswish, softmax, log_softmax, add, mul, concat, flatten, reshape,
    permute, dropout. ``attrs`` holds the kind's settings (axes already in the target's layout),
    ``weights`` its arrays in ONNX's conventions (conv kernels OIHW, dense kernels (in, out) with
    rows already in the target's flatten order); each writer turns them into its own storage.
    """

    kind: str
    name: str  # a Python identifier, unique in the plan, after the source's layer where known
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Plan:
    target: str  # "torch" or "keras"
    name: str  # the model's name (the class name for torch)
    input_name: str
    input_shape: tuple[int, ...]  # one sample, in the target's layout
    steps: list[Step]
    outputs: list[str]  # plan values, in the ONNX graph's output order
    output_names: list[str]  # the ONNX graph's output names
    # per output: the permutation that turns the target's output into the ONNX one (None: same)
    output_perms: list[tuple[int, ...] | None]
    source_layout: str | None = None  # the ONNX input's layout when it is an image ("NCHW"/"NHWC")

    @property
    def layout(self) -> str:
        return "NCHW" if self.target == "torch" else "NHWC"

    def to_onnx_layout(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """The target model's outputs, each in the ONNX graph's layout (to compare them)."""
        return [np.asarray(o) if p is None else np.transpose(o, p) for o, p in zip(outputs, self.output_perms)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.steps:
            out[step.kind] = out.get(step.kind, 0) + 1
        return out
