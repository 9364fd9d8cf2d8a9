"""``onnxparity bench``: samples/s and latency of every backend, interleaved so the ratios hold.

For each model (:mod:`onnxparity.bench.models`) the bench times the native baselines a user would
write and the runtimes on its ONNX file, per device and batch size, on the same inputs: every
row of the registry's backends (:func:`onnxparity.backends.bench_backends`; ``keras.predict`` is
the Keras runner with ``mode="predict"``). Each framework lives in its own long-lived worker
process (:mod:`onnxparity.bench.worker`); the parent drives them in
rounds (A B C, B C A, ...), so a noisy neighbour slows every backend of a round alike and the
per-round ratios ORT/native stay put even when the absolute numbers move. Session creation,
first-call and compile times are measured apart from the timed calls.

``bench(models, BenchConfig(...))`` returns a :class:`BenchReport` (plain data, ``to_dict()`` for
JSON; its numbers from :mod:`onnxparity.bench.results`); :mod:`onnxparity.bench.report` renders
it as text or Markdown.
"""

from __future__ import annotations

import contextlib
import logging
import dataclasses
import datetime
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from onnxparity import __version__, _process
from onnxparity.backends import Backend, bench_backends
from onnxparity.bench.models import BenchModel, find_models
from onnxparity.bench.results import ORT_BACKEND, Cell, ratios, rows
from onnxparity.errors import InputError, WorkerError
from onnxparity.machine import no_gpu_reason
from onnxparity.progress import steps as progress_steps

DEVICES = ("cpu", "cuda")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 64, 1024)
    devices: tuple[str, ...] = ("cpu",)
    backends: tuple[str, ...] | None = None  # bench backend names (or prefixes: "keras", "torch"); None: all
    rounds: int = 10  # interleaved rounds; each backend's throughput is the median over them
    round_s: float = 0.15  # target time of one backend's turn in a round
    warmup_s: float = 0.5  # warm-up per backend and batch size, after the first call
    max_calls: int = 100_000
    timeout_s: float = 900.0  # any single worker call (a load, a compile, a turn)
    input_shapes: dict | None = None  # --input-shape: sizes of dynamic axes other than the batch
    int_range: tuple[int, int] | None = None  # --int-range: integer inputs drawn from [low, high)
    input_roles: dict | None = None  # --input-role: what each input means (masks, type ids...)
    trust: dict | None = None  # the user's word on rebuilding a recorded PyTorch class (onnxparity.trust)

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(int(b) < 1 for b in self.batch_sizes):
            raise InputError("batch sizes must be positive integers")
        bad = [d for d in self.devices if d not in DEVICES]
        if bad or not self.devices:
            raise InputError(f"devices must be among {', '.join(DEVICES)} (got {', '.join(bad) or 'none'})")
        if self.rounds < 1 or self.round_s <= 0 or self.warmup_s < 0:
            raise InputError("rounds must be at least 1 and the round time positive")
        if self.timeout_s <= 0:
            raise InputError("the timeout must be positive")
        known = bench_names()
        for b in self.backends or ():
            if not any(name == b or name.startswith(b + ".") for name in known):
                raise InputError(f"unknown bench backend {b!r} (known: {', '.join(known)})")

    def wants(self, backend: str) -> bool:
        """Named exactly, or by a group prefix that is no backend's own name ("keras", "torch")."""
        known = bench_names()
        return self.backends is None or any(
            backend == b or (b not in known and backend.startswith(b + ".")) for b in self.backends)


def bench_names() -> list[str]:
    """The bench's backends by name, in the order its tables show them."""
    return list(dict.fromkeys(row for row, _ in _in_order(bench_backends())))


def _in_order(rows: list[tuple[str, Backend]]) -> list[tuple[str, Backend]]:
    """The natives first, then the toolkit's ONNX Runtime session (the ratios' baseline), then the rest."""
    return sorted(rows, key=lambda rb: (rb[1].framework == "onnx", rb[0] != ORT_BACKEND))


@dataclass
class BenchReport:
    created: str
    config: dict
    environment: dict
    models: list[dict]
    results: list[dict]  # one per (model, backend, device, batch size) that ran
    ratios: list[dict]  # ORT / native, per round, median
    skipped: list[dict]  # backends that could not run, with the reason
    backends: dict[str, dict] = field(default_factory=dict)  # per (model, backend, device): load, details

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d = {"tool": f"onnxparity bench {__version__}", **d}
        return d


# -- workers -----------------------------------------------------------------------------------
class _Workers:
    """One long-lived :class:`~onnxparity._process.Service` per framework, started on demand."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.services: dict[str, _process.Service] = {}
        self.failed: dict[str, str] = {}

    def get(self, backend: Backend) -> str:
        name = backend.process
        if name in self.failed:
            raise WorkerError(self.failed[name])
        if name not in self.services:
            self.services[name] = _process.Service("onnxparity.bench.worker:BenchWorker", name=f"bench {name}",
                                                   env=backend.bench_env, timeout=self.timeout_s)
        return name

    def call(self, name: str, method: str, *args, **kwargs):
        try:
            return self.services[name].call(method, *args, **kwargs)
        except WorkerError as exc:
            if not self.services[name]._proc.is_alive():  # crashed or timed out: the group is gone
                self.failed[name] = str(exc)
                self.services.pop(name).close()
            raise

    def close(self) -> None:
        for service in self.services.values():
            service.close()
        self.services.clear()


def _plan(model: BenchModel, config: BenchConfig) -> list[tuple[str, Backend, str]]:
    """(bench row, its backend, the file it runs) for every row that applies to this model."""
    plan = []
    for device in config.devices:
        for row, backend in _in_order([rb for rb in bench_backends() if rb[1].device == device]):
            path = model.onnx if backend.framework == "onnx" else \
                model.native if backend.framework == model.framework else None
            if path and config.wants(row):
                plan.append((row, backend, path))
    return plan


# -- the bench ---------------------------------------------------------------------------------
def bench(paths: list[str], config: BenchConfig | None = None, progress=None) -> BenchReport:
    """Bench every backend of every model in ``paths``; see the module docstring."""
    config = config or BenchConfig()
    say = progress or (lambda message: None)
    from onnxparity.environment import timing_fingerprint

    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = timing_fingerprint()
    results, ratio_rows, skipped, backends, models = [], [], [], {}, []
    with _scratch() as workdir:
        found = find_models(paths, workdir, config.timeout_s, config.trust)
        for model in found:  # a dynamic axis with no size given: said before any worker starts
            _check_inputs(model, config)
            model.flops = _flops(model, config)
            model.mflop_per_image = model.flops["mflop"] if model.flops else None
        workers = _Workers(config.timeout_s)
        try:
            for model in found:
                models.append(dataclasses.asdict(model))
                cells = _open_cells(model, config, workers, skipped, say)
                for cell in cells:
                    backends[f"{model.name}/{cell.backend}/{cell.device}"] = {
                        "load_s": round(cell.opened["load_s"], 4), "import_s": round(cell.opened["import_s"], 3),
                        "details": cell.opened.get("details", {}),
                        "worker": cell.worker, "path": cell.path}
                for batch in config.batch_sizes:
                    with progress_steps(f"{model.name} batch {batch}", total=config.rounds) as bar:
                        _measure(cells, int(batch), config, workers, say, bar.advance)
                for cell in cells:
                    if cell.error:
                        skipped.append({"model": model.name, "backend": cell.backend, "device": cell.device,
                                        "reason": cell.error})
                    with contextlib.suppress(WorkerError, KeyError):
                        workers.call(cell.worker, "close", cell.key)
                results.extend(row for cell in cells for row in rows(cell, config))
                ratio_rows.extend(ratios(cells, config))
        finally:
            workers.close()
    env["load_average_after"] = list(os.getloadavg())
    return BenchReport(created, dataclasses.asdict(config), env, models, results, ratio_rows, skipped, backends)


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="onnxparity-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _open_cells(model: BenchModel, config: BenchConfig, workers: _Workers, skipped: list, say) -> list[Cell]:
    cells = []
    for backend, runs_on, path in _plan(model, config):
        device = runs_on.device
        key = f"{model.name}/{backend}/{device}"
        if device == "cuda" and (reason := no_gpu_reason()):
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": reason})
            continue
        try:
            worker = workers.get(runs_on)
            say(f"{model.name}: loading {backend} on {device}")
            opened = workers.call(worker, "open", key, backend, path, device, signature=_signature(model),
                                  input_shapes=config.input_shapes, int_range=config.int_range, trust=config.trust,
                                  input_roles=config.input_roles, spec=model.spec)
        except (WorkerError, InputError) as exc:
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": str(exc)})
            continue
        if opened["status"] != "ok":
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": opened["reason"]})
            continue
        cells.append(Cell(model, backend, device, worker, key, opened, path=path))
    return cells


def _check_inputs(model: BenchModel, config: BenchConfig) -> None:
    from onnxparity.inputs import sample_shapes
    from onnxparity.onnx_model import OnnxModel
    from onnxparity.spec import ModelSpec

    if model.onnx and not (model.spec and ModelSpec.from_dict(model.spec).takes_digits):
        sample_shapes(OnnxModel(model.onnx).signature, config.input_shapes)


def _flops(model: BenchModel, config: BenchConfig) -> dict | None:
    """onnx-tool's count of the work per image (:mod:`onnxparity.bench.flops`); None where it cannot
    count the graph (a FLOP count is a nicety, not a reason to stop the bench)."""
    if not model.onnx:
        return None
    from onnxparity.bench.flops import flops_per_sample

    try:
        return flops_per_sample(model.onnx, config.input_shapes, config.input_roles)
    except Exception as exc:  # noqa: BLE001 - onnx-tool raises many types on graphs it does not know
        log.warning("%s: no FLOP count (%s)", model.name, exc)
        return None


def _signature(model: BenchModel) -> dict | None:
    """The ONNX file's signature, which feeds the natives too (they take the same inputs)."""
    if not model.onnx:
        return None
    from onnxparity.onnx_model import OnnxModel

    return OnnxModel(model.onnx).signature.to_dict()


def _measure(cells: list[Cell], batch: int, config: BenchConfig, workers: _Workers, say,
             tick=lambda n=1, note=None: None) -> None:
    live = []
    for cell in cells:
        if cell.error:
            continue
        try:
            say(f"{cell.model.name}: batch {batch}: first call and warm-up of {cell.backend} on {cell.device}")
            prep = workers.call(cell.worker, "prepare", cell.key, batch, config.warmup_s)
        except (WorkerError, InputError) as exc:
            cell.error = f"batch {batch}: {exc}"
            continue
        cell.prepared[batch] = prep
        cell.calls[batch] = int(min(config.max_calls, max(1, round(config.round_s / max(prep["warm_call_s"], 1e-9)))))
        cell.rounds[batch] = []
        live.append(cell)
    for r in range(config.rounds):
        say(f"{cells[0].model.name if cells else ''}: batch {batch}: round {r + 1}/{config.rounds}")
        k = r % len(live) if live else 0
        for cell in live[k:] + live[:k]:  # rotate the order: A B C, B C A, C A B, ...
            if cell.error:
                continue
            try:
                cell.rounds[batch].append(workers.call(cell.worker, "time", cell.key, batch, cell.calls[batch]))
            except (WorkerError, InputError) as exc:
                cell.error = f"batch {batch}, round {r + 1}: {exc}"
        tick(1, f"round {r + 1}/{config.rounds}")
    for cell in live:
        with contextlib.suppress(WorkerError, KeyError):
            workers.call(cell.worker, "release", cell.key, batch)


