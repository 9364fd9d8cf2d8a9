"""Run one framework's work in a fresh interpreter of its own.

TensorFlow and PyTorch in one process fight over threads and GPU memory, and here importing
torchvision after TensorFlow crashes the process outright. So every step that needs a framework
while another may be loaded runs through :func:`start` / :func:`call`: a spawned child that
imports only what its target needs, with its own environment (``KERAS_BACKEND``,
``CUDA_VISIBLE_DEVICES``), polled so that a crash or a hang becomes a :class:`WorkerError` carrying
the end of the child's error output instead of taking the caller down.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

from onnxparity.errors import InputError, OnnxParityError, WorkerError

TAIL_CHARS = 2000


def _child(conn, target: str, args: tuple, kwargs: dict, env: Mapping[str, str], stderr_path: str) -> None:
    fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.environ.update(env)
    try:
        module, _, func = target.partition(":")
        result = getattr(importlib.import_module(module), func)(*args, **kwargs)
        conn.send(("ok", result))
    except OnnxParityError as exc:
        conn.send(("input-error" if isinstance(exc, InputError) else "error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        traceback.print_exc()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class Worker:
    """A running child process; :meth:`result` waits for it and returns or raises."""

    def __init__(self, target: str, *args: Any, name: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, **kwargs: Any):
        self.name = name or target
        self.timeout = timeout
        ctx = multiprocessing.get_context("spawn")
        fd, self._stderr = tempfile.mkstemp(prefix="onnxparity-worker-", suffix=".log")
        os.close(fd)
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child, args=(child_conn, target, args, kwargs, dict(env or {}), self._stderr), daemon=True
        )
        self._started = time.monotonic()
        self._proc.start()
        child_conn.close()

    def tail(self) -> str:
        try:
            return Path(self._stderr).read_text(errors="replace")[-TAIL_CHARS:].strip()
        except OSError:
            return ""

    def result(self) -> Any:
        try:
            return self._wait()
        finally:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()
            self._conn.close()
            Path(self._stderr).unlink(missing_ok=True)

    def _wait(self) -> Any:
        while True:
            if self._conn.poll(0.05):
                try:
                    status, payload = self._conn.recv()
                except EOFError:
                    break
                if status == "ok":
                    return payload
                if status == "input-error":
                    raise InputError(payload)
                raise WorkerError(f"{self.name}: {payload}", self.tail())
            if not self._proc.is_alive() and not self._conn.poll(0):
                break
            if self.timeout is not None and time.monotonic() - self._started > self.timeout:
                self._proc.kill()
                raise WorkerError(f"{self.name}: timed out after {self.timeout:.0f} s", self.tail())
        self._proc.join(timeout=5)
        code = self._proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        raise WorkerError(f"{self.name}: worker process crashed ({how})", self.tail())


def call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``"module:function"`` in a fresh process and return its result (see :class:`Worker`)."""
    return Worker(target, *args, **kwargs).result()
