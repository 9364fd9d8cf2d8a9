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
    from onnxparity.runners import BackendUnavailable, open_runner
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
    x = np.load(job["inputs"], mmap_mode="r")
    if job.get("indices") is not None:
        x = x[np.asarray(job["indices"])]
    batch = int(job["batch_size"])
    outputs = [np.asarray(runner.infer(np.array(x[i : i + batch]))) for i in range(0, len(x), batch)]
    out = np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
    done = time.perf_counter()
    result = {
        "status": "ok",
        "outputs": out,
        "output_name": getattr(runner, "output_name", None) or runner.spec.output,
        "seconds": {"start": round(loaded - started, 3), "infer": round(done - loaded, 3)},
        "details": runner.details() if hasattr(runner, "details") else {},
        "pid": os.getpid(),
    }
    if hasattr(runner, "node_placement"):
        result["placement"] = runner.node_placement(np.array(x[:PLACEMENT_SAMPLES]))
    return result
