"""What runs inside a backend's worker process: open one runner, feed it the prepared inputs.

Called through :mod:`onnxparity._process` (``"onnxparity.parity.worker:run_backend"``), so only the
runner's own framework is imported in the child. A backend that cannot run on this machine
returns ``status: "unavailable"`` with the reason; anything else that goes wrong propagates and
the parent reports the backend as failed with the end of its error output.
"""

from __future__ import annotations

import os
import time

import numpy as np

PLACEMENT_SAMPLES = 4  # inputs in the profiled run that tells which provider each node ran on


def run_backend(job: dict) -> dict:
    started = time.perf_counter()
    from onnxparity.inputs import open_feeds
    from onnxparity.errors import BackendUnavailable
    from onnxparity.runners import open_runner
    from onnxparity.spec import ModelSpec

    if job.get("crash"):  # fault injection: die by this signal, as a segfaulting framework would
        import signal

        os.kill(os.getpid(), int(job["crash"]))
        signal.pause()
    try:
        spec = ModelSpec.from_dict(job["spec"]) if job.get("spec") else None
        runner = open_runner(job["model"], job["runner"], spec=spec, **job.get("options", {}))
    except BackendUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    loaded = time.perf_counter()
    feeds = open_feeds(job["inputs"])
    if job.get("indices") is not None:
        picks = np.asarray(job["indices"])
        feeds = {k: v[picks] for k, v in feeds.items()}
    outputs = run_all(runner, feeds, int(job["batch_size"]), job.get("batched", True))
    done = time.perf_counter()
    result = {
        "status": "ok",
        "outputs": outputs,
        "seconds": {"start": round(loaded - started, 3), "infer": round(done - loaded, 3)},
        "details": runner.details() if hasattr(runner, "details") else {},
        "pid": os.getpid(),
    }
    if job.get("truth"):
        result.update(float64_truth(runner, feeds, int(job["batch_size"]), job.get("batched", True), outputs))
    if hasattr(runner, "node_placement"):
        first = {k: np.array(v[:PLACEMENT_SAMPLES] if job.get("batched", True) else v[0]) for k, v in feeds.items()}
        result["placement"] = runner.node_placement(first)
    return result


def run_all(runner, feeds: dict, batch_size: int, batched: bool = True) -> dict[str, np.ndarray]:
    """Every sample through ``runner``: in batches along the first axis, or one whole feed per
    sample for a model without a batch axis; outputs stacked per name, in the runner's order."""
    n = len(next(iter(feeds.values())))
    parts: dict[str, list] = {}
    step = batch_size if batched else 1
    for i in range(0, n, step):
        if batched:
            out = runner.infer({k: np.array(v[i : i + step]) for k, v in feeds.items()})
        else:
            out = {k: np.asarray(v)[None] for k, v in runner.infer({k: np.array(v[i]) for k, v in feeds.items()}).items()}
        for name, value in out.items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def float64_truth(runner, feeds: dict, batch_size: int, batched: bool, outputs32: dict) -> dict:
    """The reference run again in float64 (float inputs cast, integer inputs as they are), the
    calibrated verdict's truth: ``{"truth": outputs, "truth_seconds": s}``, or ``{"truth_reason":
    why}`` where the model cannot run in float64 (no float64 copy, an op without a float64 kernel,
    outputs that stay float32)."""
    from onnxparity.errors import first_line

    started = time.perf_counter()
    if not hasattr(runner, "float64"):
        return {"truth_reason": f"{type(runner).__name__} has no float64 run"}
    wide = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in feeds.items()}
    try:
        truth = run_all(runner.float64(), wide, batch_size, batched)
    except Exception as exc:  # any framework error: no truth, and why
        return {"truth_reason": f"the float64 run failed: {first_line(exc)}"}
    narrow = [name for name, a in truth.items() if np.asarray(outputs32.get(name, a)).dtype.kind == "f"
              and a.dtype != np.float64]
    if narrow:
        return {"truth_reason": f"the float64 run returned {truth[narrow[0]].dtype} for {narrow[0]!r} "
                                "(the model casts to a narrower float itself)"}
    return {"truth": {k: v for k, v in truth.items() if np.asarray(outputs32.get(k, v)).dtype.kind == "f"},
            "truth_seconds": round(time.perf_counter() - started, 3)}
