"""Progress bars for long steps (parity workers, bench rounds, calibration, locate), on a terminal only.

Built on rich (Keras already depends on it, so it is installed wherever Keras is). A bar shows
only when both stdout and stderr are terminals and nothing turned progress off: the CLI turns it
off for ``--json`` and ``-v``, and ``ONNXPARITY_PROGRESS=0`` does so anywhere (``=1`` forces it
on, for a terminal that does not say it is one). It draws on stderr and vanishes when done, so
stdout keeps only the command's own output. Without rich, or off, every call is a no-op::

    from onnxparity import progress

    with progress.steps("calibrating", total=len(batches)) as bar:
        for batch in batches:
            ...
            bar.advance(note=f"batch {i}")

    for node in progress.track(nodes, "locating"):
        ...
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Iterable, Iterator, TypeVar

ENV = "ONNXPARITY_PROGRESS"
T = TypeVar("T")

_enabled: bool | None = None  # set by configure(); None: decide from the terminal


def configure(enabled: bool | None) -> None:
    """``False`` turns progress off for this process (``--json``), ``True`` on, ``None`` back to automatic."""
    global _enabled
    _enabled = enabled


def active(stream: IO | None = None) -> bool:
    """Whether a bar would show now."""
    forced = os.environ.get(ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if _enabled is not None:
        return _enabled
    streams = (sys.stdout, stream or sys.stderr)
    return all(getattr(s, "isatty", lambda: False)() for s in streams)


class Steps:
    """One task's bar: :meth:`advance` by a step (or more), with an optional note of what is on."""

    def __init__(self, bar=None, task=None, description: str = ""):
        self._bar, self._task, self._description = bar, task, description

    def advance(self, n: float = 1, note: str | None = None) -> None:
        if self._bar is None:
            return
        description = f"{self._description}: {note}" if note else self._description
        self._bar.update(self._task, advance=n, description=description)

    def note(self, note: str) -> None:
        """Say what is on without counting a step."""
        self.advance(0, note)

    def total(self, total: float | None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total)


@contextlib.contextmanager
def steps(description: str, total: float | None = None, *, stream: IO | None = None) -> Iterator[Steps]:
    """A bar for ``total`` steps (None: a spinner), drawn on ``stream`` (stderr) while the block runs."""
    if not active(stream):
        yield Steps()
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
            TimeElapsedColumn
    except ImportError:
        yield Steps()
        return
    console = Console(file=stream or sys.stderr, force_terminal=True if os.environ.get(ENV) == "1" else None)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield Steps(bar, bar.add_task(description, total=total), description)


def track(items: Iterable[T], description: str, total: float | None = None, *,
          stream: IO | None = None) -> Iterator[T]:
    """``items`` one by one, a step each."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with steps(description, total, stream=stream) as bar:
        for item in items:
            yield item
            bar.advance()
