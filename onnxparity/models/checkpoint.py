"""Checkpoints saved at the end of every epoch, so an interrupted training keeps what it finished.

Each epoch's files (weights, optimizer state, ``spec.json``, ``history.json``) are written
atomically and as one step that Ctrl-C or SIGTERM cannot cut in half (:func:`onnxparity._signals.deferred`),
so ``history.json``'s ``epochs_done`` always tells how many epochs the weights beside it hold.
``epochs_planned`` remembers the goal: ``--resume`` without ``--epochs`` finishes an interrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from onnxparity import _signals
from onnxparity._io import write_text
from onnxparity.errors import InputError
from onnxparity.spec import ModelSpec

HISTORY_FILE = "history.json"


def check_out(out: Path) -> None:
    """The checkpoint folder may be new or a folder, not a file (said before any work)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; --out takes a checkpoint folder")


def start(out: Path, weights_file: str, resume: bool, epochs: int | None, default_epochs: int) -> tuple[int, int]:
    """(epochs already done, epochs to run now), checked before any framework loads.

    Resuming without ``epochs`` finishes an interrupted run's plan; after a finished run it
    trains ``default_epochs`` more.
    """
    check_out(out)
    if not resume:
        return 0, epochs or default_epochs
    if not (out / weights_file).is_file():
        raise InputError(f"{out / weights_file}: no such file, so nothing to resume")
    try:
        history = json.loads((out / HISTORY_FILE).read_text())
        done = int(history.get("epochs_done", 0))
        planned = int(history.get("epochs_planned", done))
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{out / HISTORY_FILE}: missing or unreadable, so the epochs done are unknown") from None
    if epochs is None and done < planned:
        return done, planned - done
    return done, epochs or default_epochs


def save_epoch(out: Path, write_weights: Callable[[], None], spec: ModelSpec, summary: dict) -> None:
    """Write one finished epoch's checkpoint: weights (by ``write_weights``), spec, then history."""
    with _signals.deferred():
        out.mkdir(parents=True, exist_ok=True)
        write_weights()
        spec.save(out)
        write_text(out / HISTORY_FILE, json.dumps(summary, indent=2) + "\n")


def interrupted(exc: KeyboardInterrupt, out: Path, framework: str, done: int, planned: int) -> KeyboardInterrupt:
    """The same interrupt, saying what was kept (the CLI prints it on one line)."""
    if done == 0:
        return type(exc)("before the first epoch ended; nothing was saved")
    return type(exc)(f"after {done} of {planned} epochs; {out} holds them "
                     f"(`onnxparity train {framework} --out {out} --resume` continues)")
