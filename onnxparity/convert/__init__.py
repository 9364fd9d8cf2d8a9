"""Keras and PyTorch models to validated, self-describing ONNX files.

``convert(model, out)`` (:mod:`onnxparity.convert.pipeline`) loads a model (a checkpoint folder, a
Keras or PyTorch file, or a live ``keras.Model`` / ``torch.nn.Module``), exports it with its
framework's converter (:mod:`~onnxparity.convert.keras`, :mod:`~onnxparity.convert.torch`), gives
the graph the toolkit's guarantees (:mod:`onnxparity.convert.graph`), runs it in ONNX Runtime
against the original at two batch sizes, and only then moves it into place. Only the framework of
the model being converted is imported.

Metadata: the model's :class:`~onnxparity.spec.ModelSpec` (its signature included) under
``onnxparity.*``; provenance lives in the spec's ``extra`` (``onnxparity.extra``):
``source_framework``, ``source_version``, ``converter``, ``converter_version``, ``exporter``,
``source`` (file name), ``source_sha256`` (of the file; of a folder's files in name order; of a live
model's weight arrays) and ``onnxparity_version``.
"""

from onnxparity.convert.graph import ConversionError
from onnxparity.convert.pipeline import ConvertResult, convert

__all__ = ["convert", "ConvertResult", "ConversionError"]
