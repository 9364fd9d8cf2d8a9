"""Half-precision weights and compute with float32 inputs and outputs kept, for GPU serving.

The conversion is ONNX Runtime's ``onnxruntime.transformers.float16`` (``keep_io_types=True``):
it ships with and is released alongside the ORT the toolkit already needs, where the older copy
in ``onnxconverter-common`` is a separate package with its own protobuf pin.
"""

from __future__ import annotations

from onnxparity.errors import InputError, first_line


def convert(model):
    """An fp16 copy of ``model`` (an onnx ModelProto), its graph inputs and outputs still float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        return convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"fp16 conversion failed ({first_line(exc, with_type=False)})") from None
