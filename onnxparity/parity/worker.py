"""What runs inside a parity worker process: open each backend's runner, feed it the prepared inputs.

:func:`run_backend` (``"onnxparity.parity.worker:run_backend"``) runs one backend's job in a worker
process that runs the backends the registry puts in one process (``Backend.process``: ONNX Runtime's
plain, tuned and batch-1 sessions share one interpreter) one after another, through the process's
:class:`BackendWorker`; so only the runner's own framework is imported in the child, and only once.
A backend that cannot run on this machine returns ``status: "unavailable"`` with the reason;
anything else that goes wrong propagates and the parent reports the backend as failed with the
end of its error output.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

PLACEMENT_SAMPLES = 4  # inputs in the profiled run that tells which provider each node ran on


_THIS_PROCESS: "BackendWorker | None" = None  # run_backend's, kept from one job to the next


def run_backend(job: dict) -> dict:
    """One backend's job in this worker process (see :class:`BackendWorker`)."""
    global _THIS_PROCESS
    if _THIS_PROCESS is None:
        _THIS_PROCESS = BackendWorker()
    return _THIS_PROCESS.run(job)


class BackendWorker:
    """Runs one backend's job per :meth:`run`; runners opened with the same options on the same file
    are opened once, and a runner whose ``configuration`` (ONNX Runtime: the file, the providers and
    every session setting, graph rewrites included) matches one that already ran the same inputs
    returns that run's outputs instead of computing them again, saying so in ``details.same_run_as``."""

    def __init__(self):
        self._runners: dict[str, object] = {}  # options -> runner, for the file the last job ran
        self._path: str | None = None
        self._runs: dict[str, tuple[str, dict]] = {}  # configuration and inputs -> (label, outputs)
        self._cpu = 0.0  # CPU seconds of this process when the last job ended

    def run(self, job: dict) -> dict:
        from onnxparity.errors import BackendUnavailable

        started = time.perf_counter()
        if job.get("crash"):  # fault injection: die by this signal, as a segfaulting framework would
            import signal

            os.kill(os.getpid(), int(job["crash"]))
            signal.pause()
        try:
            runner = self._open(job)
        except BackendUnavailable as exc:
            return {"status": "unavailable", "reason": str(exc)}
        loaded = time.perf_counter()
        from onnxparity.inputs import open_feeds

        feeds = open_feeds(job["inputs"])
        indices = job.get("indices")
        details = runner.details() if hasattr(runner, "details") else {}
        same = self._same_run(runner, job)
        if same in self._runs:
            details["same_run_as"], outputs = self._runs[same]
        else:
            outputs = run_all(runner, feeds, int(job["batch_size"]), job.get("batched", True), indices=indices)
            if same is not None:
                self._runs[same] = (job.get("label", ""), outputs)
        done = time.perf_counter()
        result = {"status": "ok", "outputs": outputs, "details": details, "pid": os.getpid(),
                  "seconds": {"start": round(loaded - started, 3), "infer": round(done - loaded, 3)}}
        if job.get("truth"):
            result.update(float64_truth(runner, feeds, int(job["batch_size"]), job.get("batched", True), outputs,
                                        indices))
        if hasattr(runner, "node_placement"):
            first = {k: np.array(v[:PLACEMENT_SAMPLES] if job.get("batched", True) else v[0]) for k, v in feeds.items()}
            result["placement"] = runner.node_placement(first)
        cpu = time.process_time()  # every thread's, since this process started: its imports are the first job's
        result["seconds"]["cpu"] = round(cpu - self._cpu, 3)
        self._cpu = cpu
        return result

    def _open(self, job: dict):
        from onnxparity.runners import open_runner
        from onnxparity.spec import ModelSpec

        if job["model"] != self._path:  # a new file: let the last one's runners go
            self._runners, self._runs, self._path = {}, {}, job["model"]
        key = json.dumps([job["runner"], job.get("spec"), job.get("options", {})], sort_keys=True, default=str)
        if key not in self._runners:
            spec = ModelSpec.from_dict(job["spec"]) if job.get("spec") else None
            self._runners[key] = open_runner(job["model"], job["runner"], spec=spec, **job.get("options", {}))
        return self._runners[key]

    @staticmethod
    def _same_run(runner, job: dict) -> str | None:
        """What decides a run's outputs, where the runner can say (``configuration``); else None."""
        configuration = getattr(runner, "configuration", None)
        if configuration is None:
            return None
        return json.dumps([configuration, job["inputs"], job.get("indices"), job["batch_size"], job.get("spec")],
                          sort_keys=True, default=str)


def run_all(runner, feeds: dict, batch_size: int, batched: bool = True, *, indices=None,
            float64: bool = False) -> dict[str, np.ndarray]:
    """Every sample (those at ``indices``) through ``runner``: in batches along the first axis, or one
    whole feed per sample for a model without a batch axis; float inputs cast to float64 a batch at a
    time with ``float64``; outputs stacked per name, in the runner's order. Mapped feeds are read a
    batch at a time and their pages let go after each, so that memory does not grow with the inputs."""
    from onnxparity.inputs import release_pages

    n = len(next(iter(feeds.values()))) if indices is None else len(indices)
    parts: dict[str, list] = {}
    step = batch_size if batched else 1
    for i in range(0, n, step):
        rows = slice(i, i + step) if indices is None else np.asarray(indices[i:i + step])
        batch = {k: np.array(v[rows], np.float64 if float64 and v.dtype.kind == "f" else v.dtype)
                 for k, v in feeds.items()}
        if batched:
            out = runner.infer(batch)
        else:
            out = {k: np.asarray(v)[None] for k, v in runner.infer({k: v[0] for k, v in batch.items()}).items()}
        for name, value in out.items():
            parts.setdefault(name, []).append(np.asarray(value))
        release_pages(*feeds.values())
    return {name: np.concatenate(values) for name, values in parts.items()}


def float64_truth(runner, feeds: dict, batch_size: int, batched: bool, outputs32: dict, indices=None) -> dict:
    """The reference run again in float64 (float inputs cast, integer inputs as they are), the
    calibrated verdict's truth: ``{"truth": outputs, "truth_seconds": s}``, or ``{"truth_reason":
    why}`` where the model cannot run in float64 (no float64 copy, an op without a float64 kernel,
    outputs that stay float32)."""
    from onnxparity.errors import first_line

    started = time.perf_counter()
    if not hasattr(runner, "float64"):
        return {"truth_reason": f"{type(runner).__name__} has no float64 run"}
    try:
        truth = run_all(runner.float64(), feeds, batch_size, batched, indices=indices, float64=True)
    except Exception as exc:  # any framework error: no truth, and why
        return {"truth_reason": f"the float64 run failed: {first_line(exc)}"}
    narrow = [name for name, a in truth.items() if np.asarray(outputs32.get(name, a)).dtype.kind == "f"
              and a.dtype != np.float64]
    if narrow:
        return {"truth_reason": f"the float64 run returned {truth[narrow[0]].dtype} for {narrow[0]!r} "
                                "(the model casts to a narrower float itself)"}
    return {"truth": {k: v for k, v in truth.items() if np.asarray(outputs32.get(k, v)).dtype.kind == "f"},
            "truth_seconds": round(time.perf_counter() - started, 3)}
