"""What lives in one backend's long-lived worker process during a bench.

The parent keeps one :class:`~onnxparity._process.Service` per framework (TensorFlow Keras, Keras
on torch, PyTorch, ONNX Runtime...: :attr:`onnxparity.backends.Backend.process`) alive for
the whole bench and drives them in turn, so the rounds of different backends interleave while
each framework stays in a process of its own. Each row opens its backend's runner with the row's
options, and times the call its ``bind`` returns.
Only the ``time`` calls are measured; everything else (building, binding, warming up) happens
between them and is reported apart.
"""

from __future__ import annotations

import os
import time

import numpy as np

from onnxparity.errors import BackendUnavailable
from onnxparity.inputs import fixed_batch


class BenchWorker:
    def __init__(self) -> None:
        self.opened: dict[str, tuple] = {}  # key -> (runner, signature, input options)
        self.bound: dict[tuple[str, int], object] = {}

    def open(self, key: str, backend: str, model: str, device: str, signature: dict | None = None,
             input_shapes=None, int_range=None, trust: dict | None = None, input_roles=None,
             spec: dict | None = None) -> dict:
        """Open bench row ``backend`` on ``device`` (its runner and options from :mod:`onnxparity.backends`);
        ``{"status": "unavailable", "reason"}`` when it cannot run here. ``spec``: how to feed an original
        that has no spec.json beside it (a ``.pt2`` whose ONNX file's metadata says it)."""
        import importlib

        from onnxparity.backends import bench_backends
        from onnxparity.runners import open_runner, runner_module

        found = next((b for row, b in bench_backends() if row == backend and b.device == device), None)
        if found is None:
            return {"status": "unavailable", "reason": f"no bench backend {backend!r} on {device}"}
        started = time.perf_counter()
        module = runner_module(found.runner)
        try:  # the framework's import, once per process, is not the model's load
            importlib.import_module(module)
        except ImportError as exc:  # Keras on CPU without TensorFlow (the GPU machine), say
            engine = f" (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')})" if module == "keras" else ""
            return {"status": "unavailable", "reason": f"cannot import {module}{engine}: {exc}"}
        imported = time.perf_counter() - started
        started = time.perf_counter()
        try:
            from onnxparity.spec import ModelSpec

            runner = open_runner(model, found.runner, spec=ModelSpec.from_dict(spec) if spec else None, trust=trust,
                                 **{**found.options, **found.bench[backend]})
        except BackendUnavailable as exc:
            return {"status": "unavailable", "reason": str(exc)}
        loaded = time.perf_counter() - started
        own = getattr(runner, "signature", None)
        if own is None and signature is not None:  # the natives take the ONNX file's inputs
            from onnxparity.signature import Signature

            own = Signature.from_dict(signature)
        self.opened[key] = (runner, own, {"input_shapes": input_shapes, "int_range": int_range,
                                                 "input_roles": input_roles})
        return {"status": "ok", "load_s": loaded, "import_s": imported, "details": runner.details(),
                "compiles": getattr(runner, "compiles", False), "pid": os.getpid()}

    def prepare(self, key: str, batch_size: int, warmup_s: float, min_warmup_calls: int = 3) -> dict:
        """Bind the batch, time the first call, warm up; return first-call and warm per-call times."""
        runner, signature, input_options = self.opened[key]
        x = fixed_batch(runner.spec, signature, batch_size, **input_options)
        fn = runner.bind(x)
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
        self.opened.pop(key, None)
        import gc

        gc.collect()
