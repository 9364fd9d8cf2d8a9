"""``onnxparity bench``: samples/s and latency of every backend, interleaved so the ratios hold.

For each model (a checkpoint folder, converted to ONNX on the fly when no ``model.onnx`` sits
beside it, or a bare ``.onnx`` file) the bench times the native baselines a user would write
(:mod:`onnxparity.bench.variants`) and ONNX Runtime, per device and batch size, on the same
inputs. Each backend group lives in its own long-lived worker process; the parent drives them in
rounds (A B C, B C A, ...), so a noisy neighbour slows every backend of a round alike and the
per-round ratios ORT/native stay put even when the absolute numbers move. Session creation,
first-call and compile times are measured apart from the timed calls.

``bench(models, BenchConfig(...))`` returns a :class:`BenchReport` (plain data, ``to_dict()`` for
JSON); :mod:`onnxparity.bench.report` renders it as text or Markdown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from onnxparity import __version__, _process
from onnxparity.errors import InputError, WorkerError
from onnxparity.models import resolve
from onnxparity.progress import steps as progress_steps
from onnxparity.spec import SPEC_FILE
from onnxparity.trust import Trust

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")
ORT_BACKEND = "onnxruntime"
# Worker groups: which process a (backend group, device) runs in, and that process's environment.
_GROUP_ENV = {
    ("keras", "cpu"): ("keras-tensorflow", {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}),
    ("keras", "cuda"): ("keras-torch", {"KERAS_BACKEND": "torch"}),
    ("torch", "cpu"): ("torch", {}),
    ("torch", "cuda"): ("torch", {}),
    ("onnxruntime", "cpu"): ("onnxruntime", {}),
    ("onnxruntime", "cuda"): ("onnxruntime", {}),
}


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
        from onnxparity.bench.variants import VARIANTS

        for b in self.backends or ():
            if not any(name == b or name.startswith(b + ".") for name in VARIANTS):
                raise InputError(f"unknown bench backend {b!r} (known: {', '.join(VARIANTS)})")

    def wants(self, backend: str) -> bool:
        """Named exactly, or by a group prefix that is no backend's own name ("keras", "torch")."""
        from onnxparity.bench.variants import VARIANTS

        return self.backends is None or any(
            backend == b or (b not in VARIANTS and backend.startswith(b + ".")) for b in self.backends)


@dataclass
class BenchModel:
    """One model under bench: its native form (if any) and its ONNX file."""

    name: str
    framework: str  # "keras", "torch" or "onnx" (an ONNX file without its original)
    native: str | None
    onnx: str | None
    spec: dict | None  # None: an ONNX file from elsewhere, fed from its signature alone
    onnx_source: str = ""  # "beside the checkpoint (path)", "converted for this bench ... (N s)", "given"
    mflop_per_image: float | None = None


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


# -- models ------------------------------------------------------------------------------------
def find_models(paths: list[str], workdir: Path, timeout_s: float = 900.0, trust: dict | None = None) -> list[BenchModel]:
    """Resolve each path (checkpoint folder, folder of them, ``.onnx`` file) into bench models.

    Checkpoints without an ONNX file beside them are converted into ``workdir``, all at once,
    each in a worker process of its own.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir() and not (p / SPEC_FILE).is_file() and not (p / "saved_model.pb").is_file():
            inner = sorted(q for q in p.iterdir() if q.is_dir() and (q / SPEC_FILE).is_file())
            inner += sorted(q for q in p.glob("*.onnx") if not _pairs_with(q, inner))
            if not inner:
                raise InputError(f"{p}: neither a checkpoint folder nor a folder holding any")
            found.extend(inner)
        else:
            found.append(p)
    models = [_model(p) for p in found]
    user = Trust.from_dict(trust)
    for m in models:  # a recorded class the user did not allow: refused before any worker starts
        if m.framework == "torch" and m.spec and m.native:
            user.resolve(m.spec.get("architecture"), m.spec.get("torch_kwargs"), f"{m.native}'s spec.json")
    pending = []
    for i, m in enumerate(models):
        if m.onnx is None:
            target = workdir / f"{i}-{m.name}.onnx"
            log.info("converting %s to ONNX for the bench", m.native)
            pending.append((m, time.perf_counter(), _process.Worker(
                "onnxparity.convert:convert", m.native, str(target), torch_class=user.torch_class,
                torch_kwargs=user.torch_kwargs, trust_recorded=user.recorded, name=f"convert {m.native}",
                timeout=timeout_s)))
    for m, started, worker in pending:
        result = worker.result()
        m.onnx = str(result.path)
        m.onnx_source = f"converted for this bench by onnxparity.convert ({time.perf_counter() - started:.1f} s)"
        m.mflop_per_image = _mflop(m.onnx)
    names = [m.name for m in models]
    for i, m in enumerate(models):  # make names unique (two runs of the same architecture)
        if names.count(m.name) > 1:
            m.name = f"{m.name}#{names[:i].count(m.name) + 1}"
    return models


def _pairs_with(onnx_path: Path, folders: list[Path]) -> bool:
    """Whether one of ``folders`` takes this file as its ONNX twin (then it is not benched on its own)."""
    return any(_onnx_beside(f) == onnx_path for f in folders)


def _onnx_beside(folder: Path) -> Path | None:
    for candidate in (folder / "model.onnx", folder.parent / f"{folder.name}.onnx"):
        if candidate.is_file():
            return candidate
    return None


def _model(path: Path) -> BenchModel:
    ref = resolve(path)
    if ref.framework == "onnx":
        from onnxparity.onnx_model import OnnxModel

        model = OnnxModel(path)
        spec = model.spec.to_dict() if model.spec else None
        name = model.name + (f".{model.precision}" if model.precision != "float32" else "")  # a variant apart
        return BenchModel(name, "onnx", None, str(path), spec, "given", _mflop(path))
    if ref.spec is None:
        raise InputError(f"{path}: the bench needs a checkpoint folder with spec.json (onnxparity train) or an .onnx file")
    folder = path if path.is_dir() else path.parent
    onnx_path = _onnx_beside(folder)
    if onnx_path is None:
        return BenchModel(ref.spec.name, ref.framework, str(folder), None, ref.spec.to_dict())
    return BenchModel(ref.spec.name, ref.framework, str(folder), str(onnx_path), ref.spec.to_dict(),
                      f"beside the checkpoint ({onnx_path})", _mflop(onnx_path))


def _mflop(onnx_path) -> float | None:
    try:
        from onnxparity.bench.flops import mflop_per_sample

        return mflop_per_sample(onnx_path)
    except Exception:  # noqa: BLE001 - a FLOP count is a nicety; a graph it cannot count has none
        return None


# -- workers -----------------------------------------------------------------------------------
class _Workers:
    """One long-lived :class:`~onnxparity._process.Service` per worker group, started on demand."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.services: dict[str, _process.Service] = {}
        self.failed: dict[str, str] = {}

    def get(self, group: str, device: str) -> tuple[str, _process.Service]:
        name, env = _GROUP_ENV[(group, device)]
        if name in self.failed:
            raise WorkerError(self.failed[name])
        if name not in self.services:
            self.services[name] = _process.Service("onnxparity.bench.worker:BenchWorker", name=f"bench {name}",
                                                   env=env, timeout=self.timeout_s)
        return name, self.services[name]

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


@dataclass
class _Cell:
    """One (model, backend, device): where it runs and what it measured per batch size."""

    model: BenchModel
    backend: str
    device: str
    worker: str
    key: str
    opened: dict
    prepared: dict = field(default_factory=dict)  # batch -> prepare() answer
    calls: dict = field(default_factory=dict)  # batch -> calls per round
    rounds: dict = field(default_factory=dict)  # batch -> [per-call seconds of each round]
    error: str | None = None


def _plan(model: BenchModel, config: BenchConfig) -> list[tuple[str, str, str]]:
    """(backend, device, path) for every backend that applies to this model."""
    from onnxparity.bench.variants import VARIANTS

    plan = []
    for device in config.devices:
        for name, (_cls, group, frameworks) in VARIANTS.items():
            if not config.wants(name):
                continue
            if "onnx" in frameworks:
                if model.onnx:
                    plan.append((name, device, model.onnx))
            elif model.framework in frameworks and model.native:
                plan.append((name, device, model.native))
    return plan


# -- the bench ---------------------------------------------------------------------------------
def bench(paths: list[str], config: BenchConfig | None = None, progress=None) -> BenchReport:
    """Bench every backend of every model in ``paths``; see the module docstring."""
    config = config or BenchConfig()
    say = progress or (lambda message: None)
    from onnxparity.bench.environment import environment

    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = environment()
    results, ratios, skipped, backends, models = [], [], [], {}, []
    with _scratch() as workdir:
        found = find_models(paths, workdir, config.timeout_s, config.trust)
        for model in found:  # a dynamic axis with no size given: said before any worker starts
            _check_inputs(model, config)
        workers = _Workers(config.timeout_s)
        try:
            for model in found:
                models.append(dataclasses.asdict(model))
                cells = _open_cells(model, config, workers, skipped, say)
                for cell in cells:
                    backends[f"{model.name}/{cell.backend}/{cell.device}"] = {
                        "load_s": round(cell.opened["load_s"], 4), "import_s": round(cell.opened["import_s"], 3),
                        "details": cell.opened.get("details", {}),
                        "worker": cell.worker, "path": model.onnx if cell.backend.startswith("onnxruntime") else model.native}
                for batch in config.batch_sizes:
                    with progress_steps(f"{model.name} batch {batch}", total=config.rounds) as bar:
                        _measure(cells, int(batch), config, workers, say, bar.advance)
                for cell in cells:
                    if cell.error:
                        skipped.append({"model": model.name, "backend": cell.backend, "device": cell.device,
                                        "reason": cell.error})
                    with contextlib.suppress(WorkerError, KeyError):
                        workers.call(cell.worker, "close", cell.key)
                rows = [row for cell in cells for row in _rows(cell, config)]
                results.extend(rows)
                ratios.extend(_ratios(cells, config))
        finally:
            workers.close()
    env["load_average_after"] = list(os.getloadavg())
    return BenchReport(created, dataclasses.asdict(config), env, models, results, ratios, skipped, backends)


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="onnxparity-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _open_cells(model: BenchModel, config: BenchConfig, workers: _Workers, skipped: list, say) -> list[_Cell]:
    from onnxparity.bench.variants import VARIANTS

    cells = []
    for backend, device, path in _plan(model, config):
        group = VARIANTS[backend][1]
        key = f"{model.name}/{backend}/{device}"
        if device == "cuda" and (reason := _no_gpu_reason()):
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": reason})
            continue
        try:
            worker, _service = workers.get(group, device)
            say(f"{model.name}: loading {backend} on {device}")
            opened = workers.call(worker, "open", key, backend, path, device, signature=_signature(model),
                                  input_shapes=config.input_shapes, int_range=config.int_range, trust=config.trust)
        except (WorkerError, InputError) as exc:
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": str(exc)})
            continue
        if opened["status"] != "ok":
            skipped.append({"model": model.name, "backend": backend, "device": device, "reason": opened["reason"]})
            continue
        cells.append(_Cell(model, backend, device, worker, key, opened))
    return cells


def _check_inputs(model: BenchModel, config: BenchConfig) -> None:
    from onnxparity.inputs import sample_shapes
    from onnxparity.onnx_model import OnnxModel

    if model.onnx and not (model.spec and tuple(model.spec.get("input_shape") or ()) in ((28, 28, 1), (1, 28, 28))):
        sample_shapes(OnnxModel(model.onnx).signature, config.input_shapes)


def _signature(model: BenchModel) -> dict | None:
    """The ONNX file's signature, which feeds the natives too (they take the same inputs)."""
    if not model.onnx:
        return None
    from onnxparity.onnx_model import OnnxModel

    return OnnxModel(model.onnx).signature.to_dict()


def _no_gpu_reason() -> str | None:
    """Without an NVIDIA driver no CUDA backend can run: say so without starting their workers."""
    from onnxparity.gpu import detect

    gpus, why = detect()
    return None if gpus else why


def _measure(cells: list[_Cell], batch: int, config: BenchConfig, workers: _Workers, say,
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


def _per_round_ips(cell: _Cell, batch: int) -> list[float]:
    return [batch * len(lat) / sum(lat) for lat in cell.rounds.get(batch, []) if lat and sum(lat) > 0]


def _rows(cell: _Cell, config: BenchConfig) -> list[dict]:
    rows = []
    for batch in config.batch_sizes:
        rounds = cell.rounds.get(batch) or []
        if not rounds or (cell.error and len(rounds) < config.rounds):
            continue
        lat = np.concatenate([np.asarray(r) for r in rounds])
        ips = _per_round_ips(cell, batch)
        prep = cell.prepared[batch]
        row = {
            "model": cell.model.name, "framework": cell.model.framework, "backend": cell.backend,
            "device": cell.device, "batch_size": batch,
            "images_per_second": round(float(np.median(ips)), 1),
            "images_per_second_min": round(float(min(ips)), 1),
            "images_per_second_max": round(float(max(ips)), 1),
            "images_per_second_rounds": [round(v, 1) for v in ips],
            "latency_ms_median": round(float(np.median(lat)) * 1e3, 4),
            "latency_ms_p90": round(float(np.percentile(lat, 90)) * 1e3, 4),
            "rounds": len(rounds), "calls_per_round": cell.calls[batch],
            "first_call_ms": round(prep["first_call_s"] * 1e3, 3),
            "load_s": round(cell.opened["load_s"], 4),
        }
        if cell.opened.get("compiles"):
            row["compile_s"] = round(max(0.0, prep["first_call_s"] - prep["warm_call_s"]), 3)
        if cell.model.mflop_per_image:
            row["gflops"] = round(row["images_per_second"] * cell.model.mflop_per_image / 1e3, 2)
        rows.append(row)
    return rows


def _ratios(cells: list[_Cell], config: BenchConfig) -> list[dict]:
    """ORT (the toolkit's path) / each other backend, per interleaved round, median over rounds."""
    out = []
    for ort in (c for c in cells if c.backend == ORT_BACKEND):
        for other in cells:
            if other is ort or other.device != ort.device:
                continue
            for batch in config.batch_sizes:
                a, b = _per_round_ips(ort, batch), _per_round_ips(other, batch)
                n = min(len(a), len(b))
                if n < config.rounds:  # one side failed before this batch size's rounds were done
                    continue
                per_round = [a[i] / b[i] for i in range(n)]
                out.append({"model": ort.model.name, "device": ort.device, "batch_size": batch,
                            "backend": ORT_BACKEND, "versus": other.backend,
                            "ratio": round(float(np.median(per_round)), 3),
                            "ratio_min": round(min(per_round), 3), "ratio_max": round(max(per_round), 3)})
    return out
