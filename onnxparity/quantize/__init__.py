"""Quantize: int8 and fp16 variants of an ONNX file, written only when they still predict the same.

    from onnxparity.quantize import quantize
    report = quantize("runs/latest/keras.onnx", "int8")       # -> runs/latest/keras.int8.onnx
    report.written, report.top1_agreement, report.speedup

:mod:`~onnxparity.quantize.pipeline` makes the variant (:mod:`.int8`, :mod:`.fp16`) from the data of
:mod:`.data`, compares it with its fp32 file (:mod:`.evaluate`) for the gate of
:class:`onnxparity.compare.VariantGate` (class scores by top-1, other float outputs by cosine and SNR), keeps the noisiest layers in float when the gate refuses
(:mod:`.layers`), times both files (:mod:`.speed`) and writes the variant with its metadata
(:mod:`.variant`) only when the gate passes. ``onnxparity check`` judges a variant by the same
gate (:func:`onnxparity.compare.judge_variant`).
"""

from onnxparity.quantize.pipeline import quantize
from onnxparity.quantize.report import QuantizeReport
from onnxparity.variant import variant_of

__all__ = ["quantize", "QuantizeReport", "variant_of"]
