"""Whether an ONNX file was converted from the original it is checked against.

``onnxparity convert`` records the sha256 of the weights it read (``source_sha256`` in the ONNX
metadata). Checking an ONNX file against another checkpoint (retrained since, or another run's)
is the usual mistake behind a surprising parity failure, so it is said before the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from onnxparity.spec import ModelSpec

log = logging.getLogger("onnxparity")


def other_weights(original: Path, onnx_path: str, spec_onnx: ModelSpec) -> str | None:
    """A one-line warning when ``original``'s weights are not those ``onnx_path`` was converted from."""
    recorded = (spec_onnx.extra or {}).get("source_sha256")
    if not recorded or str((spec_onnx.extra or {}).get("source", "")).startswith("live "):
        return None  # a live model's hash is of its weight arrays, not of a file
    from onnxparity._io import sha256_path

    if sha256_path(original) == recorded:
        return None
    return (f"{onnx_path} was converted from other weights than {original} (source_sha256 differs): "
            "convert this checkpoint again, or check the ONNX file against the one it came from")


def warn_if_other_weights(original: Path, onnx_path: str, spec_onnx: ModelSpec) -> None:
    message = other_weights(original, onnx_path, spec_onnx)
    if message:
        log.warning(message)
