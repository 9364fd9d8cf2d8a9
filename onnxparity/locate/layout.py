"""Undoing layout differences between an original's tensor and its ONNX counterpart.

tf2onnx runs Keras' NHWC convolutions in ONNX's NCHW, so a Keras layer's (N, H, W, C) output may
live in the graph as (N, C, H, W); and a graph that keeps NCHW up to a Flatten flattens in
(C, H, W) order where Keras flattens in (H, W, C) order (a converter then permutes the next
Dense's weights to match). Each candidate maps the original's batch to the ONNX layout. When the
shapes leave one candidate it is taken; when several fit (C == H, or a Flatten), the one closest
to the ONNX values on the first batch is taken and the report says so. A Flatten in the other
order is thus no error by itself; a Dense that was not permuted to match shows as the departure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

SAME = "same"


@dataclass(frozen=True)
class Layout:
    name: str  # "same", "channels-last -> channels-first", "flatten (H,W,C) -> (C,H,W)", "reshape"
    to_onnx: Callable[[np.ndarray], np.ndarray]


def candidates(shape: list[int], onnx_shape: list[int], producer_shape: list[int] | None,
               channels_last: bool) -> list[Layout]:
    """Layouts that map a per-input ``shape`` of the original onto ``onnx_shape`` (no batch axis);
    the channels-last ones only for an original that is channels-last (Keras)."""
    shape, onnx_shape = list(shape), list(onnx_shape)
    out = []
    if shape == onnx_shape:
        out.append(Layout(SAME, lambda a: a))
    rank = len(shape)
    if channels_last and rank >= 2:
        perm = (0, rank, *range(1, rank))
        if [shape[p - 1] for p in perm[1:]] == onnx_shape:
            out.append(Layout("channels-last -> channels-first", lambda a, perm=perm: np.transpose(a, perm)))
    if channels_last and rank == 1 and producer_shape and len(producer_shape) >= 2 and shape == onnx_shape \
            and int(np.prod(producer_shape)) == shape[0]:
        k = len(producer_shape)
        order = np.arange(shape[0]).reshape(producer_shape).transpose((k - 1, *range(k - 1))).ravel()
        if not np.array_equal(order, np.arange(shape[0])):
            out.append(Layout("flatten (H,W,C) -> (C,H,W)", lambda a, order=order: a[:, order]))
    if not out and int(np.prod(shape)) == int(np.prod(onnx_shape)):
        out.append(Layout("reshape", lambda a, s=tuple(onnx_shape): a.reshape((len(a), *s))))
    return out


def choose(options: list[Layout], original: np.ndarray, onnx_value: np.ndarray) -> tuple[Layout, bool]:
    """The option closest to ``onnx_value`` (and whether the data decided it)."""
    if len(options) == 1:
        return options[0], False
    def error(layout: Layout) -> float:
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(layout.to_onnx(original).astype(np.float64) - onnx_value.astype(np.float64))
        return float(np.nan_to_num(d, nan=np.inf).max()) if d.size else 0.0
    return min(options, key=error), True
