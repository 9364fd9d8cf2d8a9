"""The bench's environment fingerprint: the parity module's (CPU, cores, versions), plus what
makes a timing comparable: physical cores, CPU flags that decide the kernels, and the load."""

from __future__ import annotations

import os



def environment() -> dict:
    from onnxparity.parity.environment import fingerprint
    from onnxparity.machine import kernel_flags, physical_cores

    env = dict(fingerprint())
    env["cpu_allowed"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["physical_cores"] = physical_cores()
    env["cpu_flags"] = kernel_flags()
    env["load_average_before"] = list(os.getloadavg())
    env["threads_env"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
                          if k in os.environ}
    return env
