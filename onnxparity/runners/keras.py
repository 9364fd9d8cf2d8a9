"""Keras models from ``.keras`` / ``.h5`` files, on TensorFlow (the reference) or Keras 3's torch backend.

Keras picks its backend once, when it is first imported, from ``KERAS_BACKEND``. So
:class:`KerasTorchRunner` must be the first to import Keras in its process: it sets the variable
itself when Keras is not loaded yet and refuses, with a one-line error, when Keras already runs on
another backend. The parity matrix runs it in a worker process of its own for that reason.

``mode`` says how :meth:`KerasRunner.bind` calls the model for the bench: ``"predict"``
(``model.predict``, numpy in and out), ``"call"`` (``model(x, training=False)`` on the backend's own
tensors) or ``"tf_function"`` (the call traced once into a ``tf.function``, TensorFlow only).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from onnxparity._io import flatten_outputs
from onnxparity.errors import BackendUnavailable, InputError
from onnxparity.models import ModelRef
from onnxparity.models.spec_inference import keras_spec
from onnxparity.runners import cuda_unavailable_reason, match_names, name_outputs, ordered_inputs


MODES = ("predict", "call", "tf_function")


class KerasRunner:
    """The saved Keras model on whatever backend Keras runs on in this process (TensorFlow by default)."""

    engine: str | None = None  # the Keras backend this runner insists on; None takes what is configured
    precision: dict | None = None  # on a GPU under torch: the float32 mode pinned (no TF32)

    def __init__(self, ref: ModelRef, device: str = "cpu", mode: str | None = None):
        if device not in ("cpu", "cuda"):
            raise InputError(f"Keras runner: device must be 'cpu' or 'cuda', not {device!r}")
        if mode is not None and mode not in MODES:
            raise InputError(f"Keras runner: mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "tf_function" and device != "cpu":
            raise BackendUnavailable("tf.function needs TensorFlow, which the GPU runs here do not use "
                                     "(Keras runs on its torch backend there)")
        self.mode = mode
        self.compiles = mode == "tf_function"  # its first call traces the graph
        self._traced = None
        self._select_engine(device)
        import keras

        from onnxparity.models.keras_cnn import load

        self.engine_name = keras.backend.backend()
        self.device = device
        self._check_device()
        # TensorFlow: a device scope around inference. Torch backend: the device Keras was imported
        # with (KERAS_TORCH_DEVICE, set in _select_engine); a scope around loading breaks Dropout's
        # seed state there (Keras 3.15), so none is used.
        self._scope = ("gpu:0" if device == "cuda" else "cpu:0") if self.engine_name == "tensorflow" else None
        if ref.path.is_dir() and self.engine_name != "tensorflow":
            raise BackendUnavailable(f"{ref.path}: a TensorFlow SavedModel runs on TensorFlow only")
        self.model = load(ref.path)
        self.spec = ref.spec or keras_spec(self.model, ref.path)  # a bare file: as convert infers it
        self._keras = keras
        names = self.spec.signature.input_names if self.spec.signature else []
        self._own_inputs = [str(t.name) for t in getattr(self.model, "inputs", None) or []] or None
        self.matched = {"inputs": match_names(names, self._own_inputs) if len(names) > 1 else {"by": "order"}}
        self.name = f"keras-{self.engine_name}" + ("" if device == "cpu" else f"-{device}")

    def _select_engine(self, device: str) -> None:
        loaded = sys.modules.get("keras")
        if loaded is not None:
            current = loaded.backend.backend()
            if self.engine is not None and current != self.engine:
                raise InputError(
                    f"Keras is already loaded with the {current} backend in this process; the {self.engine} "
                    f"backend needs a fresh process with KERAS_BACKEND={self.engine}"
                )
            if current == "torch" and (actual := keras_torch_device()) != device:
                raise InputError(f"Keras on torch was loaded for {actual}, not {device}; use a fresh process")
            return
        engine = self.engine or os.environ.get("KERAS_BACKEND", "tensorflow")
        if importlib_find(engine) is None:
            raise BackendUnavailable(f"Keras' {engine} backend needs {engine}, which is not installed")
        os.environ["KERAS_BACKEND"] = engine
        if engine == "torch":
            os.environ["KERAS_TORCH_DEVICE"] = device

    def _check_device(self) -> None:
        if self.device == "cpu":
            return
        if self.engine_name == "torch":
            reason = cuda_unavailable_reason()
            if reason:
                raise BackendUnavailable(f"Keras on the torch backend: {reason}")
            import torch

            from onnxparity.gpu import pin_full_precision

            self.precision = pin_full_precision(torch)  # no TF32: float32 against float32
        elif self.engine_name == "tensorflow":
            import tensorflow as tf

            if not tf.config.list_physical_devices("GPU"):
                built = "built with CUDA" if tf.test.is_built_with_cuda() else "a CPU-only build"
                raise BackendUnavailable(f"TensorFlow {tf.__version__} ({built}) sees no GPU")
        else:
            raise BackendUnavailable(f"Keras on {self.engine_name}: GPU runs are not supported by this runner")

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        xs = [np.ascontiguousarray(x) for x in ordered_inputs(self.spec, feeds, self._own_inputs)]
        x = xs[0] if len(xs) == 1 else xs
        if self._scope is None:
            out = self.model.predict_on_batch(x)
        else:
            with self._keras.device(self._scope):
                out = self.model.predict_on_batch(x)
        if not isinstance(out, dict) and len(getattr(self.model, "output_names", None) or ()) == len(flatten_outputs(out)) > 1:
            out = dict(zip(self.model.output_names, flatten_outputs(out)))  # the model's own output names
        arrays, self.matched["outputs"] = name_outputs(self.spec, out, f"Keras model {self.model.name!r}",
                                                       lambda t: np.asarray(self._keras.ops.convert_to_numpy(t)))
        return arrays

    def float64(self) -> "KerasRunner":
        """A copy of this runner with the model rebuilt from its config in float64 and its weights
        cast, on the CPU: the calibrated verdict's truth."""
        import contextlib
        import copy

        if self.device != "cpu":
            raise BackendUnavailable("the float64 truth runs on the CPU only")
        keras = self._keras
        config = as_float64(keras.saving.serialize_keras_object(self.model))
        with keras.device("cpu:0") if self.engine_name == "tensorflow" else contextlib.nullcontext():
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
            model.set_weights([np.asarray(w).astype(np.float64) if np.asarray(w).dtype.kind == "f" else w
                               for w in self.model.get_weights()])
        twin = copy.copy(self)
        twin.model, twin.mode, twin._traced = model, None, None
        return twin

    def bind(self, feeds: dict[str, np.ndarray]):
        """One call on this batch in the runner's ``mode``; numpy out (on a GPU: synchronised, left there)."""
        if self.mode is None:
            return lambda: self.infer(feeds)
        xs = ordered_inputs(self.spec, feeds, self._own_inputs)
        if self.mode == "predict":
            model, x, n = self.model, xs[0] if len(xs) == 1 else xs, len(xs[0])
            return lambda: model.predict(x, batch_size=n, verbose=0)
        ts = self._tensors(xs)
        model, ops, t = self.model, self._keras.ops, ts[0] if len(ts) == 1 else ts
        if self.mode == "tf_function":
            import tensorflow as tf

            if self._traced is None:  # traced once, at the first batch size, for any batch size after it
                many = len(ts) > 1
                specs = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in ts]
                self._traced = tf.function(lambda *args: model(list(args) if many else args[0], training=False),
                                           input_signature=specs)
            fn = self._traced
            return lambda: ops.convert_to_numpy(fn(*ts))
        if self.engine_name == "torch":
            import torch

            on_gpu = self.device == "cuda"

            def run():
                with torch.inference_mode():
                    out = model(t, training=False)
                if on_gpu:
                    torch.cuda.synchronize()
                    return out
                return ops.convert_to_numpy(out)

            return run
        return lambda: ops.convert_to_numpy(model(t, training=False))

    def _tensors(self, xs: list[np.ndarray]) -> list:
        """The batch as the backend's own tensors, on the device (what a user's pipeline holds)."""
        if self.engine_name == "torch":
            import torch

            return [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in xs]
        import tensorflow as tf

        with tf.device("/cpu:0"):
            return [tf.constant(x) for x in xs]

    def details(self) -> dict:
        import keras

        d = {"keras": keras.__version__, "keras_backend": self.engine_name, "device": self.device,
             "matched": self.matched}
        return {**d, "precision": self.precision} if self.precision else d


class KerasTorchRunner(KerasRunner):
    """The same ``.keras`` file under Keras 3's torch backend: another engine, no conversion."""

    engine = "torch"


RUNNERS = {"keras": KerasRunner, "keras-torch": KerasTorchRunner}


def keras_torch_device() -> str:
    """The device Keras' torch backend puts tensors on in this process ("cpu", "cuda"), whatever
    ``KERAS_TORCH_DEVICE`` says now: Keras read it once, at import."""
    from keras.src.backend.torch.core import get_device

    return str(get_device()).split(":", 1)[0]


def as_float64(config):
    """A serialized Keras config with every float32 dtype (a layer's dtype policy, an input's dtype) float64."""
    if isinstance(config, dict):
        out = {k: as_float64(v) for k, v in config.items()}
        if config.get("class_name") == "DTypePolicy" and isinstance(out.get("config"), dict):
            if out["config"].get("name") in ("float32", "mixed_float16", "mixed_bfloat16"):
                out["config"] = {**out["config"], "name": "float64"}
        for key in ("dtype", "compute_dtype", "variable_dtype"):
            if out.get(key) == "float32":
                out[key] = "float64"
        return out
    if isinstance(config, list):
        return [as_float64(v) for v in config]
    return config


def importlib_find(module: str):
    import importlib.util

    return importlib.util.find_spec(module)
