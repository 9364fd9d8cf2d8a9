"""How one model is fed :class:`Inputs`: images preprocessed by its spec, arrays as given.

:func:`prepare` writes a model's feeds as ``.npy`` files, a block of samples at a time, that worker
processes map read-only (:func:`open_feeds`) instead of receiving copies through a pipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from onnxparity.errors import InputError
from onnxparity.inputs.files import check_arrays
from onnxparity.inputs.samples import Inputs, release_pages, row_blocks
from onnxparity.signature import Signature
from onnxparity.spec import ModelSpec


def feeds(inputs: Inputs, spec: ModelSpec | None, signature: Signature | None = None, *,
          pixels_only: bool = False) -> dict[str, np.ndarray]:
    """``inputs`` as one model's named arrays: images preprocessed by its spec, arrays as given.

    ``pixels_only``: first round and clip raw values to whole pixels 0..255, for every backend of a
    model whose ONNX file takes raw uint8 pixels (preprocessing embedded in the graph), which cannot
    be fed the out-of-range edge cases as they are.
    """
    signature = signature or (spec.signature if spec else None)
    if inputs.arrays is not None:
        return check_arrays(inputs.arrays, signature, inputs.source) if signature else dict(inputs.arrays)
    if spec is None:
        raise InputError("these inputs are images, but the model has no spec saying how to preprocess them")
    images = np.clip(np.rint(inputs.images), 0, 255) if pixels_only else inputs.images
    name = (signature.inputs[0].name if signature and signature.inputs else None) or spec.input_name or "input"
    return {name: spec.preprocess(images)}


def prepare(inputs: Inputs, spec: ModelSpec | None, folder: str | Path, *, signature: Signature | None = None,
            pixels_only: bool = False) -> dict[str, str]:
    """Write ``inputs`` as fed to this model into ``folder`` (once per distinct preparation), a block
    of samples at a time: input name -> ``.npy`` path."""
    key = _prep_key(inputs, spec, signature, pixels_only)
    target = Path(folder) / key
    index = target / "inputs.json"
    if index.is_file():
        return json.loads(index.read_text())
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, np.ndarray] = {}
    paths: dict[str, str] = {}
    row_bytes = (inputs.images[:1].nbytes if inputs.images is not None else
                 sum(np.asarray(a)[:1].nbytes for a in inputs.arrays.values()))
    sources = (inputs.images,) if inputs.images is not None else tuple(inputs.arrays.values())
    for rows in row_blocks(len(inputs), 2 * row_bytes):  # room for a cast or preprocessed copy
        for name, array in feeds(inputs.take(rows), spec, signature, pixels_only=pixels_only).items():
            if name not in files:
                paths[name] = str(target / f"{len(files)}.npy")
                files[name] = np.lib.format.open_memmap(paths[name], "w+", array.dtype, (len(inputs), *array.shape[1:]))
            files[name][rows] = array
        release_pages(*sources, *files.values())
    for array in files.values():
        array.flush()
    index.write_text(json.dumps(paths))
    return paths


def _prep_key(inputs: Inputs, spec, signature, pixels_only: bool) -> str:
    if inputs.arrays is not None:
        sig = signature or (spec.signature if spec else None)
        fields = ("arrays", sig.to_dict() if sig else None)
    else:
        fields = (spec.layout, spec.input_shape, spec.scale, spec.mean, spec.std, spec.input_dtype, spec.input_name,
                  pixels_only)
    return "x-" + hashlib.sha1(repr(fields).encode()).hexdigest()[:12]


def open_feeds(paths: Mapping[str, str]) -> dict[str, np.ndarray]:
    """:func:`prepare`'s files, mapped read-only."""
    return {name: np.load(path, mmap_mode="r") for name, path in paths.items()}
