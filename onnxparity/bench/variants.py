"""The ways of running a model that the bench times: native baselines and ONNX Runtime.

Each variant is built once per model in its backend's worker process (:mod:`onnxparity.bench.worker`)
and ``bind(x)`` returns a zero-argument callable that runs one call on the batch ``x`` and waits
for its result (numpy out on CPU; on a GPU the batch and the result stay on the device and the
call ends with a synchronisation). Natives reuse the parity runners where they fit; the bench
variants the runners lack (``keras.predict``, ``tf.function``, ``torch.compile``, I/O binding)
live here. Frameworks are imported inside the variants, never at module import time.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from onnxparity.errors import InputError
from onnxparity.models import ModelRef, resolve
from onnxparity.runners import BackendUnavailable

Bound = Callable[[], object]


class Variant:
    """Base: ``name``, ``device``, ``spec``; ``bind(x)``; ``details()``; ``compiles`` if its first call compiles."""

    name = "?"
    compiles = False

    def __init__(self, ref: ModelRef, device: str):
        self.ref = ref
        self.device = device

    def bind(self, x: np.ndarray) -> Bound:
        raise NotImplementedError

    def details(self) -> dict:
        return {}


# -- Keras ---------------------------------------------------------------------------------------
class _Keras(Variant):
    def __init__(self, ref: ModelRef, device: str):
        super().__init__(ref, device)
        from onnxparity.runners.keras import KerasRunner, KerasTorchRunner

        # On a GPU, Keras runs on its torch backend (the GPU machine has no TensorFlow); on the
        # CPU on TensorFlow, the reference.
        self.runner = (KerasTorchRunner if device == "cuda" else KerasRunner)(ref, device=device)
        self.spec = self.runner.spec
        self.model = self.runner.model
        import keras

        self.keras = keras

    def _tensor(self, x: np.ndarray):
        """The batch as the backend's own tensor, on the device (what a user's pipeline holds)."""
        if self.runner.engine_name == "torch":
            import torch

            return torch.from_numpy(x).to(self.device)
        import tensorflow as tf

        with tf.device("/cpu:0"):
            return tf.constant(x)

    def _sync(self):
        if self.device == "cuda":
            import torch

            return torch.cuda.synchronize
        return lambda: None

    def details(self) -> dict:
        return self.runner.details()


class KerasPredict(_Keras):
    """``model.predict(x, batch_size=len(x))``: the article's call, numpy in and out."""

    name = "keras.predict"

    def bind(self, x):
        model, n = self.model, len(x)
        return lambda: model.predict(x, batch_size=n, verbose=0)


class KerasCall(_Keras):
    """``model(x, training=False)`` on a tensor, eagerly; result to numpy (or synchronised on a GPU)."""

    name = "keras.call"

    def bind(self, x):
        model, t, ops = self.model, self._tensor(x), self.keras.ops
        if self.runner.engine_name == "torch":
            import torch

            sync = self._sync()

            def run():
                with torch.inference_mode():
                    out = model(t, training=False)
                sync()
                return out if self.device == "cuda" else ops.convert_to_numpy(out)

            return run
        return lambda: model(t, training=False).numpy()


class KerasTfFunction(_Keras):
    """The model's call wrapped in one ``tf.function`` (a traced graph, no XLA), result to numpy."""

    name = "keras.tf_function"
    compiles = True

    def __init__(self, ref, device):
        if device != "cpu":
            raise BackendUnavailable("tf.function needs TensorFlow, which the GPU runs here do not use "
                                     "(Keras runs on its torch backend there)")
        super().__init__(ref, device)
        import tensorflow as tf

        model = self.model
        shape = (None, *self.spec.input_shape)
        self.fn = tf.function(lambda t: model(t, training=False),
                              input_signature=[tf.TensorSpec(shape, tf.float32)])

    def bind(self, x):
        fn, t = self.fn, self._tensor(x)
        return lambda: fn(t).numpy()


# -- PyTorch -------------------------------------------------------------------------------------
class TorchEager(Variant):
    """The parity runner's model, eager under ``inference_mode``; a tensor already on the device."""

    name = "torch.eager"

    def __init__(self, ref, device):
        super().__init__(ref, device)
        from onnxparity.runners.torch import TorchRunner

        self.runner = TorchRunner(ref, device=device)
        self.spec = self.runner.spec
        self.model = self.runner.model
        import torch

        self.torch = torch
        if device == "cuda":
            torch.backends.cudnn.benchmark = True  # cuDNN's autotuner, as ORT's EXHAUSTIVE search

    def _callable(self):
        return self.model

    def bind(self, x):
        torch, model = self.torch, self._callable()
        t = torch.from_numpy(x).to(self.device)
        if self.device == "cuda":
            def run():
                with torch.inference_mode():
                    out = model(t)
                torch.cuda.synchronize()
                return out
            return run

        def run_cpu():
            with torch.inference_mode():
                return model(t).numpy()
        return run_cpu

    def details(self) -> dict:
        return {**self.runner.details(), "threads": self.torch.get_num_threads()}


class TorchCompile(TorchEager):
    """``torch.compile(model, dynamic=False)``: one specialised graph per batch size.

    The first call at each batch size compiles (Inductor; C++ on CPU, Triton on CUDA); the bench
    reports that time apart as the compile time.
    """

    name = "torch.compile"
    compiles = True

    def __init__(self, ref, device):
        super().__init__(ref, device)
        self.compiled = self.torch.compile(self.model, dynamic=False)

    def _callable(self):
        return self.compiled


# -- ONNX Runtime --------------------------------------------------------------------------------
class OnnxRuntime(Variant):
    """The toolkit's ONNX Runtime path: :func:`~onnxparity.runners.onnxrt.make_session`'s tuned session.

    On CPU: ``session.run`` with numpy in and out. On CUDA: I/O binding, the batch and a
    preallocated output living on the GPU, so a call is the graph and nothing else.
    """

    name = "onnxruntime"
    tuned = True

    def __init__(self, ref, device):
        super().__init__(ref, device)
        import onnxruntime as ort

        from onnxparity.runners.onnxrt import check_started, make_session, ort_build, resolve_providers
        from onnxparity.spec import ModelSpec

        self.ort = ort
        providers: list = resolve_providers([device])
        if device == "cuda" and self.tuned:  # ORT's own defaults, spelled out for the report; I/O binding is the gain
            providers[0] = (providers[0], CUDA_OPTIONS)
        self.session = make_session(ref.path, providers, tuned=self.tuned)
        check_started(self.session, providers)
        self.spec = ModelSpec.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._build = ort_build()

    def bind(self, x):
        session, feed = self.session, {self.input_name: x}
        if self.device != "cuda":
            return lambda: session.run(None, feed)[0]
        ort = self.ort
        out_shape = [len(x), *session.get_outputs()[0].shape[1:]]
        if not all(isinstance(d, int) for d in out_shape):  # a symbolic axis besides the batch: ask the model
            out_shape = [len(x), *session.run(None, {self.input_name: x[:1]})[0].shape[1:]]
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        y_dev = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32, "cuda", 0)
        binding = session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x_dev)
        binding.bind_ortvalue_output(self.output_name, y_dev)
        keep = (x_dev, y_dev)  # the device buffers live as long as the callable

        def run(binding=binding, keep=keep):
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return keep[1]

        return run

    def details(self) -> dict:
        return {"onnxruntime": self._build, "providers": self.session.get_providers(),
                "settings": session_settings(self.session)}


class OnnxRuntimeDefault(OnnxRuntime):
    """Plain ``InferenceSession(path)`` with ORT's default options and ``session.run`` on numpy:
    what a user gets without the toolkit, beside its tuned path."""

    name = "onnxruntime.default"
    tuned = False

    def bind(self, x):
        session, feed = self.session, {self.input_name: x}
        return lambda: session.run(None, feed)[0]


def session_settings(session) -> dict:
    """The options a session runs with, as the bench reports them."""
    import onnxruntime as ort

    o = session.get_session_options()
    levels = {v: k for k, v in ort.GraphOptimizationLevel.__members__.items()}
    entries = {}
    for key in ("session.intra_op.allow_spinning", "session.intra_op.spin_duration_us",
                "session.intra_op.spin_backoff_max"):
        try:
            entries[key] = o.get_session_config_entry(key)
        except Exception:  # noqa: BLE001 - ORT raises when the entry was never set
            entries[key] = "default"
    return {"intra_op_num_threads": o.intra_op_num_threads, "inter_op_num_threads": o.inter_op_num_threads,
            "graph_optimization_level": levels.get(o.graph_optimization_level, str(o.graph_optimization_level)),
            "execution_mode": str(o.execution_mode).rsplit(".", 1)[-1], "enable_cpu_mem_arena": o.enable_cpu_mem_arena,
            **entries, "graph_rewrites": list(getattr(session, "graph_rewrites", []))}


# CUDA EP options, named so the report shows them; both are ORT's defaults (docs/bench.md), so the
# toolkit's CUDA path differs from onnxruntime.default by its I/O binding, not by these.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1"}



# name -> (class, worker group, frameworks whose models it runs)
VARIANTS: dict[str, tuple[type[Variant], str, tuple[str, ...]]] = {
    "keras.predict": (KerasPredict, "keras", ("keras",)),
    "keras.call": (KerasCall, "keras", ("keras",)),
    "keras.tf_function": (KerasTfFunction, "keras", ("keras",)),
    "torch.eager": (TorchEager, "torch", ("torch",)),
    "torch.compile": (TorchCompile, "torch", ("torch",)),
    "onnxruntime": (OnnxRuntime, "onnxruntime", ("onnx",)),
    "onnxruntime.default": (OnnxRuntimeDefault, "onnxruntime", ("onnx",)),
}
ORT_VARIANT = "onnxruntime"


def build(name: str, model: str, device: str) -> Variant:
    if name not in VARIANTS:
        raise InputError(f"unknown bench backend {name!r} (known: {', '.join(VARIANTS)})")
    cls = VARIANTS[name][0]
    started = time.perf_counter()
    variant = cls(resolve(model), device)
    variant.load_seconds = time.perf_counter() - started
    return variant
