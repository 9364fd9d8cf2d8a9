"""SIGTERM handled like Ctrl-C, and short stretches that a signal must not cut in half.

A CI timeout or ``kill`` sends SIGTERM, whose default action ends the process on the spot: no
``finally`` runs, so workers keep running and temporary files stay behind. :func:`install` turns
SIGTERM into :class:`Terminated`, a :class:`KeyboardInterrupt`, so every clean-up path written for
Ctrl-C (stopping workers, removing temporary folders, keeping finished epochs) serves both.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; the CLI exits 143 (128 + 15) after cleaning up."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def install() -> None:
    """Raise :class:`Terminated` on SIGTERM (main thread only, where Python runs signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on the first that came.

    For writing a checkpoint's files as one step: an interrupt between the weights and the file
    that says how many epochs they hold would make ``--resume`` repeat or skip an epoch.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if pending:
        handler = previous[pending[0]]
        if callable(handler):
            handler(pending[0], None)
        elif handler == signal.SIG_DFL:
            if pending[0] == signal.SIGINT:
                raise KeyboardInterrupt
            signal.raise_signal(pending[0])
