"""What machine and software a parity run saw, found without importing any framework."""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
import sys
from importlib import metadata

PACKAGES = ("onnxparity", "numpy", "tensorflow", "keras", "torch", "torchvision", "onnx", "onnxruntime",
            "onnxruntime-gpu", "tf2onnx", "jax")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[list[dict], str | None]:
    """NVIDIA GPUs from ``nvidia-smi`` (name, driver, memory); the reason when there are none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "no NVIDIA driver here (nvidia-smi not found)"
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed ({exc})"
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus, None if gpus else f"nvidia-smi lists no GPU ({(out.stderr or out.stdout).strip()[:120]})"


@functools.lru_cache(maxsize=1)
def ort_providers() -> list[str]:
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
