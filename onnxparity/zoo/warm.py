"""Warm workers: each framework loaded once per node, in a process of its own, reused by every model.

A check spends its first seconds importing TensorFlow, PyTorch or ONNX Runtime. In a zoo a
:class:`WarmWorker` (a Ray actor) keeps one framework loaded for one device on one node and runs
the backends of model after model there. The framework lives in a child of the actor, an
:class:`onnxparity._process.Service`, not in the actor itself: a framework that crashes, or a backend
that overruns its timeout, then ends only that child; the actor reports it as the backend's result
(never retried, as ``check`` reports it) and starts a fresh child for the next model. The child is
also replaced after :data:`WORKER_MODELS` models (frameworks hold on to memory) and when the
backend's environment changes. Ray's own retries are kept for what is truly lost: the actor's
process or its node, restarted elsewhere (``max_restarts``) with the call repeated there
(``max_task_retries``).

:class:`Registry` hands out the workers: for a CPU backend the one on the node where the model's
task runs (its inputs are already there), for a CUDA backend one on a GPU node, asking for a share
of a GPU (``num_gpus``), so that the CPU reference and the CUDA candidates of one model may run on
different nodes and meet in the model's task. :class:`RayWorkers` is what that task hands to
:func:`onnxparity.parity.matrix.run` as its ``workers``.
"""

from __future__ import annotations

import resource
import sys
import tempfile

from onnxparity import _process
from onnxparity.errors import InputError, WorkerError, first_line
from onnxparity.parity.matrix import BACKEND_WORKER

RETRIES = 3  # a lost worker or node: its calls and model tasks are run again, up to this many times
WORKER_MODELS = 50  # models one framework process serves before a fresh one takes over


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def _write_feeds(arrays: dict, folder: str) -> dict[str, str]:
    """Inputs that came from another node, as files here (what parity's worker opens)."""
    from onnxparity.inputs import Inputs, prepare
    from onnxparity.inputs.samples import GIVEN, unlabelled

    n = len(next(iter(arrays.values())))
    return prepare(Inputs(unlabelled(n), (GIVEN,) * n, "another Ray node", arrays=arrays), None, folder)


class WarmWorker:
    """One framework on one device, kept loaded: a Ray actor holding the framework's process."""

    def __init__(self, runner: str, device: str, max_models: int = WORKER_MODELS, imports: tuple[str, ...] = ()):
        import ray

        _process.request_imports(imports, only=True)  # handed on to the framework processes it starts

        self.kind = f"{runner}:{device}"
        self.node = ray.get_runtime_context().get_node_id()
        self.max_models = max_models
        self.service: _process.Service | None = None
        self.env: dict | None = None
        self.models: set[str] = set()  # the models the current process has served
        self.served: set[str] = set()  # every model it has served
        self.counts = {"processes": 0, "calls": 0, "ended_early": 0}  # ended early: crashed or timed out
        self.peak_mb: float | None = None  # of the framework processes that could still be asked

    def run(self, model: str, backend, payload: dict, env: dict, timeout: float, origin: str, feeds,
            max_memory: int | None = None) -> tuple:
        """One backend's job (parity's worker payload) in the warm process: ``(status, payload, tail)``
        with status "ok" (payload: the worker's answer), "input-error" or "error" (its message).
        ``feeds``: the inputs as arrays, where the model's task runs on another node (``origin``).
        ``max_memory``: the model's ``--max-memory``, the resident bytes past which the process is
        stopped during this call."""
        self.counts["calls"] += 1
        if backend.device != "cpu":  # planned on the model's node; whether it can run is known here
            why = backend.unavailable(True)
            if why:
                return "ok", {"status": "unavailable", "reason": f"{why} (Ray node {self.node[:8]})"}, ""
        with tempfile.TemporaryDirectory(prefix="onnxparity-zoo-") as tmp:
            if origin != self.node and feeds is not None:  # prepared on the model's node; Ray brought them here
                payload = dict(payload, inputs=_write_feeds(feeds, tmp))
            service = self._service(env, model)
            service.memory.limit = max_memory  # this model's limit, for this call
            try:
                answer = service.call("call", BACKEND_WORKER, payload, timeout=timeout)
            except InputError as exc:
                return "input-error", str(exc), ""
            except WorkerError as exc:
                if not service.running:  # crashed or timed out: retire it
                    self.counts["ended_early"] += 1
                    self.service = None
                return "error", str(exc).removeprefix(f"{service.name}: "), exc.output_tail
        answer.setdefault("details", {})["ray_node"] = self.node
        return "ok", answer, ""

    def _service(self, env: dict, model: str) -> _process.Service:
        """The framework's process for ``model``: the warm one, or a fresh one where it has served
        enough models, runs another environment, or is gone."""
        if self.service is not None and (env != self.env or model not in self.models
                                         and len(self.models) >= self.max_models):
            self._retire()
        if self.service is None:
            self.service = _process.Service("onnxparity._process:Calls", name=f"warm {self.kind}", env=env)
            self.env, self.models = env, set()
            self.counts["processes"] += 1
        self.models.add(model)
        self.served.add(model)
        return self.service

    def _measure(self) -> None:
        if self.service is not None and self.service.running:
            try:
                peak = self.service.call("call", "onnxparity.zoo.warm:peak_rss_mb", timeout=30)
            except WorkerError:
                return
            self.peak_mb = max(self.peak_mb or 0.0, peak)

    def _retire(self) -> None:
        self._measure()
        if self.service is not None:
            self.service.close()
        self.service = None

    def stats(self) -> dict:
        """What it did: framework processes started and ended early, models served, calls; the
        framework processes' peak memory and its own."""
        self._measure()
        return {"kind": self.kind, "node": self.node, "models": len(self.served), **self.counts,
                "peak_rss_mb": self.peak_mb,
                "actor_peak_rss_mb": peak_rss_mb()}


class Registry:
    """Hands each model's task the warm worker for one of its backends, creating it on first use.
    The workers are this actor's own, so they end with it (and it with the zoo's driver)."""

    def __init__(self, run_id: str, max_models: int = WORKER_MODELS, gpu_share: float = 1.0,
                 gpu_nodes: tuple[str, ...] = (), imports: tuple[str, ...] = ()):
        self.run_id, self.max_models, self.gpu_share, self.gpu_nodes = run_id, max_models, gpu_share, gpu_nodes
        self.imports = imports  # the zoo's --import modules, for every warm worker
        self.workers: dict[tuple[str, str, str], object] = {}
        self.turn = 0  # round robin over the GPU nodes

    def worker(self, node: str, runner: str, device: str) -> tuple[object, str]:
        """The worker for ``runner`` on ``device`` for a task on ``node``, and the node it was placed on."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if device == "cuda" and self.gpu_nodes:
            node = self.gpu_nodes[self.turn % len(self.gpu_nodes)]
            self.turn += 1
        key = (node, runner, device)
        if key not in self.workers:
            options = dict(name=f"onnxparity-zoo-{self.run_id}/{runner}:{device}@{node[:12]}", num_cpus=0,
                           max_restarts=RETRIES, max_task_retries=RETRIES,
                           # soft: a worker whose node is lost starts again on another
                           scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True))
            if device == "cuda":
                options["num_gpus"] = self.gpu_share
            self.workers[key] = ray.remote(WarmWorker).options(**options).remote(
                runner, device, self.max_models, self.imports)
        return self.workers[key], node

    def stats(self) -> list[dict]:
        import ray

        return ray.get([w.stats.remote() for w in self.workers.values()])


class RemoteJob:
    """A backend's job on a warm worker, seen as parity's matrix sees a worker process."""

    def __init__(self, ref, name: str):
        self.ref, self.name = ref, name

    def done(self) -> bool:
        import ray

        return bool(ray.wait([self.ref], timeout=0)[0])

    def result(self) -> dict:
        import ray

        try:
            status, payload, tail = ray.get(self.ref)
        except ray.exceptions.RayError as exc:  # the worker was lost more often than Ray retries
            raise WorkerError(f"{self.name}: {first_line(exc)}") from None
        if status == "input-error":
            raise InputError(payload)
        if status != "ok":
            raise WorkerError(f"{self.name}: {payload}", tail)
        return payload

    def stop(self) -> None:
        import ray

        ray.cancel(self.ref)


class RayWorkers:
    """The ``workers`` of one model's matrix in the zoo (as :class:`onnxparity.parity.matrix.LocalWorkers`):
    every backend on the cluster's warm worker for its framework and device."""

    def __init__(self, registry, model: str, no_gpu: str | None, max_memory: int | None = None):
        import ray

        self.registry, self.model, self.no_gpu, self.max_memory = registry, model, no_gpu, max_memory
        self.node = ray.get_runtime_context().get_node_id()
        self.shipped: dict[tuple, object] = {}

    def unavailable(self, backend, gpu: bool) -> str | None:
        """A CUDA backend is planned wherever the cluster has a GPU (the GPU node tells whether it
        runs); the others are asked here, on the node where they will run."""
        if backend.device == "cuda" and gpu:
            return self.no_gpu
        return backend.unavailable(gpu)

    def wait(self, jobs: list[RemoteJob], timeout: float) -> list[RemoteJob]:
        """The jobs whose answer is in, waiting up to ``timeout`` seconds for one."""
        import ray

        ray.wait([j.ref for j in jobs], num_returns=1, timeout=timeout)
        return [j for j in jobs if j.done()]

    def start(self, job, payload: dict, timeout: float) -> RemoteJob:
        import ray

        from onnxparity.inputs import open_feeds

        worker, node = ray.get(self.registry.worker.remote(self.node, job.backend.runner, job.device))
        feeds = None
        if node != self.node:  # the inputs travel as a Ray object, once per preparation
            key = tuple(sorted(payload["inputs"].items()))
            if key not in self.shipped:
                self.shipped[key] = ray.put(open_feeds(payload["inputs"]))
            feeds = self.shipped[key]
        ref = worker.run.remote(self.model, job.backend, payload, job.env, timeout, self.node, feeds, self.max_memory)
        return RemoteJob(ref, f"{job.model} {job.label}")
