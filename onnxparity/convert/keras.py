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

from onnxparity.convert.graph import ConversionError, first_line
from onnxparity.convert.source import Source, sha256_arrays, sha256_path
from onnxparity.errors import InputError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)


def open_source(model, spec=None) -> Source:
    """A :class:`Source` for a Keras model object or file (loaded with Keras' safe mode on)."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir():
            return _saved_model(path, spec)
        return _keras_source(_load(path), sha256_path(path), spec)
    return _keras_source(model, sha256_arrays(model.get_weights()), spec)


def _load(path: Path):
    """``keras.models.load_model`` with safe mode on: a file that carries Python code is refused."""
    import keras

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        if "safe_mode" in str(exc) or "arbitrary code" in str(exc):
            raise InputError(f"{path}: Keras safe mode refused to load it: it carries Python code (such as a "
                             "Lambda layer's function); convert it from Python with a model you built yourself") from None
        raise InputError(f"{path}: cannot load as a Keras model ({first_line(exc)})") from None


def _versions() -> tuple[str, str]:
    import keras
    import tensorflow as tf
    import tf2onnx

    return f"keras {keras.__version__}, tensorflow {tf.__version__}", tf2onnx.__version__


def _max_opset() -> int:
    from tf2onnx.constants import OPSET_TO_IR_VERSION

    return max(OPSET_TO_IR_VERSION)


def _keras_source(model, sha256: str, spec) -> Source:
    import tensorflow as tf

    inputs = getattr(model, "inputs", None) or []
    if len(inputs) > 1:
        raise InputError(f"Keras model {model.name!r} has {len(inputs)} inputs; only one-input models convert")
    declared = None
    if inputs:
        shape = tuple(inputs[0].shape[1:])
        declared = shape if all(isinstance(d, int) for d in shape) else None

    def forward(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(t) for t in tf.nest.flatten(model(x, training=False))]

    framework_version, converter_version = _versions()
    return Source(framework="keras", name=model.name, forward=forward, export=_exporter(lambda x: model(x, training=False)),
                  framework_version=framework_version, converter="tf2onnx", converter_version=converter_version,
                  sha256=sha256, input_shape=declared, spec=spec, converter_max_opset=_max_opset())


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
    if len(kwargs) != 1:
        raise InputError(f"{path}: the serving signature takes {len(kwargs)} inputs; only one-input models convert")
    (arg, tensor_spec), = kwargs.items()
    shape = tuple(tensor_spec.shape[1:])
    declared = shape if all(isinstance(d, int) for d in shape) else None

    def call(x):
        outputs = signature(**{arg: x})
        return [outputs[k] for k in sorted(outputs)]

    def forward(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(t) for t in call(tf.constant(x))]

    framework_version, converter_version = _versions()
    source = Source(framework="keras", name=path.name, forward=forward, export=_exporter(call),
                    framework_version=framework_version, converter="tf2onnx", converter_version=converter_version,
                    sha256=sha256_path(path), input_shape=declared, spec=spec, converter_max_opset=_max_opset())
    source._keepalive = loaded  # the signature's variables live as long as the loaded object
    return source


def _exporter(call):
    def export(sample: np.ndarray, input_shape: tuple[int, ...], opset: int, output_names: list[str]):
        import tensorflow as tf
        import tf2onnx

        signature = [tf.TensorSpec((None, *input_shape), tf.float32, name="input")]
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
