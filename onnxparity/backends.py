"""Every backend the toolkit runs a model on, described once: the parity plan, the bench's worker
groups and the CLI help all read :func:`backends_for`.

A backend is a runner (:mod:`onnxparity.runners`) on a device, with the worker environment it
needs (one framework per process) and a tolerance class. Adding one is adding an entry here.
ONNX Runtime contributes one backend per execution provider the build has, plus the toolkit's
tuned CPU session and the plain CPU session at batch size 1 (the dynamic batch axis at 1).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field


# Short names for the execution providers; any other full name works too.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
}
NVIDIA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
DEFAULT_PROVIDERS = ("cpu", "cuda", "tensorrt")  # always listed in the matrix; other providers ORT has are added
# CPU workers: no GPU in sight, and idle OpenMP threads sleep instead of spinning (workers share cores).
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_WAIT_POLICY": "PASSIVE"}
GPU_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


@dataclass(frozen=True)
class Backend:
    """One way to run a model: which runner, on which device, in what kind of worker process."""

    label: str  # "keras-tf:cpu", "torch:cuda", "onnxruntime:cuda", "onnxruntime:cpu:tuned"...
    framework: str  # the model it runs: "keras", "torch" or "onnx"
    runner: str  # onnxparity.runners.RUNNERS key
    device: str  # "cpu", "cuda", or an ORT provider's own device kind ("openvino", "rocm"...)
    tolerance: str  # tolerance class: "cpu" or "cuda" (every accelerator)
    env: dict = field(default_factory=dict)  # worker environment on top of CPU_ENV / GPU_ENV
    options: dict = field(default_factory=dict)  # runner options
    needs: str | None = None  # the Python package it cannot run without
    batch_size: int | None = None  # None: the caller's batch size
    reference: bool = False  # the framework's reference (the original on CPU)
    help: str = ""

    @property
    def worker_env(self) -> dict:
        return {**(CPU_ENV if self.device == "cpu" else GPU_ENV), **self.env}

    def unavailable(self, gpu: bool = True) -> str | None:
        """Why this machine cannot run it (checked without importing the framework), or None."""
        if self.needs and importlib.util.find_spec(self.needs) is None:
            return f"{self.needs} is not installed"
        if self.device == "cuda":
            if not gpu:
                return "GPU runs turned off (--cpu-only)"
            from onnxparity.gpu import detect

            gpus, why = detect()
            if not gpus:
                return why
        return None


# The originals: each framework's reference first, then its other engines and devices.
ORIGINALS = (
    Backend("keras-tf:cpu", "keras", "keras", "cpu", "cpu", {"KERAS_BACKEND": "tensorflow"}, {"device": "cpu"},
            needs="tensorflow", reference=True, help="the Keras model on TensorFlow's CPU (the reference)"),
    Backend("keras-torch:cpu", "keras", "keras-torch", "cpu", "cpu", {}, {"device": "cpu"}, needs="torch",
            help="the same .keras file under Keras 3's torch backend"),
    Backend("keras-tf:gpu", "keras", "keras", "cuda", "cuda", {"KERAS_BACKEND": "tensorflow"}, {"device": "cuda"},
            needs="tensorflow", help="the Keras model on TensorFlow's GPU"),
    Backend("keras-torch:cuda", "keras", "keras-torch", "cuda", "cuda", {}, {"device": "cuda"}, needs="torch",
            help="the .keras file under Keras on torch, on CUDA"),
    Backend("torch:cpu", "torch", "torch", "cpu", "cpu", {}, {"device": "cpu"}, needs="torch", reference=True,
            help="the PyTorch module in eager mode on the CPU (the reference)"),
    Backend("torch:cuda", "torch", "torch", "cuda", "cuda", {}, {"device": "cuda"}, needs="torch",
            help="the PyTorch module in eager mode on CUDA (TF32 off)"),
)


def provider_name(name: str) -> str:
    """``"cuda"`` -> ``"CUDAExecutionProvider"``; full names pass through."""
    return PROVIDER_ALIASES.get(name.lower(), name)


def short_provider(provider: str) -> str:
    return provider.replace("ExecutionProvider", "").lower()


def provider_device(provider: str) -> str:
    """The device kind an ORT provider runs on: "cpu", "cuda" (CUDA, TensorRT) or its own short name."""
    if provider == "CPUExecutionProvider":
        return "cpu"
    return "cuda" if provider in NVIDIA_PROVIDERS else short_provider(provider)


def onnxruntime_backends(providers: list[str], with_variants: bool = True) -> list[Backend]:
    """One backend per execution provider (plain ORT on the file, as deployed); with the CPU, the
    toolkit's tuned session and the plain session at batch size 1."""
    out = []
    for provider in providers:
        device = provider_device(provider)
        out.append(Backend(f"onnxruntime:{short_provider(provider)}", "onnx", "onnxruntime", device,
                           "cpu" if device == "cpu" else "cuda", {}, {"providers": [provider], "spinning": False},
                           needs="onnxruntime", help=f"ONNX Runtime on {provider}, the file as it is"))
        if provider == "CPUExecutionProvider" and with_variants:
            out.append(Backend("onnxruntime:cpu:tuned", "onnx", "onnxruntime", "cpu", "cpu", {},
                               {"providers": [provider], "spinning": False, "tuned": True}, needs="onnxruntime",
                               help="the toolkit's tuned CPU session (serve and bench): options and exact graph rewrites"))
            out.append(Backend("onnxruntime:cpu:b1", "onnx", "onnxruntime", "cpu", "cpu", {},
                               {"providers": [provider], "spinning": False}, needs="onnxruntime", batch_size=1,
                               help="plain ORT on the CPU, one input at a time (the dynamic batch axis at 1)"))
    return out


def requested_providers(requested: str | list[str] | None) -> list[str]:
    """``--providers``: None or "all" is the default list plus every provider this ORT build has."""
    if requested is None or requested == "all" or requested == ["all"]:
        names = [provider_name(p) for p in DEFAULT_PROVIDERS]
        try:
            import onnxruntime as ort

            names += [p for p in ort.get_available_providers() if p not in names and p != "AzureExecutionProvider"]
        except ImportError:
            pass
        return names
    if isinstance(requested, str):
        requested = [p for p in requested.split(",") if p.strip()]
    return [provider_name(p.strip()) for p in requested]


def backends_for(framework: str, providers: list[str]) -> list[Backend]:
    """A model's backends: its framework's originals (reference first), then ONNX Runtime's."""
    return [b for b in ORIGINALS if b.framework == framework] + onnxruntime_backends(providers)


def help_text() -> str:
    """The backends, one line each, for the CLI's help."""
    lines = [f"  {b.label:<22} {b.help}" for b in ORIGINALS + tuple(onnxruntime_backends(["CPUExecutionProvider"]))]
    lines.append("  onnxruntime:<provider> ONNX Runtime on any other execution provider it has (cuda, tensorrt...)")
    return "\n".join(lines)
