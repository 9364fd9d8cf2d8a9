"""The parity matrix: every backend of every model, each in its own worker, compared with the reference.

:func:`plan` lists the backends of one model (the original on CPU as the reference; the original on
GPU, under another Keras engine, and the ONNX file in ONNX Runtime per execution provider and at
batch size 1 as candidates), marking those this machine cannot run as unavailable with the reason.
:func:`run` starts the workers (all at once by default: their start-up is mostly imports, which
overlap well), collects what they return, and compares; a crash or a timeout in one worker is
recorded against that backend and the others go on.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from onnxparity import _process
from onnxparity.data.fit import check_fits
from onnxparity.errors import InputError, WorkerError
from onnxparity.models import resolve
from onnxparity.parity import environment
from onnxparity.parity.inputs import ParityInputs, prepare
from onnxparity.parity.provenance import warn_if_other_weights
from onnxparity.parity.metrics import Tolerance, accuracy, compare, tolerance_for
from onnxparity.parity.result import BackendRun, ParityResult
from onnxparity.runners import BackendUnavailable
from onnxparity.runners.onnxrt import physical_cores, resolve_providers
from onnxparity.spec import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256  # large enough for the dynamic axis; small enough to stay in cache (Keras on torch: 2x faster than 1000)
BATCH1_LIMIT = 1000  # inputs run one at a time (the dynamic batch axis at 1); None: all of them
DEFAULT_PROVIDERS = ("cpu", "cuda", "tensorrt")  # always listed; other providers ORT has are added
WORKER_TIMEOUT = 600.0
# CPU workers: no GPU in sight, and idle OpenMP threads sleep instead of spinning (workers share cores).
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_WAIT_POLICY": "PASSIVE"}
GPU_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def cpu_threads(runner: str) -> int:
    """Intra-op threads for a CPU worker. All workers run at once, so each gets a share of the cores;
    the Keras engines, by far the most work, may use them all once the quicker workers are done."""
    cores = physical_cores()
    return cores if runner in ("keras", "keras-torch") else max(1, cores // 4)


def thread_env(threads: int) -> dict:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1"}


@dataclass(frozen=True)
class Target:
    """One model to check: the original (checkpoint folder, .keras, model.pth) and its ONNX file."""

    original: str
    onnx: str


@dataclass
class Job:
    model: str
    label: str
    role: str
    runner: str
    device: str
    path: str
    spec: ModelSpec  # how its inputs are prepared
    batch_size: int = DEFAULT_BATCH
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    indices: list[int] | None = None  # None: every input
    unavailable: str | None = None
    pixels_only: bool = False  # the model's ONNX file takes uint8 pixels: all its backends get whole pixels

    def run_record(self, **kw) -> BackendRun:
        return BackendRun(model=self.model, label=self.label, role=self.role, runner=self.runner, device=self.device,
                          path=self.path, batch_size=self.batch_size, **kw)


def onnx_spec(path: str | os.PathLike) -> ModelSpec:
    """The spec in an ONNX file's metadata; a one-line error for a missing, corrupt or bare file."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such ONNX file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise InputError(f"{p}: not a readable ONNX file ({type(exc).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{p}: not a readable ONNX file (no graph)")
    try:
        return ModelSpec.from_metadata({m.key: m.value for m in model.metadata_props})
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None


def _providers(requested: str | list[str] | None) -> list[str]:
    from onnxparity.runners.onnxrt import provider_name

    if requested is None or requested == "all" or requested == ["all"]:
        names = [provider_name(p) for p in DEFAULT_PROVIDERS]
        names += [p for p in environment.ort_providers() if p not in names]
        return names
    if isinstance(requested, str):
        requested = [p for p in requested.split(",") if p.strip()]
    return [provider_name(p.strip()) for p in requested]


def _short(provider: str) -> str:
    return provider.replace("ExecutionProvider", "").lower()


def plan(target: Target, inputs: ParityInputs, *, providers=None, gpu: bool = True, batch_size: int = DEFAULT_BATCH,
         batch1_limit: int | None = BATCH1_LIMIT, name: str | None = None) -> list[Job]:
    """Every backend for one model, reference first; those that cannot run here carry ``unavailable``."""
    ref = resolve(target.original)
    if ref.framework == "onnx":
        raise InputError(f"{target.original}: the original must be a Keras or PyTorch model, not an ONNX file")
    spec_onnx = onnx_spec(target.onnx)
    spec = ref.spec or spec_onnx
    if spec_onnx.framework != ref.framework:
        raise InputError(f"{target.onnx} was converted from a {spec_onnx.framework} model, "
                         f"but {target.original} is a {ref.framework} model")
    model = name or spec.name
    original, onnx_path = str(ref.path), str(target.onnx)
    gpus, no_gpu = environment.nvidia_gpus()
    no_gpu = no_gpu if gpu else "GPU runs turned off (--cpu-only)"
    jobs: list[Job] = []

    def add(label, role, runner, device, path, job_spec, env_extra=None, **kw):
        env = {**(CPU_ENV if device == "cpu" else GPU_ENV), **(env_extra or {})}
        if device == "cpu":
            env.update(thread_env(cpu_threads(runner)))
            if runner == "onnxruntime":
                kw["options"] = {**kw.get("options", {}), "intra_op_threads": cpu_threads(runner)}
        jobs.append(Job(model, label, role, runner, device, path, job_spec, batch_size, env=env,
                        pixels_only=spec_onnx.input_dtype == "uint8", **kw))

    if ref.framework == "keras":
        has_tf = importlib.util.find_spec("tensorflow") is not None
        has_torch = importlib.util.find_spec("torch") is not None
        # The reference: Keras on TensorFlow's CPU; where TensorFlow is absent, Keras on torch's CPU.
        if has_tf:
            add("keras-tf:cpu", "reference", "keras", "cpu", original, spec, options={"device": "cpu"},
                env_extra={"KERAS_BACKEND": "tensorflow"})
        add("keras-torch:cpu", "reference" if not has_tf else "candidate", "keras-torch", "cpu", original, spec,
            options={"device": "cpu"}, unavailable=None if has_torch else "torch is not installed")
        add("keras-tf:gpu", "candidate", "keras", "cuda", original, spec, options={"device": "cuda"},
            env_extra={"KERAS_BACKEND": "tensorflow"},
            unavailable=no_gpu or (None if has_tf else "TensorFlow is not installed"))
        add("keras-torch:cuda", "candidate", "keras-torch", "cuda", original, spec, options={"device": "cuda"},
            unavailable=no_gpu or (None if has_torch else "torch is not installed"))
    else:
        add("torch:cpu", "reference", "torch", "cpu", original, spec, options={"device": "cpu"})
        add("torch:cuda", "candidate", "torch", "cuda", original, spec, options={"device": "cuda"}, unavailable=no_gpu)

    for provider in _providers(providers):
        device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        why = no_gpu if device != "cpu" else None
        try:
            resolve_providers([provider])  # missing from this build: said before a worker starts
        except BackendUnavailable as exc:
            why = why if not gpu else str(exc)  # --cpu-only: turned off, whatever the build has
        add(f"onnxruntime:{_short(provider)}", "candidate", "onnxruntime", device, onnx_path, spec_onnx,
            options={"providers": [provider], "spinning": False}, unavailable=why)
        if provider == "CPUExecutionProvider":
            n = len(inputs)
            if batch1_limit is None or batch1_limit >= n:
                picks = None
            else:  # the first digits and every synthetic case
                synth = [i for i, k in enumerate(inputs.kinds) if k != "digit"]
                digits = [i for i, k in enumerate(inputs.kinds) if k == "digit"][: max(0, batch1_limit - len(synth))]
                picks = digits + synth
            add("onnxruntime:cpu:b1", "candidate", "onnxruntime", "cpu", onnx_path, spec_onnx,
                options={"providers": [provider], "spinning": False}, indices=picks)
            jobs[-1].batch_size = 1
    return jobs


def _job_dict(job: Job, inputs_path: Path, crash: dict | None) -> dict:
    d = {"model": job.path, "runner": job.runner, "options": job.options, "inputs": str(inputs_path),
         "batch_size": job.batch_size, "indices": job.indices, "spec": job.spec.to_dict()}
    if crash and crash.get("label") == job.label and crash.get("model", job.model) == job.model:
        d["crash"] = crash.get("signal", 11)
    return d


def run(targets: list[Target], inputs: ParityInputs, *, providers=None, gpu: bool = True,
        atol: float | None = None, rtol: float | None = None, min_agreement: float | None = None,
        batch_size: int = DEFAULT_BATCH, batch1_limit: int | None = BATCH1_LIMIT, jobs: int | None = None,
        timeout: float = WORKER_TIMEOUT, crash: dict | None = None) -> tuple[ParityResult, dict]:
    """Run the matrix for ``targets`` on ``inputs``; returns the result and the raw outputs.

    ``jobs`` caps the workers running at once (default: all). ``crash`` is fault injection for
    tests: ``{"label": "onnxruntime:cpu:b1", "signal": 11}`` makes that backend's worker die.
    """
    started = time.perf_counter()
    if len(inputs) == 0:
        raise InputError("no inputs to run")
    planned: list[Job] = []
    names: set[str] = set()
    models = []
    for target in targets:
        spec = resolve(target.original).spec or onnx_spec(target.onnx)
        name, k = spec.name, 2
        while name in names:
            name, k = f"{spec.name}-{k}", k + 1
        names.add(name)
        model_jobs = plan(target, inputs, providers=providers, gpu=gpu, batch_size=batch_size,
                          batch1_limit=batch1_limit, name=name)
        check_fits(inputs.images, inputs.labels, model_jobs[0].spec, inputs.source)
        planned += model_jobs
        models.append({"name": name, "framework": spec.framework, "original": str(target.original),
                       "onnx": str(target.onnx), "spec": spec.to_dict()})

    runs: dict[tuple[str, str], BackendRun] = {}
    outputs: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="onnxparity-inputs-") as tmp:
        todo = []
        for job in planned:
            if job.unavailable:
                runs[job.model, job.label] = job.run_record(status="unavailable", reason=job.unavailable)
            else:
                todo.append((job, prepare(inputs, job.spec, tmp, job.pixels_only)))
        # Slow starters first (TensorFlow, Keras on torch, torch), ONNX Runtime (quick to import) after.
        weight = {"keras-torch": 0, "keras": 1, "torch": 2, "onnxruntime": 3}
        todo.sort(key=lambda t: (weight.get(t[0].runner, 9), t[0].batch_size == 1))
        running: list[tuple[Job, _process.Worker, float]] = []
        try:
            _drive(todo, running, jobs or len(todo), crash, timeout, inputs, runs, outputs)
        finally:  # an input error in the reference (or Ctrl-C) ends the rest too
            for _, worker, _ in running:
                worker.stop()
    for target in targets:  # the originals loaded: now a mismatch is worth a warning, not an error's preamble
        warn_if_other_weights(resolve(target.original).path, target.onnx, onnx_spec(target.onnx))

    comparisons = []
    tolerances = {}
    for model in models:
        name = model["name"]
        mine = [j for j in planned if j.model == name]
        ref_job = next(j for j in mine if j.role == "reference")
        ref_out = outputs.get((name, ref_job.label))
        for job in mine:
            if job.role == "reference" or runs[name, job.label].status == "unavailable":
                continue
            tol = tolerance_for(job.device, atol, rtol, min_agreement)
            tolerances[job.device] = asdict(tol)
            cand_out = outputs.get((name, job.label))
            if ref_out is None or cand_out is None:
                comparisons.append(_not_compared(name, ref_job, job, tol, runs))
                continue
            comparisons.append(compare(name, ref_out, cand_out, tol, job.device))

    result = ParityResult(
        passed=bool(comparisons) and all(c.passed for c in comparisons)
        and not any(r.status == "failed" for r in runs.values()),
        comparisons=comparisons,
        backends=[runs[j.model, j.label] for j in planned],
        models=models,
        inputs=inputs.summary(),
        environment=environment.fingerprint(),
        tolerances=tolerances,
        disagreements=_disagreements(models, planned, outputs, inputs),
        seconds=round(time.perf_counter() - started, 2),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return result, outputs


def _drive(todo, running, limit, crash, timeout, inputs, runs, outputs) -> None:
    """Keep up to ``limit`` workers running until every job is done; collect each as it finishes."""
    while todo or running:
        while todo and len(running) < limit:
            job, path = todo.pop(0)
            worker = _process.Worker("onnxparity.parity.worker:run_backend", _job_dict(job, path, crash),
                                     name=f"{job.model} {job.label}", env=job.env, timeout=timeout)
            running.append((job, worker, time.perf_counter()))
        finished = [r for r in running if r[1].done()]
        if not finished:
            time.sleep(0.02)
            continue
        for item in finished:
            running.remove(item)
            job, worker, t0 = item
            runs[job.model, job.label], out = _collect(job, worker, t0, inputs)
            if out is not None:
                outputs[job.model, job.label] = out


def _collect(job: Job, worker: _process.Worker, t0: float, inputs: ParityInputs):
    """A finished worker -> its BackendRun (and its outputs when it ran)."""
    try:
        res = worker.result()
    except InputError as exc:
        if job.role == "reference":
            raise  # a model that cannot be loaded is the user's input error (exit 2)
        return job.run_record(status="failed", reason=str(exc)), None
    except WorkerError as exc:
        log.warning("%s %s: %s", job.model, job.label, exc)
        return job.run_record(status="failed", reason=str(exc), error_tail=exc.output_tail or None), None
    wall = round(time.perf_counter() - t0, 3)
    if res["status"] == "unavailable":
        return job.run_record(status="unavailable", reason=res["reason"], seconds={"wall": wall}), None
    out = np.asarray(res["outputs"])
    indices = np.arange(len(inputs)) if job.indices is None else np.asarray(job.indices)
    acc = accuracy(job.spec.probabilities(out), inputs.labels[indices]) if out.ndim == 2 else None
    record = job.run_record(
        status="ok", n=int(len(out)), output_name=res["output_name"], output_shape=list(out.shape),
        output_dtype=str(out.dtype), seconds={**res["seconds"], "wall": wall}, details=res["details"],
        placement=res.get("placement"),
        **({"accuracy": acc["accuracy"], "correct": acc["correct"], "n_labelled": acc["n"]} if acc else {}),
    )
    return record, {"outputs": out, "indices": indices, "output_name": res["output_name"], "label": job.label}


def _not_compared(model: str, ref_job: Job, job: Job, tol: Tolerance, runs: dict):
    from onnxparity.parity.metrics import Comparison

    ref_run, cand_run = runs[model, ref_job.label], runs[model, job.label]
    why = (f"reference {ref_job.label} {ref_run.status}: {ref_run.reason}" if ref_run.status != "ok"
           else f"{job.label} {cand_run.status}: {cand_run.reason}")
    return Comparison(model=model, reference=ref_job.label, candidate=job.label, device=job.device, passed=False,
                      reasons=[why], n=0, atol=tol.atol, rtol=tol.rtol, min_agreement=tol.min_agreement)


def _disagreements(models: list[dict], planned: list[Job], outputs: dict, inputs: ParityInputs) -> list[dict]:
    """Inputs where any backend's top-1 differs from its model's reference, with every backend's pick."""
    found = []
    for model in models:
        name = model["name"]
        labels = [j.label for j in planned if j.model == name and (name, j.label) in outputs]
        ref_label = next((j.label for j in planned if j.model == name and j.role == "reference"), None)
        if ref_label not in labels:
            continue
        picks = {}
        for label in labels:
            o = outputs[name, label]
            full = np.full(len(inputs), -1, np.int64)
            full[o["indices"]] = np.asarray(o["outputs"]).argmax(axis=1)
            picks[label] = full
        ref = picks[ref_label]
        differ = np.zeros(len(inputs), bool)
        for label, p in picks.items():
            differ |= (p >= 0) & (p != ref)
        for i in np.flatnonzero(differ):
            found.append({"model": name, "index": int(i), "kind": inputs.kinds[i], "label": int(inputs.labels[i]),
                          "predictions": {label: int(p[i]) for label, p in picks.items() if p[i] >= 0}})
    return found
