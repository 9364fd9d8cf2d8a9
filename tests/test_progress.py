"""Progress bars: drawn on a terminal's stderr, silent otherwise, off when the CLI says so."""

from __future__ import annotations

import io

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
