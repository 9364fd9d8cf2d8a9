"""Progress bars: drawn on a terminal's stderr, silent otherwise, off when the CLI says so."""

from __future__ import annotations

import io
import os

import pytest

from onnxparity import progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a real one does."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def automatic(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    progress.configure(None)
    yield
    progress.configure(None)


def test_quiet_when_not_a_terminal(capsys):
    stream = io.StringIO()
    with progress.steps("parity backends", total=3, stream=stream) as bar:
        for _ in range(3):
            bar.advance(note="torch:cpu ok")
    assert list(progress.track([1, 2], "rounds", stream=stream)) == [1, 2]
    assert stream.getvalue() == ""
    assert capsys.readouterr() == ("", "")


def test_drawn_when_forced_and_counts_the_steps(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")
    stream = Terminal()
    seen = list(progress.track(range(4), "calibrating", stream=stream))
    assert seen == [0, 1, 2, 3]
    drawn = stream.getvalue()
    assert "calibrating" in drawn and "4/4" in drawn


def test_configure_false_wins_over_a_terminal(monkeypatch):
    import sys

    monkeypatch.setattr(sys, "stdout", Terminal())
    stream = Terminal()
    assert progress.active(stream)
    progress.configure(False)  # what the CLI does for --json
    assert not progress.active(stream)
    with progress.steps("bench", total=2, stream=stream) as bar:
        bar.advance()
    assert stream.getvalue() == ""


def test_cli_turns_progress_off_for_json(tmp_path):
    from onnxparity.cli import main

    assert main(["bench", str(tmp_path / "missing.onnx"), "--json", str(tmp_path / "b.json")]) == 2
    assert progress._enabled is False


@pytest.mark.slow
def test_bench_rounds_show_progress_on_stderr_only(torch_pair, tmp_path):
    import os
    import subprocess
    import sys

    _folder, good, _ = torch_pair
    args = [sys.executable, "-m", "onnxparity", "bench", str(good), "--batch-sizes", "1,4", "--rounds", "2",
            "--round-time", "0.02", "--warmup", "0.05", "--backends", "onnxruntime"]
    shown = subprocess.run(args, capture_output=True, text=True, timeout=300,
                           env={**os.environ, progress.ENV: "1"})
    assert shown.returncode == 0, shown.stderr
    assert "torch_net batch 1" in shown.stderr and "torch_net batch 4" in shown.stderr
    assert "torch_net batch" not in shown.stdout
    quiet = subprocess.run(args + ["--json", str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=300,
                           env={**os.environ, progress.ENV: ""})
    assert quiet.returncode == 0 and "torch_net batch" not in quiet.stderr


def test_output_to_a_device_or_fifo_is_written_in_place(tmp_path):
    """`--json /dev/null` must not replace the device with a plain file (the atomic rename would)."""
    import stat
    import threading

    from onnxparity._io import write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text(fifo, '{"results": []}\n')
    reader.join(10)
    assert got == ['{"results": []}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
