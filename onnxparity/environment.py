"""What machine and software a run saw, found without importing any framework: the fingerprint a
parity report carries, and the bench's, which adds what makes a timing comparable."""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata

from onnxparity.machine import cpu_name, int8_kernels, kernel_flags, nvidia_gpus, physical_cores

PACKAGES = ("onnxparity", "numpy", "tensorflow", "keras", "torch", "torchvision", "onnx", "onnxruntime",
            "onnxruntime-gpu", "tf2onnx", "jax")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def ort_providers() -> list[str]:
    from onnxparity.gpu import prepare_onnxruntime

    prepare_onnxruntime(["cuda"])  # a build that registers CUDA at import must find its libraries then
    import onnxruntime as ort

    return [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]


def fingerprint() -> dict:
    """Python, platform, CPU, GPUs (or why there are none), package versions and ORT's providers."""
    gpus, why = nvidia_gpus()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "gpu_note": why,
        "driver": gpus[0]["driver"] if gpus else None,
        "packages": {name: v for name in PACKAGES if (v := _version(name))},
        "ort_providers": ort_providers(),
    }


def timing_fingerprint() -> dict:
    """:func:`fingerprint`, plus the cores this process may use, the CPU flags that decide the
    kernels, the load before the run and the thread variables set."""
    env = fingerprint()
    env["cpu_allowed"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env["physical_cores"] = physical_cores()
    env["cpu_flags"] = kernel_flags()
    env["int8_kernels"] = int8_kernels()
    env["load_average_before"] = list(os.getloadavg())
    env["threads_env"] = {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ}
    return env
