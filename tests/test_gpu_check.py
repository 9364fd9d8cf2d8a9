"""scripts/gpu_check.sh --dry-run: the GPU run's inputs, files and plan, checked here without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def dry_run(folder, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", str(folder)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHON": sys.executable})


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_a_missing_folder_is_an_input_error():
    res = dry_run("/nonexistent/runs/gpu")
    assert res.returncode == 2
    assert res.stderr.strip() == ("gpu_check: error: /nonexistent/runs/gpu: no such folder "
                                  "(make it with: onnxparity run --out /nonexistent/runs/gpu)")


def test_missing_model_files_are_named(tmp_path):
    res = dry_run(tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    missing = sorted(line.split()[1] for line in res.stdout.splitlines() if line.startswith("MISSING"))
    assert missing == sorted(str(tmp_path / f) for f in ("keras.onnx", "keras/spec.json", "torch.onnx",
                                                          "torch/spec.json"))
    assert "OK       onnxparity check --require-devices" in res.stdout  # the commands it runs are checked too
    assert res.stdout.rstrip().endswith("dry run: NOT ready")


@pytest.mark.slow
def test_a_model_of_the_wrong_framework_is_caught(torch_pair, tmp_path):
    folder, good, _ = torch_pair
    for name in ("torch", "keras"):  # the PyTorch model where the Keras one should be
        shutil.copytree(folder, tmp_path / name)
        shutil.copy(good, tmp_path / f"{name}.onnx")
    res = dry_run(tmp_path)
    assert res.returncode == 2
    assert "OK       torch: model.pth and torch.onnx (torch_net" in res.stdout
    assert "BAD      keras: expected a keras model, found torch" in res.stdout


@pytest.mark.slow
def test_a_ready_folder_passes_the_dry_run_and_fails_loudly_without_a_gpu(keras_checkpoint, torch_checkpoint, tmp_path):
    from onnxparity.parity.pipeline import train_and_convert

    for name, ckpt in (("keras", keras_checkpoint), ("torch", torch_checkpoint)):
        shutil.copytree(ckpt, tmp_path / name)
    train_and_convert(tmp_path, say=lambda message: None)  # reuses both checkpoints, converts both
    res = dry_run(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK       keras: model.keras and keras.onnx (keras_cnn" in res.stdout
    assert "OK       time: steps" in res.stdout
    assert res.stdout.rstrip().endswith("dry run: ready")
    # The run itself, here without a GPU: every CUDA step fails loudly instead of passing empty.
    from onnxparity.machine import nvidia_gpus

    if nvidia_gpus()[0]:
        return  # there it is the real run, minutes long: scripts/gpu_check.sh is run by hand
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=600,
                         cwd=ROOT, env={**os.environ, "PYTHON": sys.executable, "OUT": str(out),
                                        "GPU_CHECK_WHEELS": str(tmp_path / "no-wheels")})
    assert res.returncode == 1, res.stdout[-3000:]
    summary = res.stdout[res.stdout.index("=== summary"):]
    for step, verdict in (("install", "ok"), ("environment", "ok"), ("parity", "FAILED (1)"),
                          ("bench", "FAILED (1)"), ("serve", "FAILED (1)"), ("quantize", "FAILED (1)")):
        assert f"  {step:<12} {verdict}" in summary, summary
    assert "onnxruntime" in res.stdout and "build info:" in res.stdout  # get_build_info() printed
    assert "REQUIRED torch_net: required device cuda" in res.stdout
    assert {p.name for p in out.iterdir()} == {"gpu_check.log", "parity-torch.json", "parity-keras.json",
                                                "parity-torch.html", "parity-keras.html", "bench-gpu.json",
                                                "gpu-outputs.tar"}
