"""onnxparity: move trained Keras and PyTorch models to ONNX and prove nothing changed on the way.

Parts: ``onnxparity.models`` (the reference models, trained natively), ``onnxparity.convert``
(to validated ONNX), ``onnxparity.parity`` (the originals and ONNX Runtime compared, on every
device) and ``onnxparity.serve`` (ONNX Runtime behind the V2 inference protocol). Importing the
package loads no framework.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``onnxparity.locate(original, onnx, ...)`` without importing it (or a framework) up front."""
    if name == "locate":
        import importlib

        return importlib.import_module("onnxparity.locate")
    raise AttributeError(f"module 'onnxparity' has no attribute {name!r}")
