"""The parity matrix: every backend of every model, run in workers, compared with the reference.

:func:`plan` lists the backends of one model from :mod:`onnxparity.backends` (the original on CPU
as the reference; the original on GPU and under another Keras engine, and the ONNX file in each
runtime the registry has, ONNX Runtime per execution provider, tuned and at batch size 1, as
candidates), marking those this machine cannot run as unavailable with the reason. A plain ONNX
file with saved outputs (``--reference``) has those outputs as its reference. :func:`run` starts
one worker process per framework (:func:`worker_groups`: the backends the registry puts in one
process share it, so ONNX Runtime's plain, tuned and batch-1 sessions of every model run in one
interpreter), all at once by default, the longest first; each runs its backends in turn and
returns each one's outputs as it finishes; each output of each candidate is judged against the
reference's (:mod:`onnxparity.parity.judging`). A crash or a timeout is recorded against the
backend that was running; a fresh process takes over the rest of its worker's backends, and the
other workers go on.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from onnxparity import _process, progress
from onnxparity.backends import Backend, backends_for, requested_providers
from onnxparity.compare import accuracy, class_output
from onnxparity.data.fit import check_fits
from onnxparity.errors import InputError, WorkerError
from onnxparity.inputs import Inputs, prepare
from onnxparity.machine import physical_cores
from onnxparity.models import resolve
from onnxparity.models.torch_io import needs_class
from onnxparity.onnx_model import OnnxModel
from onnxparity.environment import fingerprint
from onnxparity.parity.judging import compare_all, decides, disagreements, marked_outputs
from onnxparity.parity.provenance import warn_if_other_weights
from onnxparity.parity.result import BackendRun, ParityResult
from onnxparity.runners import merge_specs
from onnxparity.signature import Signature
from onnxparity.spec import ModelSpec
from onnxparity.trust import Trust

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256  # large enough for the dynamic axis; small enough to stay in cache (Keras on torch: 2x faster than 1000)
BATCH1_LIMIT = 1000  # inputs run one at a time (the dynamic batch axis at 1); None: all of them
WORKER_TIMEOUT = 600.0
POLL_S = 0.5  # longest wait for a worker's answer before the deadlines are looked at again
SAVED = "saved"  # the reference label of outputs saved elsewhere (--reference)
BACKEND_WORKER = "onnxparity.parity.worker:run_backend"  # what a backend's worker runs


def cpu_threads(backend: Backend) -> int:
    """Intra-op threads for a CPU worker. All workers run at once, so each gets a share of the cores;
    the heavy ones (the Keras engines) may use them all once the quicker workers are done."""
    cores = physical_cores()
    return cores if backend.heavy else max(1, cores // 4)


def thread_env(threads: int) -> dict:
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1"}


@dataclass(frozen=True)
class Target:
    """One model to check: the original (checkpoint folder, .keras, model.pth) and its ONNX file, or
    an ONNX file alone with saved ``reference`` outputs (ONNX test-data folder or .npz)."""

    original: str | None
    onnx: str
    reference: str | None = None
    trust: Trust = Trust()  # the user's word on rebuilding a recorded PyTorch class
    spec: ModelSpec | None = None  # how to feed the original (--spec), where nothing beside it says
    input_shapes: dict | None = None  # --input-shape: sizes of dynamic axes, for a file from another exporter
    # Input axes the user names dynamic (--input-shape NAME=AXIS:SIZE): ((input or None, axis, name), ...)
    axis_names: tuple[tuple[str | None, int, str], ...] = ()
    axes: tuple[tuple[str, int], ...] = ()  # this run's sizes of named axes, where not the example's

    @property
    def suffix(self) -> str:
        """What tells this run of a model from its run at the example's sizes: "@sequence=32"."""
        return "@" + ",".join(f"{axis}={size}" for axis, size in self.axes) if self.axes else ""


@dataclass
class Job:
    model: str
    backend: Backend
    path: str
    spec: ModelSpec | None  # how its inputs are prepared (None: arrays fed as they are)
    signature: Signature | None
    batch_size: int = DEFAULT_BATCH
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    indices: list[int] | None = None  # None: every input
    unavailable: str | None = None
    pixels_only: bool = False  # the model's ONNX file takes uint8 pixels: all its backends get whole pixels
    role: str = "candidate"
    truth: bool = False  # also run in float64 (the reference on the CPU): the calibrated verdict's truth
    began: float | None = None  # when it was handed to its worker, seconds after the matrix started

    @property
    def label(self) -> str:
        return self.backend.label

    @property
    def device(self) -> str:
        return self.backend.device

    def run_record(self, **kw) -> BackendRun:
        return BackendRun(model=self.model, label=self.label, role=self.role, runner=self.backend.runner,
                          device=self.device, path=self.path, batch_size=self.batch_size, **kw)


class LocalWorkers:
    """Where :func:`run` runs the backends by default: on this machine, one worker process per
    framework (:func:`worker_key`: the registry's ``Backend.process`` and the worker environment),
    which runs its backends in turn (:mod:`onnxparity._process`); a fresh one takes over after a
    crash, and one whose resident memory grows past ``max_memory`` bytes is stopped. Another placement
    (the zoo's warm workers on a Ray cluster) is an object with the same methods."""

    def __init__(self, max_memory: int | None = None):
        self.max_memory = max_memory
        self._services: dict[tuple, _process.Service] = {}

    def unavailable(self, backend: Backend, gpu: bool) -> str | None:
        """Why ``backend`` cannot run where the workers run (here), or None."""
        return backend.unavailable(gpu)

    def start(self, job: "Job", payload: dict, timeout: float) -> "_LocalJob":
        """Start ``job`` in its framework's process, ``payload`` being :data:`BACKEND_WORKER`'s argument;
        the handle has ``done()``, ``result()`` and ``stop()``, as :class:`onnxparity._process.Worker`
        has. One job at a time per process: the matrix starts a framework's next one when it is done."""
        key = worker_key(job)
        service = self._services.get(key)
        if service is None or service.closed:  # the first of its jobs, or the last one crashed the process
            service = self._services[key] = _process.Service("onnxparity._process:Calls", name=job.backend.process,
                                                             env=job.env, timeout=timeout, wait=False,
                                                             max_rss=self.max_memory)
        service.name = f"{job.model} {job.label}"  # what a crash or a timeout is reported against
        service.send("call", BACKEND_WORKER, payload, timeout=timeout)
        return _LocalJob(service)

    def wait(self, jobs: list["_LocalJob"], timeout: float) -> list["_LocalJob"]:
        """The jobs whose answer is in (or whose process died or overran), waiting up to ``timeout``."""
        ready = _process.wait([j.service for j in jobs], timeout)
        return [j for j in jobs if j.service in ready]

    def close(self) -> None:
        """End every worker process (each ends at once, its imports left as they are)."""
        for service in self._services.values():
            service.close()
        self._services.clear()


@dataclass
class _LocalJob:
    """A backend's job in its framework's worker process."""

    service: _process.Service

    def done(self) -> bool:
        return self.service.done()

    def result(self) -> dict:
        return self.service.receive()

    def stop(self) -> None:
        self.service.stop()


def onnx_spec(path) -> ModelSpec:
    """The spec in an ONNX file's metadata; a one-line error for a missing, corrupt or bare file."""
    return OnnxModel(path).require_spec()


@dataclass(frozen=True)
class Description:
    """What a target is: its name, how each side is fed, and the signature that names its tensors."""

    framework: str  # the reference side's: "keras", "torch", "onnx" (a file against saved outputs or another file)
    name: str
    signature: Signature | None  # from an ONNX side's graph, else the reference's spec
    spec: ModelSpec | None  # how the reference side is fed
    candidate_spec: ModelSpec | None  # how the candidate side is fed
    precision: str = "float32"
    pair: bool = False  # `check A B` of any two models, not an original against its own ONNX file
    class_outputs: tuple[str, ...] = ()  # outputs marked as class scores (the spec's, the ONNX graph's Softmax)


def _side(path: str) -> tuple[str, ModelSpec | None, OnnxModel | None]:
    if str(path).lower().endswith(".onnx"):  # its own errors: "no such ONNX file", "not a readable ONNX file"
        model = OnnxModel(path)
        return "onnx", model.spec, model
    ref = resolve(path)
    if ref.framework == "onnx":
        model = OnnxModel(ref.path)
        return "onnx", model.spec, model
    return ref.framework, ref.spec, None


def describe(target: Target) -> Description:
    """A target, checked for sense: an original and its ONNX file, an ONNX file and saved outputs,
    or any two models (Keras, PyTorch, ONNX) compared directly. Its signature names the input axes
    that the original's recorded signature or the user names dynamic, though the file may fix them
    (a run at another size then fails on the file, naming the axis)."""
    d = _describe(target)
    names = _axis_names(d.spec.signature if d.spec else None)
    for name, axis, axis_name in target.axis_names:
        names.setdefault(name, {})[axis] = axis_name
    if d.signature is None or not names:
        return d
    return dataclasses.replace(d, signature=d.signature.with_axis_names(names))


def _axis_names(signature: Signature | None) -> dict[str | None, dict[int, str]]:
    """The input axes a signature names dynamic, other than the batch: {input: {axis: name}}."""
    return {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str) and i > 0}
            for t in (signature.inputs if signature else ()) if t.dynamic_axes}


def _describe(target: Target) -> Description:
    if target.original is None:
        onnx_model = OnnxModel(target.onnx)
        if target.reference is None:
            raise InputError(f"{target.onnx}: give the original model, or saved outputs to compare with (--reference DIR)")
        return Description("onnx", onnx_model.name, onnx_model.signature, onnx_model.spec, onnx_model.spec,
                           onnx_model.precision, class_outputs=onnx_model.class_outputs)
    a_framework, a_spec, a_onnx = _side(target.original)
    b_framework, b_spec, b_onnx = _side(target.onnx)
    if target.spec is not None:
        a_spec = dataclasses.replace(target.spec, framework=a_framework) if a_framework != "onnx" else target.spec
    if a_framework != "onnx" and b_framework == "onnx" and (b_spec is None or b_spec.framework == a_framework):
        if b_spec is None:  # another exporter's file: the original is fed as the file's own signature says
            spec = _foreign_spec(target, a_framework, a_spec, b_onnx)
            return Description(a_framework, spec.name, b_onnx.signature, spec, spec, b_onnx.precision,
                               class_outputs=_marked(spec, b_onnx))
        spec = merge_specs(a_spec, b_spec)  # the original and its own ONNX file
        return Description(a_framework, spec.name, b_onnx.signature, spec, b_spec, b_onnx.precision,
                           class_outputs=_marked(spec, b_onnx))
    # Any two models (Keras against PyTorch, a migrated model against the file it came from, ONNX against
    # ONNX, in either order): each side fed in its own layout by its own spec; tensors named by an ONNX side.
    onnx_side = a_onnx or b_onnx
    signature = onnx_side.signature if onnx_side else (a_spec.signature if a_spec else None)
    if a_spec is None and a_onnx is None or b_spec is None and b_onnx is None:
        missing = target.original if a_spec is None and a_onnx is None else target.onnx
        raise InputError(f"{missing}: no spec.json beside it; say how to feed it (--spec spec.json, or "
                         "onnxparity convert) first")
    name = f"{(a_spec.name if a_spec else a_onnx.name)} vs {(b_spec.name if b_spec else b_onnx.name)}"
    return Description(a_framework, name, signature, a_spec, b_spec or (b_onnx.spec if b_onnx else None),
                       b_onnx.precision if b_onnx else "float32", pair=True,
                       class_outputs=_marked(a_spec, a_onnx, b_spec, b_onnx))


def _foreign_spec(target: Target, framework: str, own: ModelSpec | None, onnx_model: OnnxModel) -> ModelSpec:
    """How to feed an original checked against a file another exporter wrote: its own spec (spec.json,
    --spec) or one read off the file's signature (:func:`spec_from_signature`), named by the file's tensors;
    a state dict's class from --torch-class. The runner matches the file's names to the model's own."""
    from onnxparity.models.spec_inference import spec_from_signature
    from onnxparity.onnx_model import softmax_outputs

    trust = target.trust
    architecture = trust.torch_class or (own.architecture if own else None)
    kwargs = trust.torch_kwargs if trust.torch_kwargs is not None else (own.torch_kwargs if own else None)
    if framework == "torch" and architecture is None and Path(target.original).suffix.lower() == ".pth":
        raise InputError(f"{target.original}: a state dict, and {target.onnx} (written by another exporter) does not "
                         "name its class; pass --torch-class package.module:Class (and --torch-kwargs)")
    if own is None:
        own = spec_from_signature(onnx_model.name, framework, onnx_model.signature,
                                  input_shapes=target.input_shapes,
                                  softmax=tuple(softmax_outputs(onnx_model.proto.graph)))
    return dataclasses.replace(own, framework=framework, signature=onnx_model.signature, architecture=architecture,
                               torch_kwargs=kwargs)


def _marked(*sides) -> tuple[str, ...]:
    """The outputs that any side's spec or ONNX graph marks as class scores."""
    marked: list[str] = []
    for side in sides:
        if side is not None:
            marked += side.class_outputs
    return tuple(dict.fromkeys(marked))


def authorize(target: Target, d: Description) -> None:
    """Refuse, before any worker starts, a PyTorch class or a module to import that a file records and the
    user did not allow; have the allowed modules imported before the originals load."""
    for path, spec in ((target.original, d.spec), (target.onnx, d.candidate_spec)):
        if path is None or spec is None or _side(path)[0] == "onnx":
            continue
        own = resolve(path).spec
        where = (f"{Path(path) if Path(path).is_dir() else Path(path).parent}/spec.json"
                 if own is not None and (own.architecture or own.imports) else f"{target.onnx}'s metadata")
        target.trust.admit_imports(spec.imports, where)
        if _side(path)[0] == "torch" and needs_class(path):  # a .pt2 or TorchScript file builds no class
            target.trust.resolve(spec.architecture, spec.torch_kwargs, where)


def plan(target: Target, inputs: Inputs, *, providers=None, gpu: bool = True, batch_size: int = DEFAULT_BATCH,
         batch1_limit: int | None = BATCH1_LIMIT, name: str | None = None,
         described: Description | None = None, workers: LocalWorkers | None = None) -> list[Job]:
    """Every backend for one model, reference first; those that cannot run where ``workers`` run
    (default: here) carry ``unavailable``. ``described``: the target's :func:`describe`, when the
    caller has it (each opens the ONNX file)."""
    d = described or describe(target)
    unavailable = (workers or LocalWorkers()).unavailable
    model = name or d.name
    pixels_only = d.candidate_spec is not None and d.candidate_spec.input_dtype == "uint8"
    if d.pair:
        return _plan_pair(target, d, inputs, model, providers, gpu, batch_size, batch1_limit, unavailable)
    framework = d.framework
    jobs: list[Job] = []
    reference_taken = framework == "onnx"  # saved outputs are the reference
    for backend in backends_for(framework if framework != "onnx" else "none", requested_providers(providers)):
        original = backend.framework != "onnx"
        role = "candidate"
        why = unavailable(backend, gpu)
        if backend.batch_size == 1 and not (d.signature is None or d.signature.batched):
            continue  # a model without a batch axis runs one sample at a time anyway
        if original and not reference_taken and why is None:  # Keras without TensorFlow: Keras on torch's CPU
            role, reference_taken = "reference", True
        jobs.append(_job(model, backend, str(target.original) if original else str(target.onnx),
                         d.spec if original else d.candidate_spec, d.signature, inputs, role, why, pixels_only,
                         batch_size, batch1_limit))
    if framework != "onnx" and not any(j.role == "reference" for j in jobs):
        reasons = "; ".join(f"{j.label}: {j.unavailable}" for j in jobs if j.backend.framework == framework)
        raise InputError(f"{target.original}: no backend here can run the original ({reasons})")
    jobs.sort(key=lambda j: j.role != "reference")
    return jobs


def _plan_pair(target: Target, d: Description, inputs: Inputs, model: str, providers, gpu, batch_size,
               batch1_limit, unavailable) -> list[Job]:
    """``check A B``: A's CPU backend is the reference; every backend of B is a candidate."""
    b_framework = _side(target.onnx)[0]
    if d.framework == "onnx":
        pool = [b for b in backends_for("none", ["CPUExecutionProvider"]) if b.label == "onnxruntime:cpu"]
    else:  # the framework's CPU originals, its reference first (Keras on torch where TensorFlow is absent)
        pool = [b for b in backends_for(d.framework, []) if b.device == "cpu"]
    reference = next((b for b in pool if unavailable(b, gpu) is None), None)
    if reference is None:
        raise InputError(f"{target.original}: no backend here can run it on the CPU")
    if b_framework == "onnx":
        candidates = backends_for("none", requested_providers(providers))
    else:  # B's own framework's backends only: the ONNX runtimes have no file to run
        candidates = [b for b in backends_for(b_framework, []) if b.framework == b_framework]
    jobs = [_job(model, reference, str(target.original), d.spec, d.signature, inputs, "reference", None, False,
                 batch_size, batch1_limit)]
    for backend in candidates:
        if backend.label == reference.label:  # the same backend on both sides (two ONNX files): tell them apart
            backend = dataclasses.replace(backend, label=f"B:{backend.label}")
        jobs.append(_job(model, backend, str(target.onnx), d.candidate_spec, d.signature, inputs, "candidate",
                         unavailable(backend, gpu), False, batch_size, batch1_limit))
    return jobs


def _job(model, backend, path, spec, signature, inputs, role, why, pixels_only, batch_size, batch1_limit) -> Job:
    env = dict(backend.worker_env)
    options = {**backend.options, **backend.side_by_side}  # every worker runs at once, on shared cores
    if backend.device == "cpu":
        env.update(thread_env(cpu_threads(backend)))
        if backend.threads_option:
            options[backend.threads_option] = cpu_threads(backend)
    indices = None
    if backend.batch_size == 1 and batch1_limit is not None and batch1_limit < len(inputs):
        real = [i for i, k in enumerate(inputs.kinds) if k in ("digit", "image", "given", "random")]
        taken = set(real)
        edge = [i for i in range(len(inputs)) if i not in taken]
        indices = real[: max(0, batch1_limit - len(edge))] + edge
    return Job(model, backend, path, spec, signature, backend.batch_size or batch_size, options, env, indices, why,
               pixels_only, role)


def _job_dict(job: Job, inputs_paths: dict, crash: dict | None) -> dict:
    d = {"label": job.label, "model": job.path, "runner": job.backend.runner, "options": job.options,
         "inputs": inputs_paths, "batch_size": job.batch_size, "indices": job.indices,
         "batched": job.signature is None or job.signature.batched, "spec": job.spec.to_dict() if job.spec else None,
         "truth": job.truth}
    if crash and crash.get("label") == job.label and crash.get("model", job.model) == job.model:
        d["crash"] = crash.get("signal", 11)
    return d


def run(targets: list[Target], inputs: Inputs | list[Inputs], *, providers=None, gpu: bool = True,
        atol: float | None = None, rtol: float | None = None, min_agreement: float | None = None,
        batch_size: int = DEFAULT_BATCH, batch1_limit: int | None = BATCH1_LIMIT, jobs: int | None = None,
        timeout: float = WORKER_TIMEOUT, max_memory: int | None = None, crash: dict | None = None,
        saved: list[dict | None] | None = None, strict_probes: bool = False,
        workers: LocalWorkers | None = None) -> tuple[ParityResult, dict]:
    """Run the matrix for ``targets``, each on its ``inputs`` (one set for all, or one per target);
    ``saved``: per target, outputs saved elsewhere (``--reference``) that stand as its reference.
    Returns the result and the raw outputs.

    ``jobs`` caps the worker processes running at once (default: all). ``workers``: where the
    backends run (default :class:`LocalWorkers`: one process per framework, here, each stopped past
    ``max_memory`` resident bytes and reported as a crash is). ``crash`` is fault injection for
    tests: ``{"label": "onnxruntime:cpu:b1", "signal": 11}`` makes that backend's worker die while
    it runs.
    """
    own_workers = workers is None  # run made them, so run ends them
    workers = workers or LocalWorkers(max_memory)
    started = time.perf_counter()
    per_target = inputs if isinstance(inputs, list) else [inputs] * len(targets)
    saved = saved or [None] * len(targets)
    if any(len(i) == 0 for i in per_target):
        raise InputError("no inputs to run")
    planned: list[Job] = []
    names: set[str] = set()
    models, model_inputs, described = [], {}, []
    runs: dict[tuple[str, str], BackendRun] = {}
    outputs: dict[tuple[str, str], dict] = {}
    for target, target_inputs, saved_outputs in zip(targets, per_target, saved):
        d = describe(target)
        described.append(d)
        base = d.name + target.suffix
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.add(name)
        authorize(target, d)
        model_jobs = plan(target, target_inputs, providers=providers, gpu=gpu, batch_size=batch_size,
                          batch1_limit=batch1_limit, name=name, described=d, workers=workers)
        for job in model_jobs:
            if job.backend.framework == "torch":
                job.options["trust"] = target.trust.to_dict()
            job.truth = job.role == "reference" and job.device == "cpu" and job.backend.framework != "onnx"
        if target_inputs.images is not None and model_jobs[0].spec is not None:  # before any worker starts
            check_fits(target_inputs.images, target_inputs.labels, model_jobs[0].spec, target_inputs.source)
        planned += model_jobs
        model_inputs[name] = target_inputs
        models.append({"name": name, "framework": d.framework, "original": target.original, "onnx": str(target.onnx),
                       "reference": target.reference, "spec": d.spec.to_dict() if d.spec else None,
                       "signature": d.signature.to_dict() if d.signature else None, "precision": d.precision,
                       "pair": d.pair, "inputs": target_inputs.summary(), "class_outputs": list(d.class_outputs),
                       "axes": dict(target.axes)})
        if saved_outputs is not None:
            runs[name, SAVED] = BackendRun(model=name, label=SAVED, role="reference", runner="saved", device="cpu",
                                           path=str(target.reference), batch_size=0, status="ok",
                                           n=len(target_inputs), outputs=_describe_outputs(saved_outputs))
            outputs[name, SAVED] = {"outputs": dict(saved_outputs), "indices": np.arange(len(target_inputs)),
                                    "label": SAVED}

    with tempfile.TemporaryDirectory(prefix="onnxparity-inputs-") as tmp:
        todo = []
        for job in planned:
            if job.unavailable:
                runs[job.model, job.label] = job.run_record(status="unavailable", reason=job.unavailable)
            else:
                paths = prepare(model_inputs[job.model], job.spec, f"{tmp}/{job.model}", signature=job.signature,
                                pixels_only=job.pixels_only)
                todo.append((job, paths))
        groups = worker_groups(todo)
        try:
            with progress.steps("parity backends", total=len(todo)) as bar:
                _drive(groups, jobs or len(groups), crash, timeout, model_inputs, runs, outputs, bar.advance,
                       marked={m["name"]: marked_outputs(m) for m in models}, workers=workers, started=started)
        finally:
            if own_workers:
                workers.close()
    for target, d in zip(targets, described):  # the originals loaded: a mismatch is worth a warning now
        if target.original is not None and not d.pair and d.candidate_spec is not None:
            warn_if_other_weights(resolve(target.original).path, target.onnx, d.candidate_spec)
    comparisons, tolerances = compare_all(models, planned, runs, outputs, model_inputs, atol, rtol, min_agreement)
    backends = [r for m in models for (model, _), r in runs.items() if model == m["name"]]
    first = per_target[0]
    result = ParityResult(
        passed=bool(comparisons) and all(c.passed for c in comparisons if decides(c, strict_probes)),
        comparisons=comparisons,
        backends=backends,
        models=models,
        inputs=first.summary(),
        environment=fingerprint(),
        tolerances=tolerances,
        disagreements=disagreements(models, runs, outputs, model_inputs),
        seconds=round(time.perf_counter() - started, 2),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return result, outputs


def worker_groups(todo: list[tuple[Job, dict]]) -> list[list[tuple[Job, dict]]]:
    """The jobs each worker process runs, one after another: the backends the registry puts in one
    process (``Backend.process``) with the same environment share it, across models. The longest
    chains come first (the Keras engines, then the references and their float64 runs, then the
    runtimes on the ONNX file), so that the critical path starts at once and a ``--jobs`` cap
    holds back only the short ones."""
    groups: dict[tuple, list] = {}
    for job, paths in todo:
        groups.setdefault(worker_key(job), []).append((job, paths))
    return sorted(groups.values(), key=lambda g: (not any(j.backend.heavy for j, _ in g),
                                                  not any(j.role == "reference" for j, _ in g), -len(g)))


def worker_key(job: Job) -> tuple:
    """What decides the worker process a job runs in: its backend's process name and environment."""
    return job.backend.process, tuple(sorted(job.env.items()))


def _drive(groups, limit, crash, timeout, model_inputs, runs, outputs, tick=lambda n=1, note=None: None,
           marked: dict | None = None, workers: LocalWorkers | None = None, started: float = 0.0) -> None:
    """Keep up to ``limit`` groups of jobs running, each group one job at a time in its worker, until
    every job is done; collect each job as it finishes."""
    workers = workers or LocalWorkers()
    waiting, running = [list(g) for g in groups], []  # running: [job, handle, when it started, the group's rest]

    def start(rest: list) -> list:
        job, paths = rest.pop(0)
        t0 = time.perf_counter()
        job.began = round(t0 - started, 3)
        return [job, workers.start(job, _job_dict(job, paths, crash), timeout), t0, rest]

    try:
        while waiting or running:
            while waiting and len(running) < limit:
                running.append(start(waiting.pop(0)))
            ready = workers.wait([item[1] for item in running], POLL_S)
            for item in [item for item in running if item[1] in ready]:
                job, handle, t0, rest = item
                runs[job.model, job.label], out = _collect(job, handle.result, t0, model_inputs[job.model],
                                                          (marked or {}).get(job.model, ()))
                tick(1, f"{job.model} {job.label} {runs[job.model, job.label].status}")
                if out is not None:
                    outputs[job.model, job.label] = out
                running.remove(item)
                if rest:
                    running.append(start(rest))
    finally:  # an input error in the reference (or Ctrl-C) ends the rest too
        for _, handle, _, _ in running:
            handle.stop()


def _describe_outputs(arrays: dict) -> dict:
    return {name: {"shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype)} for name, a in arrays.items()}


def _collect(job: Job, receive, t0: float, inputs: Inputs, marked=()):
    """A finished job -> its BackendRun (and its outputs when it ran); ``receive`` returns the worker's
    answer or raises; ``marked``: the outputs marked as class scores (accuracy is read from the first one)."""
    try:
        res = receive()
    except InputError as exc:
        if job.role == "reference":
            raise  # a model that cannot be loaded is the user's input error (exit 2)
        return job.run_record(status="failed", reason=str(exc)), None  # the candidate refused what the original took
    except WorkerError as exc:
        log.warning("%s %s: %s", job.model, job.label, exc)
        return job.run_record(status="failed", reason=str(exc), error_tail=exc.output_tail or None,
                              gone=not exc.raised), None
    seconds = {"wall": round(time.perf_counter() - t0, 3), "began": job.began}
    if res["status"] == "unavailable":
        return job.run_record(status="unavailable", reason=res["reason"], seconds=seconds), None
    arrays = {name: np.asarray(a) for name, a in res["outputs"].items()}
    indices = np.arange(len(inputs)) if job.indices is None else np.asarray(job.indices)
    acc = None
    cls = class_output(arrays, marked)
    if cls is not None and arrays[cls].ndim == 2 and (inputs.labels[indices] >= 0).any():
        scores = job.spec.probabilities(arrays[cls]) if job.spec is not None else arrays[cls]
        acc = accuracy(scores, inputs.labels[indices])
    n = len(next(iter(arrays.values()))) if arrays else 0
    truth = {name: np.asarray(a) for name, a in (res.get("truth") or {}).items()}
    float64 = ({"status": "ok", "seconds": res.get("truth_seconds")} if truth else
               {"status": "unavailable", "reason": res.get("truth_reason")} if job.truth else None)
    record = job.run_record(
        status="ok", n=int(n), outputs=_describe_outputs(arrays), seconds={**res["seconds"], **seconds},
        worker=f"{job.backend.process} (pid {res['pid']})",
        details=res["details"], placement=res.get("placement"), float64=float64,
        **({"accuracy": acc["accuracy"], "correct": acc["correct"], "n_labelled": acc["n"]} if acc else {}),
    )
    return record, {"outputs": arrays, "indices": indices, "label": job.label, **({"truth": truth} if truth else {})}
