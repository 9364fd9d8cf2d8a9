"""The ways of running a model that the bench times: native baselines and ONNX Runtime.

Each variant is built once per model in its backend's worker process (:mod:`onnxparity.bench.worker`)
and ``bind(feeds)`` returns a zero-argument callable that runs one call on the batch ``feeds`` (inputs
by name) and waits
for its result (numpy out on CPU; on a GPU the batch and the result stay on the device and the
call ends with a synchronisation). Natives reuse the parity runners where they fit; the bench
variants the runners lack (``keras.predict``, ``tf.function``, ``torch.compile``, I/O binding)
live here. Frameworks are imported inside the variants, never at module import time.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from onnxparity.errors import BackendUnavailable, InputError
from onnxparity.models import ModelRef, resolve

Bound = Callable[[], object]


class Variant:
    """Base: ``name``, ``device``, ``spec``; ``bind(x)``; ``details()``; ``compiles`` if its first call compiles."""

    name = "?"
    compiles = False

    def __init__(self, ref: ModelRef, device: str):
        self.ref = ref
        self.device = device

    signature = None  # the ONNX variants' Signature; natives take their inputs in the spec's order

    def bind(self, feeds: dict[str, np.ndarray]) -> Bound:
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

    def _args(self, feeds):
        """The model's call argument: one array, or a list in the spec's input order."""
        from onnxparity.runners import ordered_inputs

        xs = ordered_inputs(self.spec, feeds)
        return xs[0] if len(xs) == 1 else xs

    def _tensor(self, feeds):
        """The batch as the backend's own tensors, on the device (what a user's pipeline holds)."""
        from onnxparity.runners import ordered_inputs

        xs = ordered_inputs(self.spec, feeds)
        if self.runner.engine_name == "torch":
            import torch

            ts = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in xs]
        else:
            import tensorflow as tf

            with tf.device("/cpu:0"):
                ts = [tf.constant(x) for x in xs]
        return ts[0] if len(ts) == 1 else ts

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

    def bind(self, feeds):
        model, x = self.model, self._args(feeds)
        n = len(next(iter(feeds.values())))
        return lambda: model.predict(x, batch_size=n, verbose=0)


class KerasCall(_Keras):
    """``model(x, training=False)`` on a tensor, eagerly; result to numpy (or synchronised on a GPU)."""

    name = "keras.call"

    def bind(self, feeds):
        model, t, ops = self.model, self._tensor(feeds), self.keras.ops
        if self.runner.engine_name == "torch":
            import torch

            sync = self._sync()

            def run():
                with torch.inference_mode():
                    out = model(t, training=False)
                sync()
                return out if self.device == "cuda" else ops.convert_to_numpy(out)

            return run
        return lambda: ops.convert_to_numpy(model(t, training=False))


class KerasTfFunction(_Keras):
    """The model's call wrapped in one ``tf.function`` (a traced graph, no XLA), result to numpy."""

    name = "keras.tf_function"
    compiles = True

    def __init__(self, ref, device):
        if device != "cpu":
            raise BackendUnavailable("tf.function needs TensorFlow, which the GPU runs here do not use "
                                     "(Keras runs on its torch backend there)")
        super().__init__(ref, device)
        self.fn = None

    def bind(self, feeds):
        import tensorflow as tf

        t, ops = self._tensor(feeds), self.keras.ops
        if self.fn is None:  # traced once, at the first batch size, for any batch size after it
            model, many = self.model, isinstance(t, list)
            specs = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in (t if many else [t])]
            self.fn = tf.function(lambda *xs: model(list(xs) if many else xs[0], training=False),
                                  input_signature=specs)
        fn, args = self.fn, (t if isinstance(t, list) else [t])
        return lambda: ops.convert_to_numpy(fn(*args))


# -- PyTorch -------------------------------------------------------------------------------------
class TorchEager(Variant):
    """The parity runner's model, eager under ``inference_mode``; a tensor already on the device."""

    name = "torch.eager"

    def __init__(self, ref, device, trust: dict | None = None):
        super().__init__(ref, device)
        from onnxparity.runners.torch import TorchRunner

        self.runner = TorchRunner(ref, device=device, trust=trust)
        self.spec = self.runner.spec
        self.model = self.runner.model
        import torch

        self.torch = torch
        if device == "cuda":
            torch.backends.cudnn.benchmark = True  # cuDNN's autotuner, as ORT's EXHAUSTIVE search

    def _callable(self):
        return self.model

    def bind(self, feeds):
        from onnxparity.convert.torch import flatten_outputs
        from onnxparity.runners import ordered_inputs

        torch, model = self.torch, self._callable()
        ts = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in ordered_inputs(self.spec, feeds)]
        if self.device == "cuda":
            def run():
                with torch.inference_mode():
                    out = model(*ts)
                torch.cuda.synchronize()
                return out
            return run

        def run_cpu():
            with torch.inference_mode():
                return [t.numpy() for t in flatten_outputs(model(*ts))]
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

    def __init__(self, ref, device, trust: dict | None = None):
        super().__init__(ref, device, trust)
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

        from onnxparity.onnx_model import OnnxModel
        from onnxparity.runners.onnxrt import check_started, ort_build, resolve_providers

        self.ort = ort
        providers: list = resolve_providers([device])
        if device == "cuda" and self.tuned:  # ORT's own defaults, spelled out for the report; I/O binding is the gain
            providers[0] = (providers[0], CUDA_OPTIONS)
        model = OnnxModel(ref.path)
        self.session = model.session(providers, tuned=self.tuned)
        check_started(self.session, providers)
        self.spec, self.signature = model.spec, model.signature
        self._build = ort_build()

    def bind(self, feeds):
        session = self.session
        feeds = {t.name: np.ascontiguousarray(feeds[t.name], dtype=t.dtype) for t in self.signature.inputs}
        if self.device != "cuda":
            return lambda: session.run(None, feeds)
        # I/O binding: inputs and preallocated outputs live on the GPU, so a call is the graph alone.
        ort = self.ort
        probe = session.run(None, {k: v[:1] if self.signature.batched else v for k, v in feeds.items()})
        n = len(next(iter(feeds.values())))
        binding = session.io_binding()
        keep = []
        for name, x in feeds.items():
            keep.append(ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_ortvalue_input(name, keep[-1])
        for t, y in zip(self.signature.outputs, probe):
            shape = [n, *y.shape[1:]] if self.signature.batched else list(y.shape)
            keep.append(ort.OrtValue.ortvalue_from_shape_and_type(shape, y.dtype, "cuda", 0))
            binding.bind_ortvalue_output(t.name, keep[-1])

        def run(binding=binding, keep=keep):  # the device buffers live as long as the callable
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
            return keep[-1]

        return run

    def details(self) -> dict:
        return {"onnxruntime": self._build, "providers": self.session.get_providers(),
                "settings": session_settings(self.session)}


class OnnxRuntimeDefault(OnnxRuntime):
    """Plain ``InferenceSession(path)`` with ORT's default options and ``session.run`` on numpy:
    what a user gets without the toolkit, beside its tuned path."""

    name = "onnxruntime.default"
    tuned = False

    def bind(self, feeds):
        session = self.session
        feeds = {t.name: np.ascontiguousarray(feeds[t.name], dtype=t.dtype) for t in self.signature.inputs}
        return lambda: session.run(None, feeds)


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


def build(name: str, model: str, device: str, trust: dict | None = None) -> Variant:
    if name not in VARIANTS:
        raise InputError(f"unknown bench backend {name!r} (known: {', '.join(VARIANTS)})")
    cls = VARIANTS[name][0]
    started = time.perf_counter()
    variant = cls(resolve(model), device, trust) if issubclass(cls, TorchEager) else cls(resolve(model), device)
    variant.load_seconds = time.perf_counter() - started
    return variant
