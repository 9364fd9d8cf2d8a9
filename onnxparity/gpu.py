"""Facts and settings about NVIDIA GPUs that parity, the runners, the bench and serving share.

A leaf module: it imports no framework at import time. It finds the GPUs (``nvidia-smi`` on the
PATH, then where container hosts keep it, then torch), loads torch's CUDA libraries before ONNX
Runtime's first import when a CUDA or TensorRT provider is wanted, and pins PyTorch's float32
maths to full precision for parity runs.
"""

from __future__ import annotations

import functools
import glob
import sys

from onnxparity.machine import nvidia_gpus

# The driver's device nodes and proc entries: present wherever a GPU is visible, whatever the tools.
DEVICE_NODES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia/gpus/*")
# ONNX Runtime's execution providers that run on an NVIDIA GPU (every other list of them reads this one).
NVIDIA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def device_nodes_present(patterns: tuple[str, ...] = DEVICE_NODES) -> bool:
    return any(glob.glob(p) for p in patterns)


def torch_gpus() -> tuple[list[dict], str | None]:
    """The GPUs torch sees (``torch.cuda.is_available()``), asked in a child process unless torch is
    already loaded here: importing torch into a parent that may load TensorFlow later is not safe."""
    if "torch" in sys.modules:
        return _torch_gpus_here()
    from onnxparity import _process
    from onnxparity.errors import OnnxParityError

    try:
        return tuple(_process.call("onnxparity.gpu:_torch_gpus_here", name="torch CUDA probe", timeout=120))
    except OnnxParityError as exc:
        return [], f"torch could not be asked about CUDA ({exc})"


def _torch_gpus_here() -> tuple[list[dict], str | None]:
    try:
        import torch
    except ImportError:
        return [], "no nvidia-smi, and torch is not installed to ask"
    if torch.version.cuda is None or not torch.cuda.is_available():
        return [], f"no nvidia-smi, and torch {torch.__version__} sees no CUDA device"
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append({"name": props.name, "driver": None, "memory": f"{props.total_memory // 2**20} MiB",
                     "source": "torch.cuda"})
    return gpus, None


@functools.lru_cache(maxsize=1)
def detect() -> tuple[list[dict], str | None]:
    """NVIDIA GPUs here and, when there are none, why: nvidia-smi (on the PATH or in
    :data:`onnxparity.machine.NVIDIA_SMI_FALLBACKS`), else torch where the driver's device nodes exist."""
    gpus, why = nvidia_gpus()
    if gpus:
        return gpus, None
    if not device_nodes_present():
        return [], why
    gpus, torch_why = torch_gpus()
    return (gpus, None) if gpus else ([], f"{why}; {torch_why}")


def wants_gpu_provider(providers) -> bool:
    """Whether a list of ORT providers (full names, their short forms such as ``"cuda"``, or
    ``(name, options)`` pairs) asks for CUDA or TensorRT."""
    wanted = {n.lower() for p in NVIDIA_PROVIDERS for n in (p, p.removesuffix("ExecutionProvider"))}
    return any((p[0] if isinstance(p, tuple) else str(p)).lower() in wanted for p in providers or ())


def preload_cuda_libraries() -> None:
    """Load the CUDA libraries (cudart, cuBLAS, cuDNN) that torch's nvidia-* wheels bring, then let
    ORT preload its own: ORT's GPU wheel does not ship them (../shared/gpu/README.md), and a build
    that registers its CUDA provider at import must find them by then. torch comes first, so this
    is right only before the process's first ``import onnxruntime``; later it is still harmless.
    Best effort; where the libraries are missing, the session's start says so."""
    try:
        import torch  # noqa: F401  (its import loads the libraries from the nvidia-* wheels)
    except ImportError:
        pass
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)  # ORT 1.21+: the same from the wheels it knows
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001
            pass


def prepare_onnxruntime(providers) -> bool:
    """Before a process's first ``import onnxruntime``: when ``providers`` asks for CUDA or TensorRT
    and a GPU is here, preload the CUDA libraries. Returns whether it did."""
    if "onnxruntime" in sys.modules or not wants_gpu_provider(providers):
        return False
    from onnxparity.parity.environment import nvidia_gpus

    if not nvidia_gpus()[0]:
        return False
    preload_cuda_libraries()
    return True


def pin_full_precision(torch) -> dict:
    """Turn TF32 off for PyTorch's CUDA matmuls and cuDNN convolutions (cuDNN allows it by default,
    which rounds float32 inputs to 10 mantissa bits): parity compares float32 with float32.
    Returns the mode, for the report."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return {"tf32": False, "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}
