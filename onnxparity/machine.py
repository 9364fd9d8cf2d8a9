"""Facts about this machine that decide kernels, threads and devices: its CPU and its NVIDIA GPUs.

Everything here is read from Linux's files or a tool on PATH, never by importing a framework here
(torch is asked about CUDA in a child process, and only where the driver is present without its
tool), so the CLI, parity, bench and the ORT session code can all ask without a cost or an import loop.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import shutil
import subprocess
import sys

# The flags that decide which kernels MLAS, oneDNN and Inductor pick (quoted with every benchmark).
KERNEL_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "neon", "sve")
# The flags that give int8 dot products in one instruction (what ORT's int8 kernels want).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# Where hosts keep nvidia-smi when it is not on PATH (NVIDIA's container toolkit mounts it here).
NVIDIA_SMI_FALLBACKS = ("/usr/local/nvidia/bin/nvidia-smi", "/usr/bin/nvidia-smi", "/opt/nvidia/bin/nvidia-smi")
# The driver's device nodes and proc entries: present wherever a GPU is visible, whatever the tools.
DEVICE_NODES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia/gpus/*")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (``avx2``, ``avx512f``...) from /proc/cpuinfo; empty where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def kernel_flags() -> list[str]:
    """The kernel-deciding flags this CPU has, in a fixed order (for reports)."""
    return [f for f in KERNEL_FLAGS if f in cpu_flags()]


def vnni_flags(flags: frozenset[str] | set[str] | None = None) -> list[str]:
    """The int8 dot-product flags among ``flags`` (this CPU's by default), sorted; empty without VNNI."""
    flags = cpu_flags() if flags is None else flags
    return sorted(f for f in VNNI_FLAGS if f in flags)


def int8_kernels(flags: frozenset[str] | set[str] | None = None, machine: str | None = None) -> dict:
    """The integer matrix kernels ONNX Runtime's MLAS runs int8 MatMul and Conv with on a CPU with
    ``flags`` (this one's by default), and their multiply-adds per instruction against float32's FMA:
    why an int8 file's speed-up differs from one CPU to another.

    MLAS picks the best of its u8 x s8 QGEMM kernels the CPU has: AMX tiles; ``vpdpbusd`` (VNNI, on
    512- or 256-bit registers: 4 byte products summed into each 32-bit lane in one instruction); else
    ``vpmaddubsw`` + ``vpmaddwd`` + ``vpaddd`` (three instructions for the same, through 16-bit sums
    that can saturate, hence 7-bit weights there). float32 does 16 (AVX-512) or 8 (AVX2) per FMA.
    """
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return {"isa": machine, "kernel": "MLAS's kernels for this architecture", "int8_vs_fp32": None}
    fp32 = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    if "amx_int8" in flags:
        isa, kernel, per = "amx_int8", "AMX tiles (TMUL)", None
    elif "avx512_vnni" in flags:
        isa, kernel, per = "avx512_vnni", "AVX-512 VNNI: vpdpbusd, 64 u8 x s8 multiply-adds per instruction", 64
    elif "avx_vnni" in flags:
        isa, kernel, per = "avx_vnni", "AVX-VNNI: vpdpbusd on 256 bits, 32 multiply-adds per instruction", 32
    elif "avx512bw" in flags:
        isa, kernel, per = "avx512bw", ("AVX-512 without VNNI: vpmaddubsw + vpmaddwd + vpaddd, 64 multiply-adds "
                                        "per three instructions"), 64 / 3
    elif "avx2" in flags:
        isa, kernel, per = "avx2", ("AVX2 without VNNI: vpmaddubsw + vpmaddwd + vpaddd, 32 multiply-adds per three "
                                    "instructions"), 32 / 3
    else:
        isa, kernel, per = "sse", "SSE4.1 kernels", None
    return {"isa": isa, "kernel": kernel, "fp32_fma": f"{fp32} float32 multiply-adds per FMA",
            "int8_vs_fp32": None if per is None else round(per / fp32, 2)}


def nchwc_block(flags: frozenset[str] | None = None) -> int:
    """MLAS's NCHWc block for ``flags`` (this CPU's by default): 16 floats with AVX-512, 8 with
    AVX2, 0 where ORT has no NCHWc kernels."""
    if platform.machine().lower() not in ("x86_64", "amd64") and flags is None:
        return 0
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return 16
    if "avx2" in flags:
        return 8
    return 0


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Cores this process may run on: its CPU affinity with SMT siblings counted once, capped by
    a cgroup CPU quota (``docker --cpus``); ``os.cpu_count()`` where Linux's files are missing."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in allowed:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    count = len(cores)
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            count = min(count, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def find_nvidia_smi(fallbacks: tuple[str, ...] = NVIDIA_SMI_FALLBACKS) -> str | None:
    """``nvidia-smi`` on the PATH, else the first of ``fallbacks`` that is an executable file."""
    found = shutil.which("nvidia-smi")
    if found:
        return found
    return next((p for p in fallbacks if os.path.isfile(p) and os.access(p, os.X_OK)), None)


def query_nvidia_smi(exe: str) -> tuple[list[dict], str | None]:
    """Name, driver and memory of every GPU ``exe`` lists; the reason when it lists none."""
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed ({exc})"
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2], "source": exe})
    return gpus, None if gpus else f"{exe} lists no GPU ({(out.stderr or out.stdout).strip()[:120]})"


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
        return tuple(_process.call("onnxparity.machine:_torch_gpus_here", name="torch CUDA probe", timeout=120))
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
def nvidia_gpus() -> tuple[list[dict], str | None]:
    """NVIDIA GPUs here (name, driver, memory) and, when there are none, why: nvidia-smi (on the
    PATH or in :data:`NVIDIA_SMI_FALLBACKS`), else torch where the driver's device nodes exist."""
    exe = find_nvidia_smi()
    if exe is None:
        gpus, why = [], "no NVIDIA driver here (nvidia-smi not found on PATH or in /usr/local/nvidia/bin)"
    else:
        gpus, why = query_nvidia_smi(exe)
    if gpus:
        return gpus, None
    if not device_nodes_present():
        return [], why
    gpus, torch_why = torch_gpus()
    return (gpus, None) if gpus else ([], f"{why}; {torch_why}")


def no_gpu_reason() -> str | None:
    """Why no CUDA backend can run here (no NVIDIA GPU found), in one line; None when there is a GPU."""
    return nvidia_gpus()[1]
