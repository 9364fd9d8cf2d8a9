"""Ctrl-C, SIGTERM and plain scripts: what a user or a CI runner does to a running command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from onnxparity import _process

pytestmark = pytest.mark.slow


def start_cli(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "onnxparity", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended early ({proc.returncode}): {proc.stderr.read()}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def epochs_done(folder: Path) -> int:
    try:
        return json.loads((folder / "history.json").read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_during_torch_training_keeps_finished_epochs_and_resume_finishes_exactly(tmp_path, torch_checkpoint):
    out = tmp_path / "torch"
    proc = start_cli("train", "torch", "--out", out, "--epochs", 3)
    wait_for(lambda: epochs_done(out) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    kept = epochs_done(out)
    assert kept in (1, 2) and f"interrupted after {kept} of 3 epochs" in one_line(err) and "--resume" in err
    resumed = subprocess.run([sys.executable, "-m", "onnxparity", "train", "torch", "--out", out, "--resume", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["epochs_done"] == 3  # the plan, not 40 more
    # The fixture is the same 3 epochs, uninterrupted: the weights are identical.
    mine = torch.load(out / "model.pth", weights_only=True)
    straight = torch.load(torch_checkpoint / "model.pth", weights_only=True)
    for name in straight:
        torch.testing.assert_close(mine[name], straight[name], rtol=0, atol=0)


def test_ctrl_c_during_keras_training_keeps_finished_epochs(tmp_path):
    out = tmp_path / "keras"
    proc = start_cli("train", "keras", "--out", out, "--epochs", 3)
    wait_for(lambda: epochs_done(out) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    kept = epochs_done(out)
    assert kept in (1, 2) and f"interrupted after {kept} of 3 epochs" in one_line(err)
    assert (out / "model.keras").is_file() and (out / "spec.json").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no half-written temporary files
    summary = _process.call("onnxparity.models:train", "keras", out, resume=True, verbose=0)
    assert summary["epochs_done"] == 3


def test_sigterm_to_check_stops_workers_and_removes_temporary_files(tmp_path, torch_checkpoint, torch_onnx):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = start_cli("check", torch_checkpoint, torch_onnx, "--cpu-only", env={"TMPDIR": str(tmp)})
    wait_for(lambda: any(tmp.glob("onnxparity-inputs-*")) and len(children(proc.pid)) >= 2, proc)
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert one_line(err).startswith("onnxparity: terminated")
    assert list(tmp.glob("onnxparity-*")) == []  # no inputs folder, no worker logs
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if running(pid)]


def test_the_readme_example_works_in_a_plain_script(tmp_path, torch_checkpoint, torch_onnx):
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(f"""\
        from onnxparity.parity import check
        result = check({str(torch_checkpoint)!r}, {str(torch_onnx)!r}, n=20, gpu=False, providers="cpu")
        print("passed:", result.passed)
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "passed: True" in done.stdout and "bootstrapping" not in done.stderr


def _maps_hold(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _under_way(kind: str, tmp: Path, proc: subprocess.Popen):
    """When the command is in the middle of its work: its temporary folder made, its workers started,
    or (convert, which works in its own process) PyTorch loaded."""
    if kind == "convert":
        return lambda: _maps_hold(proc.pid, "libtorch_cpu")
    prefix = {"quantize": "onnxparity-quantize-", "locate": "onnxparity-locate-", "migrate": "onnxparity-migrate-",
              "bench": "onnxparity-bench-"}[kind]
    need = 0 if kind == "quantize" else 1
    return lambda: any(tmp.glob(prefix + "*")) and len(children(proc.pid)) >= need


@pytest.mark.parametrize("kind, sig", [("convert", signal.SIGTERM), ("quantize", signal.SIGINT),
                                       ("locate", signal.SIGTERM), ("migrate", signal.SIGTERM),
                                       ("bench", signal.SIGINT)])
def test_a_signal_ends_each_command_cleanly(kind, sig, tmp_path, torch_checkpoint, torch_onnx):
    """SIGTERM and Ctrl-C end every command alike: workers stopped, temporary files removed, one line."""
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    args = {"convert": ["convert", torch_checkpoint, "-o", out / "model.onnx"],
            "quantize": ["quantize", torch_onnx, "--int8", "-o", out / "model.int8.onnx"],
            "locate": ["locate", torch_checkpoint, torch_onnx, "--n", "2000", "--batch-size", "8"],
            "migrate": ["migrate", torch_checkpoint, "--to", "keras", "-o", out / "keras"],
            "bench": ["bench", torch_onnx, "--batch-sizes", "1", "--round-time", "5"]}[kind]
    proc = start_cli(*args, env={"TMPDIR": str(tmp)})
    left_by_onnxruntime = set(tmp.glob(".ses"))  # ONNX Runtime's own session-id file, not ours
    wait_for(_under_way(kind, tmp, proc), proc)
    workers = children(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert one_line(err).startswith("onnxparity: terminated" if sig == signal.SIGTERM else "onnxparity: interrupted")
    assert set(tmp.iterdir()) - left_by_onnxruntime - set(tmp.glob(".ses")) == set()  # no temporary files
    assert list(out.iterdir()) == []  # nothing half-written
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if running(pid)]


def test_ctrl_c_drains_the_server_and_exits_0(tmp_path, torch_onnx):
    """serve ends on Ctrl-C as on SIGTERM (tests/test_serve_overload.py): a drain, one line, exit 0, no files."""
    import re

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "onnxparity", "serve", str(torch_onnx), "--port", "0", "--choose-s",
                             "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    deadline = time.monotonic() + 60
    lines = []
    while not lines or lines[-1].strip() != "onnxparity serve: ready":
        assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
        lines.append(proc.stdout.readline())
    at_start = set(tmp.iterdir())
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "", err
    assert re.fullmatch(r"onnxparity serve: SIGINT: draining ended, 0 of 0 requests in flight finished\n", rest), rest
    assert set(tmp.iterdir()) == at_start
