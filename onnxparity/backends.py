"""Every backend the toolkit runs a model on, described once: the parity plan, the bench, locate's
worker, quantize's timing, ``--require-devices`` and the CLI help all read this registry.

A backend is a runner (:mod:`onnxparity.runners`) on a device, with the worker environment it
needs (one framework per process), a tolerance class, and the rows the bench times it under (each
a set of runner options: ``keras.predict`` is the Keras runner with ``mode="predict"``). Adding
one is adding an entry here, and for a new runtime its runner module. ONNX Runtime contributes
one backend per execution provider the build has, plus the toolkit's tuned CPU session and the
plain CPU session at batch size 1 (the dynamic batch axis at 1); :data:`ONNX_RUNTIMES` are the
other runtimes that read the ONNX file themselves.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

from onnxparity.errors import BackendUnavailable
from onnxparity.gpu import NVIDIA_PROVIDERS
from onnxparity.runners.sessions import provider_name, short_provider

DEFAULT_PROVIDERS = ("cpu", "cuda", "tensorrt")  # always listed in the matrix; other providers ORT has are added
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# A CPU-only worker: no GPU in sight, and idle OpenMP threads sleep instead of spinning (workers share cores).
CPU_ENV = {**QUIET_ENV, "CUDA_VISIBLE_DEVICES": "-1", "OMP_WAIT_POLICY": "PASSIVE"}


@dataclass(frozen=True)
class Backend:
    """One way to run a model: which runner, on which device, in what kind of worker process."""

    label: str  # "keras-tf:cpu", "torch:cuda", "onnxruntime:cuda", "onnxruntime:cpu:tuned"...
    framework: str  # the model it runs: "keras", "torch" or "onnx"
    runner: str  # an onnxparity.runners runner name
    device: str  # "cpu", "cuda", or an ORT provider's own device kind ("openvino", "rocm"...)
    tolerance: str  # tolerance class: "cpu" or "cuda" (every accelerator)
    env: dict = field(default_factory=dict)  # worker environment on top of CPU_ENV / QUIET_ENV
    options: dict = field(default_factory=dict)  # runner options
    needs: str | None = None  # the Python package it cannot run without
    batch_size: int | None = None  # None: the caller's batch size
    reference: bool = False  # the framework's reference (the original on CPU)
    help: str = ""
    bench: dict = field(default_factory=dict)  # the bench's rows: name -> runner options on top of ``options``
    threads_option: str | None = None  # the runner option for its threads; None: it reads OMP_NUM_THREADS & co
    side_by_side: dict = field(default_factory=dict)  # runner options where workers share the cores (parity)
    heavy: bool = False  # by far the most work (the Keras engines): may take every core
    probe: Callable[[dict], str | None] | None = None  # why the runner cannot start here, asked before a worker

    @property
    def worker_env(self) -> dict:
        """A parity (or locate) worker's environment: CPU backends see no GPU."""
        return {**(CPU_ENV if self.device == "cpu" else QUIET_ENV), **self.env}

    @property
    def bench_env(self) -> dict:
        """A bench worker's: one process per framework serves both devices, alone on the machine."""
        return {**QUIET_ENV, **self.env}

    @property
    def process(self) -> str:
        """The worker process it runs in: "keras-tf", "torch", "onnxruntime"... One interpreter serves
        every backend of a name (with the same worker environment, in parity): ONNX Runtime's plain,
        tuned and batch-1 sessions share one, while each framework keeps a process of its own."""
        return self.label.split(":", 1)[0]

    def unavailable(self, gpu: bool = True) -> str | None:
        """Why this machine cannot run it (checked without importing the framework), or None."""
        if self.needs and importlib.util.find_spec(self.needs) is None:
            return f"{self.needs} is not installed"
        if self.device == "cuda":
            if not gpu:
                return "GPU runs turned off (--cpu-only)"
            from onnxparity.machine import no_gpu_reason

            if why := no_gpu_reason():
                return why
        return self.probe(self.options) if self.probe else None


KERAS_BENCH = {"keras.predict": {"mode": "predict"}, "keras.call": {"mode": "call"},
               "keras.tf_function": {"mode": "tf_function"}}
TORCH_BENCH = {"torch.eager": {"mode": "eager"}, "torch.compile": {"mode": "compile"}}
# The bench's ONNX Runtime rows per provider: "onnxruntime" is the toolkit's path (the tuned session;
# on CUDA with I/O binding and the provider's options named so the report shows them, both ORT's
# defaults), "onnxruntime.default" plain ORT on the file. The tuned CPU session is its own backend.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1"}
ORT_BENCH = {"CPUExecutionProvider": {"onnxruntime.default": {}},
             "CUDAExecutionProvider": {"onnxruntime": {"tuned": True, "provider_options": CUDA_OPTIONS, "io_binding": True},
                                       "onnxruntime.default": {}}}

# The originals: each framework's reference first, then its other engines and devices.
ORIGINALS = (
    Backend("keras-tf:cpu", "keras", "keras", "cpu", "cpu", {"KERAS_BACKEND": "tensorflow"}, {"device": "cpu"},
            needs="tensorflow", reference=True, help="the Keras model on TensorFlow's CPU (the reference)",
            bench=KERAS_BENCH, heavy=True),
    Backend("keras-torch:cpu", "keras", "keras-torch", "cpu", "cpu", {"KERAS_BACKEND": "torch"}, {"device": "cpu"},
            needs="torch", help="the same .keras file under Keras 3's torch backend", heavy=True),
    Backend("keras-tf:gpu", "keras", "keras", "cuda", "cuda", {"KERAS_BACKEND": "tensorflow"}, {"device": "cuda"},
            needs="tensorflow", help="the Keras model on TensorFlow's GPU", heavy=True),
    # On a GPU the bench runs Keras on its torch backend (the GPU machine has no TensorFlow).
    Backend("keras-torch:cuda", "keras", "keras-torch", "cuda", "cuda", {"KERAS_BACKEND": "torch"}, {"device": "cuda"},
            needs="torch", help="the .keras file under Keras on torch, on CUDA", bench=KERAS_BENCH, heavy=True),
    Backend("torch:cpu", "torch", "torch", "cpu", "cpu", {}, {"device": "cpu"}, needs="torch", reference=True,
            help="the PyTorch module in eager mode on the CPU (the reference)", bench=TORCH_BENCH),
    Backend("torch:cuda", "torch", "torch", "cuda", "cuda", {}, {"device": "cuda"}, needs="torch",
            help="the PyTorch module in eager mode on CUDA (TF32 off)", bench=TORCH_BENCH),
)

# Runtimes other than ONNX Runtime that read the ONNX file themselves.
ONNX_RUNTIMES = (
    Backend("openvino:cpu", "onnx", "openvino", "cpu", "cpu", {}, {"device": "cpu"}, needs="openvino",
            help="OpenVINO's CPU plugin on the file as it is (float32)", bench={"openvino": {}},
            threads_option="threads"),
)


def provider_device(provider: str) -> str:
    """The device kind an ORT provider runs on: "cpu", "cuda" (CUDA, TensorRT) or its own short name."""
    if provider == "CPUExecutionProvider":
        return "cpu"
    return "cuda" if provider in NVIDIA_PROVIDERS else short_provider(provider)


def _missing_provider(options: dict) -> str | None:
    """A provider the installed ONNX Runtime lacks: said before a worker starts."""
    from onnxparity.runners.sessions import resolve_providers

    try:
        resolve_providers(options["providers"])
    except BackendUnavailable as exc:
        return str(exc)
    return None


def onnxruntime_backends(providers: list[str], with_variants: bool = True) -> list[Backend]:
    """One backend per execution provider (plain ORT on the file, as deployed); with the CPU, the
    toolkit's tuned session and the plain session at batch size 1."""
    out = []
    ort = dict(runner="onnxruntime", needs="onnxruntime", threads_option="intra_op_threads",
               side_by_side={"spinning": False}, probe=_missing_provider)
    for provider in providers:
        device = provider_device(provider)
        out.append(Backend(f"onnxruntime:{short_provider(provider)}", "onnx", device=device,
                           tolerance="cpu" if device == "cpu" else "cuda", options={"providers": [provider]},
                           help=f"ONNX Runtime on {provider}, the file as it is",
                           bench=ORT_BENCH.get(provider, {}), **ort))
        if provider == "CPUExecutionProvider" and with_variants:
            out.append(Backend("onnxruntime:cpu:tuned", "onnx", device="cpu", tolerance="cpu",
                               options={"providers": [provider], "tuned": True},
                               bench={"onnxruntime": {}, "onnxruntime.options": {"rewrites": False}},
                               help="the toolkit's tuned CPU session (serve and bench): options and exact graph rewrites",
                               **ort))
            out.append(Backend("onnxruntime:cpu:b1", "onnx", device="cpu", tolerance="cpu",
                               options={"providers": [provider]}, batch_size=1,
                               help="plain ORT on the CPU, one input at a time (the dynamic batch axis at 1)", **ort))
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
    """A model's backends: its framework's originals (reference first), then ONNX Runtime's
    (``providers``), then the other runtimes on the ONNX file."""
    return [b for b in ORIGINALS if b.framework == framework] + onnxruntime_backends(providers) + list(ONNX_RUNTIMES)


def named(label: str, providers=None) -> Backend:
    """The backend with this label (among ``--providers``' backends, all by default)."""
    found = [b for b in (*ORIGINALS, *onnxruntime_backends(requested_providers(providers)), *ONNX_RUNTIMES)
             if b.label == label]
    if not found:
        raise KeyError(label)
    return found[0]


def reference_for(framework: str) -> Backend:
    """The backend that runs a framework's original as the reference (TensorFlow's Keras, eager PyTorch)."""
    return next(b for b in ORIGINALS if b.framework == framework and b.reference)


def onnx_runners() -> set[str]:
    """The runners that run the ONNX file (the other side of every comparison)."""
    return {b.runner for b in (*onnxruntime_backends(["CPUExecutionProvider"], False), *ONNX_RUNTIMES)}


def bench_backends() -> list[tuple[str, Backend]]:
    """Every bench row with its backend, on every device the bench knows (the natives' first)."""
    every = (*ORIGINALS, *onnxruntime_backends([provider_name(p) for p in DEFAULT_PROVIDERS]), *ONNX_RUNTIMES)
    return [(row, b) for b in every for row in b.bench]


def help_text() -> str:
    """The backends, one line each, for the CLI's help."""
    shown = (*ORIGINALS, *onnxruntime_backends(["CPUExecutionProvider"]))
    lines = [f"  {b.label:<22} {b.help}" for b in shown]
    lines.append("  onnxruntime:<provider> ONNX Runtime on any other execution provider it has (cuda, tensorrt...)")
    lines += [f"  {b.label:<22} {b.help}" for b in ONNX_RUNTIMES]
    return "\n".join(lines)
