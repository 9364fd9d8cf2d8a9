"""Locate: name the first layer where an ONNX file departs from the model it was converted from.

    import onnxparity
    result = onnxparity.locate("runs/torch", "runs/torch.onnx")   # or onnxparity.locate.locate(...)
    result.first_divergence   # {"original_layer": "conv2", "onnx_nodes": [...], "max_abs_diff": ..., "mode": "isolated"}

Parts: capture of the original's layer outputs (:mod:`.capture_keras`, :mod:`.capture_torch`, each
in a worker process of its own), the ONNX side (:mod:`.graph`), name matching (:mod:`.match`),
layouts (:mod:`.layout`), the run (:mod:`.run`, with the streaming statistics of
:mod:`onnxparity.compare.streaming`) and its views (:mod:`.report`). The package is callable, so ``onnxparity.locate(...)`` is the function itself.
"""

from __future__ import annotations

import sys
import types

from onnxparity.locate.result import LayerResult, LocateResult
from onnxparity.locate.run import locate

__all__ = ["locate", "LocateResult", "LayerResult"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs) -> LocateResult:
        return locate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
