"""Keep TensorFlow's start-up chatter from the user's terminal.

TensorFlow's C++ side writes to file descriptor 2 while it is imported ("All log messages before
absl::InitializeLog()", oneDNN, "Could not find cuda drivers", cuInit errors), before any
setting can reach it: ``TF_CPP_MIN_LOG_LEVEL`` only filters what comes after. :func:`install`
adds an import hook that runs TensorFlow's own import (and its first look for devices) with
descriptor 2 pointed at /dev/null; a failing import still raises its Python exception, and ``-v``
(:func:`install` not called) shows all.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Iterator

QUIET_PACKAGE = "tensorflow"


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point descriptor 2 at /dev/null for the block (C and C++ writes included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: "_QuietFinder"):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)  # its one job is done
        with stderr_to_devnull():
            self._loader.exec_module(module)
            # Looking for devices once (cuInit, "UNKNOWN ERROR (303)" where no GPU is usable) is
            # the rest of TensorFlow's start-up chatter; later messages obey TF_CPP_MIN_LOG_LEVEL.
            module.config.list_physical_devices()


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of QUIET_PACKAGE (``find_spec`` alone, as an
    "is it installed?" check, imports nothing and leaves the hook in place)."""

    def __init__(self):
        self._asking = False

    def find_spec(self, name, path=None, target=None):
        if name != QUIET_PACKAGE or self._asking:
            return None
        self._asking = True  # the real finders answer
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._asking = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


def install() -> None:
    """Silence the import of TensorFlow in this process (no-op once it is imported, or installed)."""
    if any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    if QUIET_PACKAGE not in sys.modules:
        sys.meta_path.insert(0, _QuietFinder())
