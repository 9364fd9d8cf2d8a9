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
STDOUT_ENV = "ONNXPARITY_WORKER_STDOUT"  # "1" in a worker's env: its stdout stays the parent's (training progress)


def _setup_child(env: Mapping[str, str], stderr_path: str) -> None:
    """The child's stderr, and its stdout unless the caller wants it shown, go to the log file whose
    end a failure reports: a library's banner (ORT's "EP Error ... Falling back") must not land in
    the command's own output. ``ONNXPARITY_WORKER_STDOUT=1`` in ``env`` keeps stdout."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    if env.get(STDOUT_ENV) != "1":
        os.dup2(fd, 1)
    os.close(fd)
    os.environ.update(env)


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _answer(conn, fn, *args: Any, **kwargs: Any) -> None:
    """Run ``fn`` and send ("ok", result) or the error, as the parent's :func:`_receive` expects."""
    try:
        result = fn(*args, **kwargs)
        conn.send(("ok", result))
    except OnnxParityError as exc:
        conn.send(("input-error" if isinstance(exc, InputError) else "error", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        traceback.print_exc()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _child(conn, target: str, args: tuple, kwargs: dict, env: Mapping[str, str], stderr_path: str) -> None:
    _setup_child(env, stderr_path)
    try:
        _answer(conn, lambda: _resolve(target)(*args, **kwargs))
    finally:
        conn.close()


def _serve(conn, target: str, args: tuple, kwargs: dict, env: Mapping[str, str], stderr_path: str) -> None:
    """A :class:`Service`'s child: build the object, then answer method calls until told to stop."""
    _setup_child(env, stderr_path)
    holder: list = []
    try:
        _answer(conn, lambda: holder.append(_resolve(target)(*args, **kwargs)))
        while holder:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message is None:  # close()
                break
            method, call_args, call_kwargs = message
            _answer(conn, lambda: getattr(holder[0], method)(*call_args, **call_kwargs))
    finally:
        conn.close()


def _receive(conn, proc, name: str, deadline: float | None, tail, timeout: float | None) -> Any:
    """Wait for the child's answer; a crash or an overrun deadline becomes a :class:`WorkerError`."""
    while True:
        if conn.poll(0.05):
            try:
                status, payload = conn.recv()
            except EOFError:
                break
            if status == "ok":
                return payload
            if status == "input-error":
                raise InputError(payload)
            raise WorkerError(f"{name}: {payload}", tail())
        if not proc.is_alive() and not conn.poll(0):
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            proc.join(timeout=5)
            raise WorkerError(f"{name}: timed out after {timeout:.0f} s", tail())
    proc.join(timeout=5)
    code = proc.exitcode
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
    raise WorkerError(f"{name}: worker process crashed ({how})", tail())


class _Child:
    """A spawned child running ``child(conn, target, ...)``, its stderr kept in a file for the tail."""

    def __init__(self, child, target: str, args: tuple, kwargs: dict, name: str | None,
                 env: Mapping[str, str] | None, timeout: float | None, duplex: bool):
        self.name = name or target
        self.timeout = timeout
        ctx = multiprocessing.get_context("spawn")
        fd, self._stderr = tempfile.mkstemp(prefix="onnxparity-worker-", suffix=".log")
        os.close(fd)
        self._conn, child_conn = ctx.Pipe(duplex=duplex)
        self._proc = ctx.Process(
            target=child, args=(child_conn, target, args, kwargs, dict(env or {}), self._stderr), daemon=True
        )
        self._started = time.monotonic()
        self._proc.start()
        child_conn.close()

    def tail(self) -> str:
        try:
            return Path(self._stderr).read_text(errors="replace")[-TAIL_CHARS:].strip()
        except OSError:
            return ""

    def _reap(self) -> None:
        """Make sure the child has ended (killing it after a grace period) and clean up."""
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()
        Path(self._stderr).unlink(missing_ok=True)


class Worker(_Child):
    """A running child process; :meth:`result` waits for it and returns or raises."""

    def __init__(self, target: str, *args: Any, name: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, **kwargs: Any):
        super().__init__(_child, target, args, kwargs, name, env, timeout, duplex=False)

    def done(self) -> bool:
        """True once the child has answered, exited or overrun its timeout (:meth:`result` is then quick)."""
        if self._conn.poll(0) or not self._proc.is_alive():
            return True
        return self.timeout is not None and time.monotonic() - self._started > self.timeout

    def stop(self) -> None:
        """Kill the child now, abandoning its result (a caller that gives up on the others)."""
        if self._proc.is_alive():
            self._proc.kill()
        self._reap()

    def result(self) -> Any:
        try:
            return self._wait()
        finally:
            self._reap()

    def _wait(self) -> Any:
        deadline = None if self.timeout is None else self._started + self.timeout
        return _receive(self._conn, self._proc, self.name, deadline, self.tail, self.timeout)


class Service(_Child):
    """A long-lived child process holding one object built by ``target(*args, **kwargs)``.

    :meth:`call` runs one of the object's methods in the child and returns its (picklable) result,
    one call at a time, so several frameworks can stay loaded side by side, each in its own
    process, and be driven in turn (the bench interleaves backends this way). A crash or a call
    that overruns its timeout ends the child and raises :class:`WorkerError` with the end of its
    error output; the service is then closed and every later call raises at once. A method that
    raises is reported the same way but leaves the child running.
    """

    def __init__(self, target: str, *args: Any, name: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, **kwargs: Any):
        super().__init__(_serve, target, args, kwargs, name, env, timeout, duplex=True)
        self._closed = False
        try:
            self._await(timeout)  # the object is built (or the error is raised) before the first call
        except BaseException:
            self.close()
            raise

    def _await(self, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return _receive(self._conn, self._proc, self.name, deadline, self.tail, timeout)
        except WorkerError:
            if not self._proc.is_alive():  # crashed or killed for its timeout; a raising method keeps it
                self.close()
            raise

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``obj.method(*args, **kwargs)`` in the child; ``timeout`` overrides the service's."""
        if self._closed:
            raise WorkerError(f"{self.name}: the worker process is no longer running")
        try:
            self._conn.send((method, args, kwargs))
        except (OSError, ValueError):
            self._closed = True
            raise WorkerError(f"{self.name}: the worker process is no longer running", self.tail()) from None
        return self._await(self.timeout if timeout is None else timeout)

    def close(self) -> None:
        """Ask the child to stop, then make sure it has (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
        self._reap()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``"module:function"`` in a fresh process and return its result (see :class:`Worker`)."""
    return Worker(target, *args, **kwargs).result()
