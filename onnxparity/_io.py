"""Small helpers for files and model outputs that every layer shares: atomic output (a failed or
interrupted write never leaves a half-written artifact), sha256 of files and weight arrays, and a
model's outputs flattened to a list.

Every file the toolkit writes goes through :func:`atomic_path` or :func:`atomic_dir`. When the
disk is full or a file-size limit is reached (ENOSPC, EDQUOT, EFBIG), the write ends in an
:class:`~onnxparity.errors.OutputError` naming the file (one line, exit 2), the half-written
temporary file is removed and the previous file stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from onnxparity.errors import OutputError

HASH_CHUNK = 1 << 20
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; move it over ``dest`` only if the block succeeds.

    The temporary file lives in the destination's folder so the final ``os.replace`` is atomic.
    ``suffix`` keeps extensions that writers insist on (Keras wants ``.keras``).
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_file() and not dest.is_dir():
        # /dev/null, /dev/stdout, a FIFO: written in place; replacing one would put a plain file there.
        yield dest
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _no_room_named(dest, tmp_path):
            yield tmp_path
        if tmp_path.is_file():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; match a plain open()
        os.replace(tmp_path, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; it replaces ``dest`` only if the block succeeds."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with _no_room_named(dest, tmp):
            yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; match a plain mkdir()
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / "x")
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _no_room_named(dest: Path, written: Path) -> Iterator[None]:
    """Turn a write that failed for lack of room into one line naming ``dest``."""
    try:
        yield
    except Exception as exc:
        reason = no_room(exc, written)
        if reason is None:
            raise
        raise OutputError(f"cannot write {dest}: {reason}") from None


def no_room(exc: BaseException, written: Path | None = None) -> str | None:
    """Why a write failed for lack of room (``os.strerror``), or None when it did not.

    An OSError of ENOSPC, EDQUOT or EFBIG anywhere in the exception's chain; else, for a library
    that drops the error number (``torch.save`` to a path raises a bare RuntimeError), what was
    ``written`` (a file or folder) having reached the file-size limit, or a full filesystem.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in NO_ROOM:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    if written is None or not written.exists():
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    files = [written] if written.is_file() else [p for p in written.rglob("*") if p.is_file()]
    if limit != resource.RLIM_INFINITY and any(f.stat().st_size >= limit for f in files):
        return os.strerror(errno.EFBIG)
    fs = os.statvfs(written if written.is_dir() else written.parent)
    if (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) * fs.f_frsize < HASH_CHUNK:
        return os.strerror(errno.ENOSPC)
    return None


def scratch_array(shape: tuple[int, ...], dtype):
    """An empty array mapped from an unlinked temporary file in ``TMPDIR``: on disk, not in memory,
    and gone with the array (no file is left behind, even on a crash). The file's blocks are
    reserved first, so a full disk is one line naming the folder now, not a SIGBUS on a later write."""
    import numpy as np

    dtype = np.dtype(dtype)
    nbytes = max(1, math.prod(shape) * dtype.itemsize)
    folder = tempfile.gettempdir()
    fs = os.statvfs(folder)
    try:
        if fs.f_bavail * fs.f_frsize < nbytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        f = tempfile.TemporaryFile(prefix="onnxparity-samples-", dir=folder)
        with f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, nbytes)
            else:  # macOS, Windows: a sparse file, the free space checked above
                f.truncate(nbytes)
            return np.memmap(f, dtype, "r+", shape=tuple(shape))  # the mapping keeps the file open
    except OSError as exc:
        if exc.errno not in NO_ROOM:
            raise
        raise OutputError(f"cannot write {nbytes / 2**30:.2f} GiB of samples to {folder}: "
                          f"{os.strerror(exc.errno)}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(dest: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def sha256_path(path: str | Path) -> str:
    """sha256 of a file; of a folder (a SavedModel), of its files' relative names and bytes in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_arrays(arrays) -> str:
    """sha256 of a live model's weights: each array's bytes, in the model's own order."""
    import numpy as np

    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def output_fields(out) -> dict | None:
    """A model's outputs by name where it names them: a dict, or a dataclass (a Hugging Face
    ``ModelOutput``, a class registered with torch's pytree), its fields in order, unset ones left out;
    None for anything else."""
    import dataclasses

    if isinstance(out, dict):
        return out
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out) if getattr(out, f.name) is not None}
    return None


def flatten_outputs(out) -> list:
    """A model's outputs as a list: dicts and dataclasses in their own order (not sorted, as tf.nest
    would), lists and tuples in order; anything else is one output."""
    fields = output_fields(out)
    if fields is not None:
        return [t for k in fields for t in flatten_outputs(fields[k])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in flatten_outputs(item)]
    return [out]
