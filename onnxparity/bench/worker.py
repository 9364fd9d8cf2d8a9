"""What lives in one backend's long-lived worker process during a bench.

The parent keeps one :class:`~onnxparity._process.Service` per backend group (TensorFlow Keras,
Keras on torch, PyTorch, ONNX Runtime) alive for the whole bench and drives them in turn, so the
rounds of different backends interleave while each framework stays in a process of its own.
Only the ``time`` calls are measured; everything else (building, binding, warming up) happens
between them and is reported apart.
"""

from __future__ import annotations

import os
import time

import numpy as np

from onnxparity.runners import BackendUnavailable

SEED = 0
FRAMEWORK_MODULES = {"keras": "keras", "torch": "torch", "onnxruntime": "onnxruntime"}


def bench_inputs(spec, batch_size: int) -> np.ndarray:
    """The same batch in every process: bundled held-out digits, tiled, in the model's own format."""
    from onnxparity.data import load_digits

    images = load_digits(None, "test").images
    order = np.random.default_rng(SEED).permutation(len(images))
    picked = images[np.resize(order, batch_size)]
    return spec.preprocess(picked)


class BenchWorker:
    def __init__(self) -> None:
        self.variants: dict[str, object] = {}
        self.bound: dict[tuple[str, int], object] = {}

    def open(self, key: str, variant: str, model: str, device: str) -> dict:
        """Build a variant; ``{"status": "unavailable", "reason"}`` when it cannot run here."""
        import importlib

        from onnxparity.bench.variants import VARIANTS, build

        started = time.perf_counter()
        if variant in VARIANTS:  # the framework's import, once per process, is not the model's load
            module = FRAMEWORK_MODULES[VARIANTS[variant][1]]
            try:
                importlib.import_module(module)
            except ImportError as exc:  # Keras on CPU without TensorFlow (the GPU machine), say
                engine = f" (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')})" if module == "keras" else ""
                return {"status": "unavailable", "reason": f"cannot import {module}{engine}: {exc}"}
        imported = time.perf_counter() - started
        try:
            v = build(variant, model, device)
        except BackendUnavailable as exc:
            return {"status": "unavailable", "reason": str(exc)}
        self.variants[key] = v
        return {"status": "ok", "load_s": v.load_seconds, "import_s": imported, "details": v.details(),
                "compiles": v.compiles, "pid": os.getpid()}

    def prepare(self, key: str, batch_size: int, warmup_s: float, min_warmup_calls: int = 3) -> dict:
        """Bind the batch, time the first call, warm up; return first-call and warm per-call times."""
        v = self.variants[key]
        x = bench_inputs(v.spec, batch_size)
        fn = v.bind(x)
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        times = []
        started = time.perf_counter()
        while len(times) < min_warmup_calls or time.perf_counter() - started < warmup_s:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        self.bound[(key, batch_size)] = fn
        return {"first_call_s": first, "warm_call_s": float(np.median(times)), "warmup_calls": len(times)}

    def time(self, key: str, batch_size: int, calls: int) -> list[float]:
        """Per-call wall times (seconds) of ``calls`` back-to-back calls: the only measured part."""
        fn = self.bound[(key, batch_size)]
        clock = time.perf_counter
        out = [0.0] * calls
        for i in range(calls):
            t0 = clock()
            fn()
            out[i] = clock() - t0
        return out

    def release(self, key: str, batch_size: int) -> None:
        self.bound.pop((key, batch_size), None)

    def close(self, key: str) -> None:
        for k in [k for k in self.bound if k[0] == key]:
            del self.bound[k]
        self.variants.pop(key, None)
        import gc

        gc.collect()
