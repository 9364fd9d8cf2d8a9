"""What machine and software a parity run saw, found without importing any framework."""

from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata

from onnxparity.machine import cpu_name

PACKAGES = ("onnxparity", "numpy", "tensorflow", "keras", "torch", "torchvision", "onnx", "onnxruntime",
            "onnxruntime-gpu", "tf2onnx", "jax")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def nvidia_gpus() -> tuple[list[dict], str | None]:
    """NVIDIA GPUs (name, driver, memory) and the reason when there are none: see :func:`onnxparity.gpu.detect`."""
    from onnxparity.gpu import detect

    return detect()


@functools.lru_cache(maxsize=1)
def ort_providers() -> list[str]:
    from onnxparity.gpu import prepare_onnxruntime

    prepare_onnxruntime(["cuda"])  # a build that registers CUDA at import must find its libraries then
    import onnxruntime as ort

    return [p for p in ort.get_available_providers() if p != "AzureExecutionProvider"]


def fingerprint() -> dict:
    gpus, why = nvidia_gpus()
    import os

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
