"""Run one framework's work in a fresh interpreter of its own.

TensorFlow and PyTorch in one process fight over threads and GPU memory, and here importing
torchvision after TensorFlow crashes the process outright. So every step that needs a framework
while another may be loaded runs through :func:`call` / :class:`Worker` / :class:`Service`: a
child interpreter that imports only what its target needs, with its own environment
(``KERAS_BACKEND``, ``CUDA_VISIBLE_DEVICES``, set before it starts), polled so that a crash or a
hang becomes a :class:`WorkerError` carrying the end of the child's error output instead of taking
the caller down. A child killed by SIGKILL (what the kernel's OOM killer sends) is reported as
such, with the most memory it was seen to hold; ``max_rss`` stops a child whose resident memory
grows past it (:class:`MemoryWatch`).

The child is started as ``python -c`` running :func:`_child_main`, not through multiprocessing's
spawn, which re-imports the caller's ``__main__`` in every child: a plain script that calls
``onnxparity.parity.check(...)`` at top level (the README's example) would then run itself again
in each worker. The parent and the child talk over a socket pair wrapped as a multiprocessing
:class:`~multiprocessing.connection.Connection` (pickled messages). A child whose parent has gone
(killed outright, so it could not clean up) ends itself within half a second.
"""

from __future__ import annotations

import atexit
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any, Mapping

from onnxparity.errors import InputError, OnnxParityError, WorkerError, first_line

TAIL_CHARS = 2000
MEMORY_POLL_S = 0.1
STDOUT_ENV = "ONNXPARITY_WORKER_STDOUT"  # "1" in a worker's env: its stdout stays the parent's (training progress)
PARENT_POLL_S = 0.5
# The child's first statement: find this package where the parent found it, then take over.
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from onnxparity._process import _child_main; _child_main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
# Modules the user named (--import, or recorded in a file and allowed by onnxparity.trust): every model
# loader imports them first (:func:`import_requested`), here and in every child started after.
_IMPORTS: list[str] = []


def request_imports(modules, *, only: bool = False) -> None:
    """Have every model loaded from now on, here and in the workers, loaded after ``modules`` are
    imported (a custom Keras layer's module, the package that registers an ExportedProgram's classes).
    A name that is no module is a one-line error now, before any work. ``only``: these and no others
    (a process that serves one run after another, as Ray's workers do, keeps no earlier run's word)."""
    import importlib.util

    if only:
        _IMPORTS.clear()
    for module in modules or ():
        if module in _IMPORTS:
            continue
        if not all(part.isidentifier() for part in module.split(".")):
            raise InputError(f"--import {module!r}: not a module name (such as mypkg.layers)")
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError) as exc:
            raise InputError(f"--import {module}: cannot find it ({exc})") from None
        if found is None:
            raise InputError(f"--import {module}: no such module on the import path (the current folder and "
                             "PYTHONPATH)")
        _IMPORTS.append(module)


def requested_imports() -> tuple[str, ...]:
    return tuple(_IMPORTS)


def import_requested() -> None:
    """Import the requested modules that are not yet: called by every model loader before it loads."""
    for module in _IMPORTS:
        if module not in sys.modules:
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001 - whatever the user's module raises
                raise InputError(f"--import {module}: importing it failed ({first_line(exc)})") from None


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


def _child(conn, target: str, args: tuple, kwargs: dict) -> None:
    _answer(conn, lambda: _resolve(target)(*args, **kwargs))


def _serve(conn, target: str, args: tuple, kwargs: dict) -> None:
    """A :class:`Service`'s child: build the object, then answer method calls until told to stop."""
    holder: list = []
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


def _watch_parent(parent: int) -> None:
    """End this child once its parent is gone (it was killed and could not stop its workers)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _child_main() -> None:
    """The child interpreter's entry point: ``argv`` = [root, fd of its socket end, parent pid]."""
    from onnxparity import _quiet

    _quiet.install()  # the tail of a failed worker's output shows its error, not TensorFlow's start-up
    conn = Connection(int(sys.argv[2]))
    parent = int(sys.argv[3])
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="onnxparity-parent-watch").start()
    try:
        kind, target, args, kwargs, path, imports = conn.recv()
        sys.path[:] = path  # as multiprocessing's spawn does: the parent's import path
        _IMPORTS[:] = imports
        sys.argv[1:] = []
        (_serve if kind == "serve" else _child)(conn, target, args, kwargs)
    except (EOFError, OSError):
        pass  # the parent went away before or while we answered
    finally:
        conn.close()
    _exit_now()


def _exit_now() -> None:
    """End the child without tearing the interpreter down, as multiprocessing's forked children do:
    its answer is sent, and unloading TensorFlow or torch module by module only costs CPU
    (TensorFlow even crashes on the way out). Its own workers are stopped, and logs and standard
    streams flushed, first."""
    import logging

    _stop_all()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


class MemoryWatch:
    """A child's resident memory, read from ``/proc`` as the parent polls: its peak (``VmHWM``, which
    the kernel keeps, so a spike between two reads still counts) and, with ``limit`` bytes, a kill
    when it holds more (``VmRSS``).

    Resident memory, not an address-space limit (``RLIMIT_AS``): ONNX Runtime, PyTorch and
    TensorFlow reserve far more virtual memory than they touch (arenas, thread stacks, CUDA's
    mappings), so an address-space cap refuses them at start-up long before they hold too much.
    The price: a child may overshoot the limit by what it allocates within one poll.
    """

    def __init__(self, pid: int, limit: int | None = None):
        self.pid, self.limit = pid, limit
        self.peak = 0  # bytes; 0 where /proc is not readable
        self.over: int | None = None  # the resident bytes it was stopped at
        self._next = 0.0

    def poll(self) -> bool:
        """Read the child's memory (at most every MEMORY_POLL_S); True when it is over the limit."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + MEMORY_POLL_S
        rss, hwm = _status_kib(self.pid, "VmRSS", "VmHWM")
        self.peak = max(self.peak, hwm * 1024)
        if self.limit is not None and rss * 1024 > self.limit:
            self.over = rss * 1024
            return True
        return False

    def killed(self, name: str, code: int | None) -> str:
        """What to say of a child that ended without answering, by its exit status."""
        if self.over is not None:
            return f"{name}: stopped, holding {_size(self.over)} (over --max-memory {_size(self.limit)})"
        peak = f", peak memory {_size(self.peak)}" if self.peak else ""
        if code == -9:
            return f"{name}: killed (signal 9: out of memory?){peak}"
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"{name}: worker process crashed ({how}){peak}"


def _status_kib(pid: int, *fields: str) -> list[int]:
    values = dict.fromkeys(fields, 0)
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return list(values.values())


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _receive(conn, proc, name: str, deadline: float | None, tail, timeout: float | None,
             memory: MemoryWatch | None = None) -> Any:
    """Wait for the child's answer; a crash or an overrun deadline becomes a :class:`WorkerError`."""
    memory = memory or MemoryWatch(proc.pid)
    while True:
        if conn.poll(0.05):
            try:
                status, payload = conn.recv()
            except (EOFError, OSError):
                break
            if status == "ok":
                return payload
            if status == "input-error":
                raise InputError(payload)
            raise WorkerError(f"{name}: {payload}", tail(), raised=True)
        if not proc.is_alive() and not conn.poll(0):
            break
        if memory.poll():
            proc.kill()
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            proc.join(timeout=5)
            raise WorkerError(f"{name}: timed out after {timeout:.0f} s", tail())
    proc.join(timeout=5)
    raise WorkerError(memory.killed(name, proc.exitcode), tail())


class _Process:
    """The few things the parent asks of a child process (after multiprocessing.Process)."""

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        if self.is_alive():
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()


_LIVE: "weakref.WeakSet[_Child]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Whatever is still running when the caller exits is stopped, as daemon processes were."""
    for child in list(_LIVE):
        child._proc.kill()
        child._reap()


class _Child:
    """A child interpreter running ``kind`` ("call" or "serve") of ``target``; its stderr kept for the tail."""

    def __init__(self, kind: str, target: str, args: tuple, kwargs: dict, name: str | None,
                 env: Mapping[str, str] | None, timeout: float | None, max_rss: int | None = None):
        self.name = name or target
        self.timeout = timeout
        fd, self._stderr = tempfile.mkstemp(prefix="onnxparity-worker-", suffix=".log")
        mine, theirs = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _PACKAGE_ROOT, str(theirs.fileno()), str(os.getpid())],
                # stdout too goes to the log (a library's banner must not land in the command's output),
                # unless the caller shows it (training progress).
                stdin=subprocess.DEVNULL, stderr=fd, pass_fds=(theirs.fileno(),),
                stdout=None if dict(env or {}).get(STDOUT_ENV) == "1" else fd,
                env={**os.environ, **dict(env or {})})
        except BaseException:
            mine.close()
            Path(self._stderr).unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
            theirs.close()
        self._conn = Connection(mine.detach())
        self._proc = _Process(popen)
        self.memory = MemoryWatch(popen.pid, max_rss)
        self._started = time.monotonic()
        _LIVE.add(self)
        try:
            self._conn.send((kind, target, args, kwargs, list(sys.path), list(_IMPORTS)))
        except (OSError, ValueError):
            pass  # the child died at once: _receive reports the crash and its output

    def _answered_or_over(self, deadline: float | None) -> bool:
        """True once the child has answered or died, or is past ``deadline`` (monotonic) or its memory
        limit (then it is killed here)."""
        if self._conn.poll(0) or not self._proc.is_alive():
            return True
        if self.memory.poll():
            self._proc.kill()
            self._proc.join(timeout=5)
            return True
        return deadline is not None and time.monotonic() > deadline

    def tail(self) -> str:
        try:
            return Path(self._stderr).read_text(errors="replace")[-TAIL_CHARS:].strip()
        except OSError:
            return ""

    def _reap(self, grace: float = 5) -> None:
        """Make sure the child has ended (killing it after ``grace`` seconds) and clean up."""
        self._proc.join(timeout=grace)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        self._conn.close()
        Path(self._stderr).unlink(missing_ok=True)
        _LIVE.discard(self)


class Worker(_Child):
    """A running child process; :meth:`result` waits for it and returns or raises. ``max_rss``: bytes of
    resident memory past which the child is stopped (:class:`MemoryWatch`)."""

    def __init__(self, target: str, *args: Any, name: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, max_rss: int | None = None, **kwargs: Any):
        super().__init__("call", target, args, kwargs, name, env, timeout, max_rss)

    def done(self) -> bool:
        """True once the child has answered, exited, overrun its timeout or its memory limit (:meth:`result`
        is then quick)."""
        return self._answered_or_over(None if self.timeout is None else self._started + self.timeout)

    def stop(self) -> None:
        """Kill the child now, abandoning its result (a caller that gives up on the others)."""
        if self._proc.is_alive():
            self._proc.kill()
        self._reap()

    def result(self) -> Any:
        try:
            return self._wait()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (onnxparity._signals): no grace period
            self.stop()
            raise
        finally:
            self._reap()

    def _wait(self) -> Any:
        deadline = None if self.timeout is None else self._started + self.timeout
        return _receive(self._conn, self._proc, self.name, deadline, self.tail, self.timeout, self.memory)


class Service(_Child):
    """A long-lived child process holding one object built by ``target(*args, **kwargs)``.

    :meth:`call` runs one of the object's methods in the child and returns its (picklable) result,
    one call at a time, so several frameworks can stay loaded side by side, each in its own
    process, and be driven in turn (the bench interleaves backends this way). A crash or a call
    that overruns its timeout ends the child and raises :class:`WorkerError` with the end of its
    error output; the service is then closed and every later call raises at once. A method that
    raises is reported the same way but leaves the child running.

    To drive several services at once (the parity matrix), :meth:`send` a call, poll :meth:`done`
    and :meth:`receive` its answer. With ``wait=False`` the constructor returns at once and the
    child's first answer (``None``, or the error that building the object raised) is received
    before the first call's: the child starts while the caller goes on.
    """

    def __init__(self, target: str, *args: Any, name: str | None = None, env: Mapping[str, str] | None = None,
                 timeout: float | None = None, wait: bool = True, max_rss: int | None = None, **kwargs: Any):
        super().__init__("serve", target, args, kwargs, name, env, timeout, max_rss)
        self.closed = False
        self._deadline = None if timeout is None else self._started + timeout  # of the answer awaited next
        self._building = True  # the child's first answer (None, or the error building the object raised) is to come
        self._failure: BaseException | None = None  # that error, met by done(), for receive() to raise
        if wait:
            try:
                self._built()  # the object is built (or the error is raised) before the first call
            except BaseException:
                self.close()
                raise

    def done(self) -> bool:
        """True once the next answer is in, or the child has died or overrun (:meth:`receive` is then quick)."""
        if self._failure is not None or self.closed:
            return True
        if self._building and self._conn.poll(0):
            try:
                self._built()
            except (WorkerError, InputError) as exc:
                self._failure = exc
                return True
        return self._answered_or_over(self._deadline)

    def receive(self) -> Any:
        """The next answer: the result of the oldest call not received yet."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        if self.closed:
            raise WorkerError(f"{self.name}: the worker process is no longer running")
        if self._building:
            self._built()
        return self._answer()

    def _built(self) -> None:
        self._building = False
        self._answer()

    def _answer(self) -> Any:
        timeout = None if self._deadline is None else max(0.0, self._deadline - self._started)
        try:
            return _receive(self._conn, self._proc, self.name, self._deadline, self.tail, timeout, self.memory)
        except WorkerError:
            if not self._proc.is_alive():  # crashed or killed for its timeout; a raising method keeps it
                self.close()
            raise

    def send(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Start ``obj.method(*args, **kwargs)`` in the child; ``timeout`` (the service's by default)
        counts from now. A child that is gone is reported by :meth:`receive`."""
        if self.closed:
            self._failure = WorkerError(f"{self.name}: the worker process is no longer running")
            return
        try:
            self._conn.send((method, args, kwargs))
        except (OSError, ValueError):
            self._failure = WorkerError(f"{self.name}: the worker process is no longer running", self.tail())
            self.close()
            return
        timeout = self.timeout if timeout is None else timeout
        self._started = time.monotonic()
        self._deadline = None if timeout is None else self._started + timeout

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``obj.method(*args, **kwargs)`` in the child; ``timeout`` overrides the service's."""
        self.send(method, *args, timeout=timeout, **kwargs)
        return self.receive()

    @property
    def running(self) -> bool:
        """False once the child has crashed, overrun a call's timeout or been closed."""
        return not self.closed and self._proc.is_alive()

    def close(self) -> None:
        """Ask the child to stop, then make sure it has (idempotent)."""
        if not self.closed:
            self.closed = True
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
        self._reap()

    def stop(self) -> None:
        """Kill the child now, abandoning what it was doing."""
        self.closed = True
        self._proc.kill()
        self._reap()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, exc_type, *exc_info: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.closed = True
            self._proc.kill()
        self.close()


class Calls:
    """A :class:`Service`'s object that runs any ``"module:function"`` it is given: a warm worker,
    whose imports stay loaded from one call to the next."""

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        return _resolve(target)(*args, **kwargs)


def wait(services: list[Service], timeout: float) -> list[Service]:
    """The services whose next answer is in (or that died or overran), waiting up to ``timeout``
    seconds for one without spinning."""
    deadline = time.monotonic() + timeout
    while True:
        done = [s for s in services if s.done()]  # a child's first answer alone (its object built) is not one
        left = deadline - time.monotonic()
        if done or left <= 0:
            return done
        wait_for([s._conn for s in services if not s.closed], left)


def call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``"module:function"`` in a fresh process and return its result (see :class:`Worker`)."""
    return Worker(target, *args, **kwargs).result()
