"""What a quantized file is: the variant metadata it carries, read and written in one place.

A variant keeps its fp32 source's ``onnxparity.*`` metadata (so every command still knows how to
feed it) and adds ``onnxparity.variant.*``: the precision, the calibration data's fingerprint, the
fp32 source's sha256, the settings and the gate it passed. ``ModelSpec.from_metadata`` ignores
these keys, so a variant opens like any converted file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PREFIX = "onnxparity.variant."
PRECISIONS = ("int8", "fp16")


def stamp(model, source_props: dict[str, str], info: dict) -> None:
    """Give ``model`` (an onnx ModelProto) its source's metadata plus the variant keys in ``info``.

    ``info`` holds ``precision``, ``source_sha256`` and optionally ``calibration_fingerprint``,
    ``settings`` and ``gate`` (dicts, stored as JSON)."""
    props = {k: v for k, v in source_props.items() if not k.startswith(PREFIX)}
    for key, value in info.items():
        if value is not None:
            props[PREFIX + key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read(props: dict[str, str]) -> dict | None:
    """The variant keys of a file's metadata (JSON values decoded), or None for an fp32 file."""
    found = {}
    for key, value in props.items():
        if key.startswith(PREFIX):
            name = key[len(PREFIX):]
            try:
                found[name] = json.loads(value) if name in ("settings", "gate") else value
            except json.JSONDecodeError:
                found[name] = value
    return found if found.get("precision") in PRECISIONS else None


def variant_of(path: str | os.PathLike) -> dict | None:
    """The variant metadata of the ONNX file at ``path``; None for an fp32 (or unreadable) file."""
    import onnx

    p = Path(path)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ours to judge here: the caller's own open says why
        return None
    return read({m.key: m.value for m in model.metadata_props})
