"""Inputs the user gives (``--inputs``): an ``.npz``/``.npy`` of arrays, or a folder of images.

- **Arrays**: one array per input name, already in the model's form; an optional ``labels`` array
  gives accuracy. A ``.npy`` is a one-input model's.
- **Image files**: PNG/JPEG of any size, resized to the image input's HxW, then preprocessed by
  the spec like digits.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from onnxparity.errors import InputError, first_line
from onnxparity.inputs.samples import GIVEN, IMAGE, Inputs, row_blocks, rows_array, take_rows, unlabelled
from onnxparity.signature import Signature
from onnxparity.spec import ModelSpec

LABELS = "labels"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
NOT_ARRAYS = (OSError, ValueError, EOFError, zipfile.BadZipFile)  # what np.load raises for a file that is not one


def load_arrays(path: str | Path, signature: Signature | None) -> Inputs:
    """``--inputs FILE.npz`` (one array per input name) or ``FILE.npy`` (a one-input model's)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            if signature is not None and len(signature.inputs) != 1:
                raise InputError(f"{path}: one array, but the model has {len(signature.inputs)} inputs; "
                                 "give an .npz with one array per input name")
            name = signature.inputs[0].name if signature else "input"
            try:
                loaded = np.load(path, mmap_mode="r", allow_pickle=False)  # mapped: read a block at a time
            except ValueError:  # not mappable (objects, a truncated file): NumPy's own reading says why
                loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.ndarray):  # an .npz archive under a .npy name
                loaded.close()
                raise InputError(f"{path}: an .npz archive, not a .npy array; name it .npz")
            arrays = {name: loaded}
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: _member(z, k) for k in z.files}
    except InputError:
        raise
    except NOT_ARRAYS as exc:
        raise InputError(f"{path}: not a .npz or .npy file of arrays ({first_line(exc, 120, with_type=False)})") from None
    labels = arrays.pop(LABELS, None) if signature is None or LABELS not in signature.input_names else None
    source = str(path)
    if signature is not None:
        names = signature.input_names
        if not set(names) & set(arrays) and len(arrays) == len(names) > 1:  # other names: matched by order
            source += " (arrays matched to inputs by order: " + ", ".join(f"{a} -> {n}" for a, n in zip(arrays, names)) + ")"
            arrays = dict(zip(names, arrays.values()))
        arrays = check_arrays(arrays, signature, str(path))
    scalars = [k for k, a in arrays.items() if a.ndim == 0]
    if scalars:
        raise InputError(f"{path}: {scalars[0]!r} is a single value, not an array of samples")
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise InputError(f"{path}: the arrays hold {'no arrays' if not n else f'different numbers of samples ({sorted(n)})'}")
    (count,) = n
    if count == 0:
        raise InputError(f"{path}: no samples")
    if labels is not None and not (labels.dtype.kind in "iub" or labels.dtype.kind == "f" and np.isfinite(
            labels).all() and (labels == np.rint(labels)).all()):
        raise InputError(f"{path}: labels must be whole numbers (class indices), not {labels.dtype} values")
    labels = unlabelled(count) if labels is None else np.asarray(labels, np.int64).reshape(-1)
    if len(labels) != count:
        raise InputError(f"{path}: {len(labels)} labels for {count} samples")
    return Inputs(labels, (GIVEN,) * count, source, arrays=arrays)


def check_arrays(arrays: Mapping[str, np.ndarray], signature: Signature, what: str) -> dict[str, np.ndarray]:
    """Given arrays, checked against the signature: every input present, shapes that fit, dtypes cast."""
    missing = [n for n in signature.input_names if n not in arrays]
    if missing:
        raise InputError(f"{what}: no array for input {', '.join(map(repr, missing))} "
                         f"(it holds {', '.join(map(repr, arrays)) or 'nothing'})")
    out = {}
    for t in signature.inputs:
        a = np.asarray(arrays[t.name])
        want = t.shape if t.batched else (None, *t.shape)  # a leading axis of samples
        if a.ndim != len(want) or any(isinstance(d, int) and d != s for d, s in zip(want[1:], a.shape[1:])):
            raise InputError(f"{what}: {t.name} has shape {list(a.shape)}; the model takes "
                             f"[{', '.join(str(d) for d in t.shape)}]" + ("" if t.batched else " per sample"))
        if t.is_float != (a.dtype.kind == "f"):
            raise InputError(f"{what}: {t.name} holds {a.dtype}; the model takes {t.dtype}")
        if t.int_range is not None and a.size and a.dtype.kind in "iu" and (a.min() < t.int_range[0] or
                                                                             a.max() >= t.int_range[1]):
            lo, hi = t.int_range
            raise InputError(f"{what}: {t.name} holds ids from {a.min()} to {a.max()}, outside the {hi - lo} rows "
                             f"[{lo}, {hi}) of the table the model indexes with them")
        out[t.name] = a if a.dtype == t.dtype and a.flags.c_contiguous else take_rows(a, dtype=t.dtype)
    return out


def _member(z, key: str) -> np.ndarray:
    """One array of an ``.npz``, read straight into :func:`rows_array` a block at a time (a large one on disk)."""
    member = z.zip.getinfo(key + ".npy" if key + ".npy" in z.zip.namelist() else key)
    with z.zip.open(member) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        if fortran_order or dtype.hasobject or not shape or 0 in shape:
            return z[key]  # as NumPy reads it (and refuses pickled objects)
        nbytes = math.prod(shape) * dtype.itemsize
        if member.file_size - f.tell() < nbytes:  # before making room for what is not there
            raise ValueError(f"{key}: the archive holds fewer values than its header's shape {list(shape)}")
        out = rows_array(shape, dtype)
        for rows in row_blocks(shape[0], out[:1].nbytes, release=(out,)):
            f.readinto(memoryview(out[rows]).cast("B"))
    return out


def load_image_folder(folder: str | Path, spec: ModelSpec | None) -> Inputs:
    """``--inputs FOLDER``: every PNG/JPEG in it, resized to the image input's HxW, channels as it takes."""
    from onnxparity.data.images import read_resized

    folder = Path(folder).expanduser()
    size = spec.image_size if spec is not None else None
    if size is None:
        raise InputError(f"{folder}: image files need a model whose spec describes an image input "
                         "(layout, shape, preprocessing); give arrays instead (--inputs FILE.npz)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no PNG or JPEG files")
    h, w, c = size
    images = np.stack([read_resized(p, (h, w), c) for p in files]).astype(np.float32)
    if c == 1:
        images = images[..., 0]
    return Inputs(unlabelled(len(files)), (IMAGE,) * len(files), str(folder), images=images)


def load_given(path: str | Path, signature: Signature | None, spec: ModelSpec | None) -> Inputs:
    """``--inputs``: a folder of images, or an .npz/.npy of arrays."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_image_folder(path, spec)
    return load_arrays(path, signature)

