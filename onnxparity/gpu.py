"""Settings for NVIDIA GPUs that parity, the runners, the bench and serving share.

It imports no framework at import time. It loads torch's CUDA libraries before ONNX Runtime's
first import when a CUDA or TensorRT provider is wanted, and pins PyTorch's float32 maths to full
precision for parity runs. Whether there is a GPU at all is a fact of the machine:
:func:`onnxparity.machine.nvidia_gpus`.
"""

from __future__ import annotations

import sys

from onnxparity.machine import nvidia_gpus

# ONNX Runtime's execution providers that run on an NVIDIA GPU (every other list of them reads this one).
NVIDIA_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


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
