"""What production does to the tools: a worker killed for memory, a memory cap, a full disk.

Workers are real child interpreters (``onnxparity._process``) that really allocate and really die;
the full disk is a real file-size limit (RLIMIT_FSIZE) on the command's process.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from onnxparity import _process
from onnxparity.errors import WorkerError

ROOT = Path(__file__).resolve().parents[1]


def test_a_worker_killed_by_sigkill_is_reported_as_out_of_memory_with_its_peak():
    with pytest.raises(WorkerError) as caught:
        _process.call("tests.helpers:hold_then_die", 200, signal.SIGKILL, name="onnxruntime:cpu", timeout=60)
    message = str(caught.value)
    assert message.startswith("onnxruntime:cpu: killed (signal 9: out of memory?), peak memory "), message
    peak_mib = float(message.rsplit(" ", 2)[1]) * (1024 if message.endswith("GiB") else 1)
    assert 200 <= peak_mib < 1000, message  # the 200 MiB it held, and the interpreter's own


def test_another_signal_is_a_crash():
    with pytest.raises(WorkerError, match=r"^torch:cpu: worker process crashed \(killed by signal 11\)"):
        _process.call("tests.helpers:hold_then_die", 1, signal.SIGSEGV, name="torch:cpu", timeout=60)


def test_a_worker_over_max_memory_is_stopped_and_says_so():
    with pytest.raises(WorkerError, match=r"^grower: stopped, holding \d+ MiB \(over --max-memory 300 MiB\)"):
        _process.call("tests.helpers:grow", 20, 100, name="grower", timeout=60, max_rss=300 * 2**20)
    assert _process.call("tests.helpers:grow", 20, 3, name="small", timeout=60, max_rss=300 * 2**20) == 3


def test_memory_sizes_parse():
    import argparse

    from onnxparity.cli._args import memory_size

    assert memory_size("4G") == 4 * 2**30 and memory_size("512M") == 512 * 2**20 and memory_size("2GiB") == 2 * 2**30
    for bad in ("x", "100K", "0", "-1G", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            memory_size(bad)


# -- a full disk: every kind of file, written under a real file-size limit -------------------------------
def _under_limit(kib: int, *args: str) -> subprocess.CompletedProcess:
    """The command run with RLIMIT_FSIZE at ``kib`` KiB: a write past it fails with EFBIG, as on a full disk."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (kib * 1024, kib * 1024))

    return subprocess.run([sys.executable, "-m", "onnxparity", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, preexec_fn=limit)


def _tiny_mnist(path: Path) -> Path:
    from onnxparity.data import load_digits

    train, test = load_digits(None, "train"), load_digits(None, "test")
    np.savez(path, x_train=train.images[:64], y_train=train.labels[:64], x_test=test.images[:64],
             y_test=test.labels[:64])
    return path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ONNX", "variant", "checkpoint", "HTML", "Triton repository"])  # JSON: below
def test_a_full_disk_names_the_file_and_keeps_the_previous_one(kind, torch_checkpoint, torch_onnx, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    check = ["check", torch_checkpoint, torch_onnx, "--cpu-only", "--n", "4", "--no-synthetic"]
    if kind == "checkpoint":
        shutil.copytree(torch_checkpoint, out / "ck")
        epochs = json.loads((out / "ck" / "history.json").read_text())["epochs_done"]
        target, args = out / "ck" / "model.pth", ["train", "torch", "--out", out / "ck", "--resume", "--epochs",
                                                  epochs + 1, "--data", _tiny_mnist(tmp_path / "mnist.npz")]
    elif kind == "Triton repository":
        target = out / "repo"
        assert _under_limit(10**6, "export-triton", torch_onnx, target).returncode == 0
        args = ["export-triton", torch_onnx, target]
    else:
        target = out / {"ONNX": "model.onnx", "variant": "model.fp16.onnx", "HTML": "r.html"}[kind]
        target.write_text("previous")
        args = {"ONNX": ["convert", torch_checkpoint, "-o", target], "variant": ["quantize", torch_onnx, "--fp16", "-o",
                                                                                 target],
                "HTML": [*check, "--html", target]}[kind]
    before = _snapshot(out)
    # Each limit lets the command's own temporary files through and stops the file under test.
    r = _under_limit({"variant": 40, "HTML": 14}.get(kind, 64), *args)
    assert r.returncode == 2, r.stdout + r.stderr
    # The variant is built in a temporary folder, judged, then copied: the limit stops it there.
    where = target if kind != "variant" else Path(tempfile.gettempdir()) / "onnxparity-quantize-"
    assert r.stderr.startswith(f"onnxparity: error: cannot write {where}") and r.stderr.endswith(
        ": File too large\n") and r.stderr.count("\n") == 1, r.stderr
    assert _snapshot(out) == before  # the previous file as it was, no half-written temporary file beside it


def _can_mount_tmpfs() -> str | None:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return "needs root and unshare(1) to mount a small tmpfs in a mount namespace of its own"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs here ({probe.stderr.strip()[:100]})"


@pytest.mark.slow
@pytest.mark.skipif(_can_mount_tmpfs() is not None, reason=str(_can_mount_tmpfs()))
def test_a_full_tmpfs_is_no_space_left_and_keeps_the_previous_report(torch_checkpoint, torch_onnx, tmp_path):
    """ENOSPC for real: the report goes to a 16 KiB tmpfs (mounted in a namespace that ends with the command)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    command = " ".join(shlex.quote(str(a)) for a in [
        sys.executable, "-m", "onnxparity", "check", torch_checkpoint, torch_onnx, "--cpu-only", "--n", "4",
        "--no-synthetic", "--json", disk / "r.json"])
    script = (f"mount -t tmpfs -o size=16k tmpfs {disk} && echo previous > {disk}/r.json && "
              f"{{ {command} >/dev/null; echo rc=$?; }} && ls -A {disk} && cat {disk}/r.json")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.stdout.splitlines() == ["rc=2", "r.json", "previous"], r.stdout + r.stderr
    assert r.stderr == f"onnxparity: error: cannot write {disk / 'r.json'}: No space left on device\n", r.stderr


@pytest.mark.slow
def test_check_stops_workers_over_max_memory_and_says_the_check_is_incomplete(torch_checkpoint, torch_onnx):
    r = subprocess.run([sys.executable, "-m", "onnxparity", "check", torch_checkpoint, torch_onnx, "--cpu-only",
                        "--n", "4", "--no-synthetic", "--max-memory", "64M"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 3, r.stdout + r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("onnxparity: error: incomplete: ") and "(over --max-memory 64 MiB)" in error, r.stderr
    assert "torch:cpu" in r.stdout and "failed" in r.stdout  # the table says which backends did not finish
