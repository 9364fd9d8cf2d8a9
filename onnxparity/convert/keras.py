"""Keras 3 models (``.keras``, ``.h5``, a SavedModel folder or a live ``keras.Model``) to ONNX.

tf2onnx's ``from_keras`` fails on Keras 3 models (KeyError 'keras_tensor_N'), so the model call
is wrapped in a ``tf.function`` with an explicit input signature and ``training=False`` and
converted with ``tf2onnx.convert.from_function``: dropout and other training-only layers off.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from onnxparity._io import flatten_outputs, sha256_arrays, sha256_path
from onnxparity.convert.graph import BATCH, ConversionError
from onnxparity.convert.source import Source
from onnxparity.errors import InputError, first_line
from onnxparity.models.keras_cnn import load
from onnxparity.signature import TensorSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)


def open_source(model, spec=None) -> Source:
    """A :class:`Source` for a Keras model object or file (loaded with Keras' safe mode on)."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir():
            return _saved_model(path, spec)
        return _keras_source(load(path), sha256_path(path), spec)
    return _keras_source(model, sha256_arrays(model.get_weights()), spec)


def _versions() -> tuple[str, str]:
    import keras
    import tensorflow as tf
    import tf2onnx

    return f"keras {keras.__version__}, tensorflow {tf.__version__}", tf2onnx.__version__


def _max_opset() -> int:
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    return max(OPSET_TO_IR_VERSION)


def _keras_source(model, sha256: str, spec) -> Source:
    import keras

    declared = [_tensor_spec(t, i) for i, t in enumerate(getattr(model, "inputs", None) or [])] or None
    source: Source

    def forward(xs: list[np.ndarray]) -> list[np.ndarray]:
        out = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        if isinstance(out, dict):
            source.output_names = list(out)
        return [np.asarray(t) for t in flatten_outputs(out)]

    def call(*xs):
        return flatten_outputs(model(xs[0] if len(xs) == 1 else list(xs), training=False))

    rows = [layer.input_dim for layer in _all_layers(model) if isinstance(layer, keras.layers.Embedding)]
    framework_version, converter_version = _versions()
    source = Source(framework="keras", name=model.name, forward=forward, export=_exporter(call),
                    framework_version=framework_version, converter="tf2onnx", converter_version=converter_version,
                    sha256=sha256, inputs=declared, embedding_rows=min(rows) if rows else None,
                    spec=spec, converter_max_opset=_max_opset())
    return source


def _all_layers(model):
    """Every layer, those of nested models included."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _tensor_spec(tensor, index: int) -> TensorSpec:
    name = str(getattr(tensor, "name", None) or f"input_{index}").split(":")[0]
    shape = tuple(tensor.shape)
    dims = [BATCH] + [d if isinstance(d, int) else f"{name}_dim{i}" for i, d in enumerate(shape[1:], 1)]
    return TensorSpec(name, str(getattr(tensor.dtype, "name", tensor.dtype)), tuple(dims))


def _saved_model(path: Path, spec) -> Source:
    """A TensorFlow SavedModel through its ``serving_default`` signature (no Python code runs)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except KeyError:
        raise InputError(f"{path}: the SavedModel has no serving_default signature") from None
    except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad folder
        raise InputError(f"{path}: cannot load as a SavedModel ({first_line(exc)})") from None
    _, kwargs = signature.structured_input_signature
    args = sorted(kwargs)
    declared = []
    for arg in args:
        ts = kwargs[arg]
        dims = [BATCH] + [d if isinstance(d, int) else f"{arg}_dim{i}" for i, d in enumerate(tuple(ts.shape)[1:], 1)]
        declared.append(TensorSpec(arg, ts.dtype.name, tuple(dims)))
    output_names = sorted(signature.structured_outputs)

    def call(*xs):
        outputs = signature(**dict(zip(args, xs)))
        return [outputs[k] for k in output_names]

    def forward(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(t) for t in call(*(tf.constant(x) for x in xs))]

    framework_version, converter_version = _versions()
    source = Source(framework="keras", name=path.name, forward=forward, export=_exporter(call),
                    framework_version=framework_version, converter="tf2onnx", converter_version=converter_version,
                    sha256=sha256_path(path), inputs=declared, output_names=output_names, spec=spec,
                    converter_max_opset=_max_opset())
    source._keepalive = loaded  # the signature's variables live as long as the loaded object
    return source


def _exporter(call):
    def export(samples: list[np.ndarray], inputs: list[TensorSpec], opset: int, output_names: list[str],
               dynamic_axes: dict[str, dict[int, str]] | None = None):
        import tensorflow as tf
        import tf2onnx

        def dims(x, name):  # None where dynamic: the batch and the axes --input-shape names
            named = (dynamic_axes or {}).get(name, {})
            return (None, *(None if i in named else d for i, d in enumerate(x.shape[1:], 1)))

        signature = [tf.TensorSpec(dims(x, t.name), tf.as_dtype(x.dtype), name=t.name)
                     for x, t in zip(samples, inputs)]
        function = tf.function(call, input_signature=signature)
        tf2onnx_log = logging.getLogger("tf2onnx")
        level = tf2onnx_log.level
        tf2onnx_log.setLevel(logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.ERROR)
        try:
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset)
        except Exception as exc:  # noqa: BLE001 - tf2onnx and TF tracing raise many types
            raise ConversionError(f"tf2onnx could not convert the model ({first_line(exc)})") from None
        finally:
            tf2onnx_log.setLevel(level)
        return proto, f"tf2onnx {tf2onnx.__version__} from_function"

    return export
