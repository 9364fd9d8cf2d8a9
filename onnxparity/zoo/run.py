"""Checking a zoo on Ray: every entry validated first, then one Ray task per model's matrix.

The driver (this process) submits up to ``jobs`` model tasks at a time, each asking for a CPU and
the entry's ``resources``, and collects them as they finish. A task runs
:func:`onnxparity.parity.check` (the same plan, inputs, comparison and reports as ``check``) with
its backends on the warm workers (:mod:`onnxparity.zoo.warm`). A failed check, a crashed backend
and a timeout come back as results and are never run again; a task whose worker or node is lost
is run again by Ray (``max_retries``). Ctrl-C or SIGTERM cancels what is still running and the
reports are written with what finished.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from onnxparity import _process, _signals, progress
from onnxparity.errors import InputError, OnnxParityError, first_line
from onnxparity.zoo import cluster
from onnxparity.zoo.manifest import Entry
from onnxparity.zoo.reports import write_reports
from onnxparity.zoo.results import REGRESSION_FACTOR, ModelRun, ZooResult, regressions
from onnxparity.zoo.warm import RETRIES, WORKER_MODELS, RayWorkers, Registry, peak_rss_mb

POLL_S = 0.1
INPUT_OPTIONS = ("data", "n", "synthetic", "inputs", "input_shapes", "int_range", "input_roles", "axis_sizes")
TARGET_OPTIONS = ("torch_class", "torch_kwargs", "trust_recorded", "axis_names")


def check_zoo(entries: list[Entry], out: str | Path, *, address: str = cluster.LOCAL,
              baseline: str | Path | None = None, jobs: int | None = None, factor: float = REGRESSION_FACTOR,
              worker_models: int = WORKER_MODELS) -> ZooResult:
    """Check every entry on Ray and write the reports into ``out``.

    ``address``: "local" (a Ray started here), "auto" or a cluster's address; a connection this
    process already has is used instead. ``jobs``: models at once (default: the cluster's CPUs).
    ``baseline``: a previous ``results.json``, to flag regressions (a model that passed and now
    does not, or an error grown more than ``factor`` times). ``worker_models``: models a warm
    framework process serves before a fresh one replaces it. Bad entries raise
    :class:`InputError` before any work; Ctrl-C writes what finished, then raises again.
    """
    started = time.perf_counter()
    before = {m.name: m for m in ZooResult.load(baseline).models} if baseline else {}
    validate(entries)
    timings = {"validate": round(time.perf_counter() - started, 2)}
    runs: dict[str, ModelRun] = {}
    pages: dict[str, str] = {}
    facts, workers = {}, []

    def finish() -> ZooResult:
        for e in entries:
            runs.setdefault(e.name, ModelRun(e.name, "cancelled", e.where, list(e.tags), "cancelled before it finished"))
        models = [runs[e.name] for e in entries]
        _write_pages(models, pages, out)
        for m in models:
            m.regressions = regressions(m, before.get(m.name), factor)
        result = ZooResult(passed=all(m.status == "passed" for m in models), models=models,
                           seconds=round(time.perf_counter() - started, 2), cluster=facts, workers=workers,
                           driver={"peak_rss_mb": peak_rss_mb(), "seconds": timings},
                           baseline=str(baseline) if baseline else None,
                           factor=factor, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_reports(result, out)
        return result

    try:
        with cluster.connected(address) as facts:
            timings["ray"] = round(time.perf_counter() - started - timings["validate"], 2)
            placeable(entries, facts)
            workers = _schedule(entries, runs, pages, jobs or max(1, int(facts["resources"].get("CPU", 1))),
                                worker_models)
            timings["models"] = round(time.perf_counter() - started - timings["validate"] - timings["ray"], 2)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the reports hold what finished
        finish()
        raise
    return finish()


def validate(entries: list[Entry]) -> None:
    """Every entry read as its check would read it (the files, the inputs at every size it runs, the
    PyTorch class it may build, the devices it requires), before any work; the first bad one raises,
    naming its line."""
    from onnxparity.parity import require, runs_of, target
    from onnxparity.parity.matrix import authorize, describe

    if not entries:
        raise InputError("the zoo has no models")
    for e in entries:
        o = e.options
        try:
            require.parse(o.get("require_devices"))
            model = target(e.original, e.onnx, reference=e.reference, **{k: o[k] for k in TARGET_OPTIONS if k in o})
            authorize(model, describe(model))
            runs_of([model], **{k: o[k] for k in INPUT_OPTIONS if k in o})
        except InputError as exc:
            raise InputError(f"{_named(e)}: {exc}") from None


def _named(e: Entry) -> str:
    """"zoo.toml:12: model 'x'", for messages."""
    return f"{e.where}: model {e.name!r}" if e.where else f"model {e.name!r}"


def placeable(entries: list[Entry], facts: dict) -> None:
    """Every entry's task fits some node of the cluster (a CPU and its ``resources``): Ray would
    otherwise wait for one forever."""
    for e in entries:
        needs = {"CPU": 1.0, **e.resources}
        if not any(all(n["resources"].get(k, 0) >= v for k, v in needs.items()) for n in facts["nodes"]):
            raise InputError(f"{_named(e)}: no node of the Ray cluster has "
                             + ", ".join(f"{v:g} {k}" for k, v in needs.items()))


def check_model(entry: Entry, registry, no_gpu: str | None, imports: tuple[str, ...] = ()) -> dict:
    """One model's matrix, as a Ray task: ``check`` with each backend on a warm worker. A failure
    is a result; only a lost task is run again (by Ray). ``imports``: the zoo's ``--import`` modules,
    imported here before any model loads, as in the driver."""
    import ray

    from onnxparity.parity import check

    node = ray.get_runtime_context().get_node_id()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="onnxparity-zoo-") as tmp:
        page = Path(tmp) / "page.html"
        try:
            _process.request_imports(imports, only=True)
            result = check(entry.original, entry.onnx, reference=entry.reference, html_path=page,
                           workers=RayWorkers(registry, entry.name, no_gpu, entry.options.get("max_memory")),
                           **entry.options)
        except OnnxParityError as exc:
            return {"status": "error", "reason": str(exc), "node": node,
                    "seconds": round(time.perf_counter() - started, 2)}
        failures = result.failed()
        return {"status": "passed" if result.passed else "failed", "result": result, "page": page.read_text(),
                "reason": None if result.passed else (failures[0] if failures else "nothing could be compared"),
                "node": node, "seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_rss_mb()}


def _schedule(entries: list[Entry], runs: dict[str, ModelRun], pages: dict[str, str], limit: int,
              worker_models: int) -> list[dict]:
    """Run the model tasks, ``limit`` at a time, into ``runs`` (and their parity pages into ``pages``);
    returns the warm workers' figures."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from onnxparity.backends import ORIGINALS, onnxruntime_backends
    from onnxparity.gpu import NVIDIA_PROVIDERS

    gpus = tuple(cluster.gpu_nodes())
    # every CUDA framework of a model fits one GPU: each asks for its share
    cuda_kinds = {b.runner for b in (*ORIGINALS, *onnxruntime_backends(list(NVIDIA_PROVIDERS))) if b.device == "cuda"}
    here = ray.get_runtime_context().get_node_id()
    imports = _process.requested_imports()  # --import: in the model tasks and the warm workers too
    registry = ray.remote(Registry).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(
        uuid.uuid4().hex[:8], worker_models, 1 / len(cuda_kinds), gpus, imports)
    no_gpu = None if gpus else "no node of the Ray cluster has a GPU"
    task = ray.remote(check_model)
    queued, flying = list(entries), {}
    try:
        with progress.steps("zoo", total=len(entries)) as bar:
            while queued or flying:
                # Ray turns a signal's exception inside its calls into a plain KeyboardInterrupt (SIGTERM
                # would read as Ctrl-C): signals wait for the calls, and come in the sleep between them
                with _signals.deferred():
                    while queued and len(flying) < limit:
                        e = queued.pop(0)
                        flying[task.options(num_cpus=1, resources=e.resources or None, max_retries=RETRIES,
                                            retry_exceptions=False).remote(e, registry, no_gpu, imports)] = e
                        bar.note(f"{len(runs)} done, {len(flying)} running, {len(queued)} queued")
                    ready, _ = ray.wait(list(flying), num_returns=len(flying), timeout=0)
                    for ref in ready:
                        e = flying.pop(ref)
                        runs[e.name] = _collect(e, ref, pages)
                        bar.advance(1, f"{len(runs)} done, {len(flying)} running, {len(queued)} queued")
                if not ready:
                    time.sleep(POLL_S)
        with _signals.deferred():
            return ray.get(registry.stats.remote())
    finally:
        for ref in flying:  # Ctrl-C: stop what still runs (its worker processes end with it)
            ray.cancel(ref, force=True)
        ray.kill(registry)  # and with it every warm worker


def _collect(e: Entry, ref, pages: dict[str, str]) -> ModelRun:
    import ray

    run = ModelRun(e.name, "error", e.where, list(e.tags))
    try:
        done = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # a bug, not a verdict: said as one line, like every error
        run.reason = first_line(exc.cause if isinstance(exc.cause, BaseException) else exc)
        return run
    except ray.exceptions.RayError as exc:  # lost more often than Ray retries
        run.reason = f"the model's task was lost: {first_line(exc)}"
        return run
    run.status, run.reason, run.node, run.seconds = done["status"], done.get("reason"), done["node"], done["seconds"]
    run.result, run.peak_rss_mb = done.get("result"), done.get("peak_rss_mb")
    if done.get("page"):
        pages[e.name] = done["page"]
    return run


def _write_pages(models: list[ModelRun], pages: dict[str, str], out: str | Path) -> None:
    """Each model's parity page into ``out/models/``; its path (relative to ``out``) into ``report``."""
    from onnxparity.views import write_html

    taken: set[str] = set()
    for m in models:
        if m.name not in pages:
            continue
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", m.name).strip("._") or "model"
        name, k = stem, 2
        while name in taken:
            name, k = f"{stem}-{k}", k + 1
        taken.add(name)
        write_html(Path(out) / "models" / f"{name}.html", pages[m.name])
        m.report = f"models/{name}.html"
