"""SIGTERM handled like Ctrl-C, and short stretches that a signal must not cut in half.

A CI timeout or ``kill`` sends SIGTERM, whose default action ends the process on the spot: no
``finally`` runs, so workers keep running and temporary files stay behind. :func:`install` turns
SIGTERM into :class:`Terminated`, a :class:`KeyboardInterrupt`, so every clean-up path written for
Ctrl-C (stopping workers, removing temporary folders, keeping finished epochs) serves both.

A signal that arrives while a module is being imported is acted on once the import is done: an
exception raised inside a C extension's initialization (ONNX Runtime's, NumPy's) is printed as a
traceback and replaced by a bare "ImportError: initialization failed", so the clean ending would
be lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

RETRY_S = 0.05  # how soon a signal that came during an import is looked at again


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; the CLI exits 143 (128 + 15) after cleaning up."""

    exit_code = 128 + signal.SIGTERM


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _on_signal(signum, frame) -> None:
    if _importing(frame):
        timer = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Raise :class:`Terminated` on SIGTERM and KeyboardInterrupt on SIGINT, after any import under way
    (main thread only, where Python runs signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)


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
