"""The CUDA paths' fixes that can be checked without a GPU: detection fallbacks, the import order
of CUDA libraries and ONNX Runtime, TF32, Keras' torch device, what workers send and print,
Keras without TensorFlow in the bench."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from onnxparity import _process, gpu, machine
from onnxparity.errors import InputError, WorkerError

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={k: v for k, v in full.items() if v is not None})


# -- GPU detection ---------------------------------------------------------------------------
def test_nvidia_smi_is_found_in_the_fallback_folder_when_not_on_path(tmp_path, monkeypatch):
    # A stand-in for the driver's tool (there is no GPU here), in a folder that is not on the PATH.
    smi = tmp_path / "nvidia" / "bin" / "nvidia-smi"
    smi.parent.mkdir(parents=True)
    smi.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.86.15, 143771 MiB'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert machine.find_nvidia_smi(()) is None
    assert machine.find_nvidia_smi(("/nonexistent/nvidia-smi", str(smi))) == str(smi)
    gpus, why = machine.query_nvidia_smi(str(smi))
    assert why is None
    assert gpus == [{"name": "NVIDIA H200", "driver": "570.86.15", "memory": "143771 MiB", "source": str(smi)}]
    assert "/usr/local/nvidia/bin/nvidia-smi" in machine.NVIDIA_SMI_FALLBACKS


def test_torch_is_asked_when_nvidia_smi_is_missing():
    gpus, why = machine._torch_gpus_here()
    import torch

    if torch.cuda.is_available():
        assert gpus and why is None
    else:
        assert gpus == [] and "torch" in why and "CUDA" in why


def test_gpu_detection_gives_a_reason_or_gpus():
    from onnxparity.machine import nvidia_gpus

    gpus, why = nvidia_gpus()
    assert bool(gpus) != bool(why)


# -- CUDA libraries before ONNX Runtime --------------------------------------------------------
def test_which_providers_need_the_cuda_libraries():
    assert gpu.wants_gpu_provider(["cuda"]) and gpu.wants_gpu_provider(["TensorrtExecutionProvider"])
    assert gpu.wants_gpu_provider([("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"])
    assert not gpu.wants_gpu_provider(["cpu", "CPUExecutionProvider"]) and not gpu.wants_gpu_provider(None)


def test_preload_imports_torch_before_onnxruntime():
    result = _python("""
        import sys
        from onnxparity.gpu import preload_cuda_libraries
        assert 'onnxruntime' not in sys.modules and 'torch' not in sys.modules
        preload_cuda_libraries()
        names = list(sys.modules)
        print(names.index('torch') < names.index('onnxruntime'))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_resolve_providers_prepares_onnxruntime_only_for_a_gpu_provider_on_a_gpu_machine():
    from onnxparity.machine import nvidia_gpus

    result = _python("""
        import sys
        from onnxparity.gpu import prepare_onnxruntime
        print(prepare_onnxruntime(['cpu']), prepare_onnxruntime(['cuda']), 'torch' in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    expected = "False True True" if nvidia_gpus()[0] else "False False False"
    assert result.stdout.strip() == expected


# -- PyTorch and Keras on CUDA ------------------------------------------------------------------
def test_tf32_is_pinned_off():
    import torch

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.allow_tf32 = True
    try:
        mode = gpu.pin_full_precision(torch)
        assert mode["tf32"] is False and mode["cudnn_allow_tf32"] is False and mode["matmul_allow_tf32"] is False
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.slow
def test_torch_runner_sends_a_plain_str_version(torch_checkpoint):
    from onnxparity.runners import open_runner

    details = open_runner(torch_checkpoint).details()
    assert type(details["torch"]) is str
    assert b"TorchVersion" not in pickle.dumps(details)  # unpickling it would import torch in the parent


def test_keras_on_torch_refuses_a_device_other_than_the_one_it_was_imported_with():
    # Keras imported on torch without KERAS_TORCH_DEVICE: its device is the CPU here.
    result = _python("""
        import keras
        from onnxparity.errors import InputError
        from onnxparity.models import ModelRef
        from onnxparity.models.torch_net import SPEC
        from onnxparity.runners.keras import KerasTorchRunner, keras_torch_device
        import dataclasses
        spec = dataclasses.replace(SPEC, framework="keras", layout="NHWC", input_shape=(28, 28, 1))
        print(keras_torch_device())
        try:
            KerasTorchRunner(ModelRef("keras", "none.keras", spec), device="cuda")
        except InputError as exc:
            print("refused:", exc)
    """, env={"KERAS_BACKEND": "torch", "KERAS_TORCH_DEVICE": None, "CUDA_VISIBLE_DEVICES": "-1"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "cpu"
    assert lines[-1].startswith("refused: Keras on torch was loaded for cpu, not cuda")


# -- workers ------------------------------------------------------------------------------------
def test_worker_stdout_stays_out_of_the_command_output(capfd):
    _process.call("builtins:print", "EP Error: falling back to CPUExecutionProvider")
    out, err = capfd.readouterr()
    assert "EP Error" not in out + err
    _process.call("builtins:print", "training progress", env={_process.STDOUT_ENV: "1"})
    out, _err = capfd.readouterr()
    assert "training progress" in out


def test_worker_stdout_is_in_the_error_tail():
    with pytest.raises(WorkerError) as info:
        _process.call("tests.helpers:print_then_fail", "EP Error: banner before the crash")
    assert "EP Error: banner before the crash" in info.value.output_tail


def test_bench_keras_without_its_engine_is_unavailable_not_a_traceback():
    # KERAS_BACKEND names an engine that is not installed, as TensorFlow is missing on the GPU machine.
    engine = next(e for e in ("jax", "openvino", "tensorflow") if _missing(e))
    with _process.Service("onnxparity.bench.worker:BenchWorker", env={"KERAS_BACKEND": engine}, timeout=120) as svc:
        opened = svc.call("open", "k", "keras.call", "unused.keras", "cpu")
    assert opened["status"] == "unavailable"
    assert opened["reason"].startswith(f"cannot import keras (KERAS_BACKEND={engine}): ")
    assert engine in opened["reason"]


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def test_bench_timeout_option(tmp_path):
    from onnxparity.bench import BenchConfig
    from onnxparity.cli import main

    with pytest.raises(InputError):
        BenchConfig(timeout_s=0)
    with pytest.raises(SystemExit) as stopped:  # refused while parsing, one line (cli._args)
        main(["bench", str(tmp_path / "none.onnx"), "--timeout", "0"])
    assert stopped.value.code == 2


@pytest.mark.slow
def test_torch_on_cuda_runs_without_tf32(torch_checkpoint):
    from onnxparity.machine import nvidia_gpus

    if not nvidia_gpus()[0]:
        pytest.skip(f"no GPU: {nvidia_gpus()[1]}")
    details = _process.call("tests.helpers:runner_details", str(torch_checkpoint), device="cuda")
    assert details["precision"] == {"tf32": False, "cudnn_allow_tf32": False, "matmul_allow_tf32": False}
