"""One facade over an ONNX file: its signature, its onnxparity spec (if any), its sessions.

Every part of the toolkit that opens an ONNX file goes through :class:`OnnxModel`: the runners,
parity, bench, serve and the Triton export; its ONNX Runtime sessions come from
:func:`onnxparity.runners.sessions.make_session`. The file is parsed once, without its external
weights; a missing, corrupt or empty file is a one-line :class:`~onnxparity.errors.InputError`.
A file from elsewhere (no ``onnxparity.*`` metadata) still has a signature read from its graph.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from onnxparity.errors import InputError
from onnxparity.signature import Signature
from onnxparity.spec import METADATA_PREFIX, ModelSpec


# Ops that move or reshape values without computing new ones: a Softmax behind them is still the output.
SHAPE_ONLY_OPS = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Cast",
                            "Expand", "CastLike"})


def softmax_outputs(graph) -> list[str]:
    """The graph outputs computed by Softmax or LogSoftmax (through shape-only ops, or a Log of a Softmax)."""
    producer = {out: node for node in graph.node for out in node.output}
    found = []
    for value in graph.output:
        node = producer.get(value.name)
        while node is not None and (node.op_type in SHAPE_ONLY_OPS or node.op_type == "Log") and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in ("Softmax", "LogSoftmax"):
            found.append(value.name)
    return found


class OnnxModel:
    """An ONNX file: ``signature``, ``spec`` (None for a file converted elsewhere), ``metadata``."""

    def __init__(self, path: str | os.PathLike):
        import onnx

        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such ONNX file")
        try:
            self.proto = onnx.load(str(self.path), load_external_data=False)
        except Exception as exc:  # protobuf DecodeError and friends
            raise InputError(f"{self.path}: not a readable ONNX file ({type(exc).__name__})") from None
        if not self.proto.graph.node:
            raise InputError(f"{self.path}: not a readable ONNX file (no graph)")
        self.metadata = {m.key: m.value for m in self.proto.metadata_props}
        try:
            self.signature = Signature.from_onnx(self.proto)
        except InputError as exc:
            raise InputError(f"{self.path}: {exc}") from None

    @functools.cached_property
    def spec(self) -> ModelSpec | None:
        """The spec convert stored in the metadata, its signature refreshed from the graph."""
        if not any(k.startswith(METADATA_PREFIX) for k in self.metadata):
            return None
        try:
            spec = ModelSpec.from_metadata(self.metadata)
        except InputError as exc:
            raise InputError(f"{self.path}: {exc}") from None
        import dataclasses

        stored = spec.signature
        ranges = {t.name: t.int_range for t in (stored.inputs if stored else ()) if t.int_range}
        return dataclasses.replace(spec, signature=self.signature.with_int_ranges(ranges))

    def require_spec(self) -> ModelSpec:
        if self.spec is None:
            raise InputError(f"{self.path}: the ONNX file carries no onnxparity metadata; convert it with "
                             "`onnxparity convert`, or check it against saved outputs (--reference DIR)")
        return self.spec

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else self.path.stem

    @property
    def batched(self) -> bool:
        """Every input and output has a free first axis, so requests can be stacked along it."""
        return self.signature.batched

    @functools.cached_property
    def class_outputs(self) -> tuple[str, ...]:
        """The outputs marked as class scores: those the spec names (``class_outputs``) and those the
        graph computes with Softmax/LogSoftmax, directly or through shape-only ops (Identity, Reshape...)."""
        marked = list(self.spec.class_outputs) if self.spec else []
        return tuple(dict.fromkeys(marked + softmax_outputs(self.proto.graph)))

    @functools.cached_property
    def variant(self) -> dict | None:
        """What ``onnxparity quantize`` wrote of an int8 or fp16 variant (precision, gate...); None for fp32."""
        from onnxparity.variant import read

        return read(self.metadata)

    @property
    def precision(self) -> str:
        """What the weights are: "float32" unless the file is a quantized or fp16 variant."""
        return self.variant["precision"] if self.variant else "float32"

    @property
    def opset(self) -> int:
        return next((int(o.version) for o in self.proto.opset_import if o.domain in ("", "ai.onnx")), 0)

    def session(self, providers: list[str] | None = None, sess_options=None, *, tuned: bool = False,
                rewrites: bool | None = None, nchwc_block: int | None = None, profile_prefix: str | None = None):
        """An ONNX Runtime session: plain ORT on the file as it is, or the toolkit's ``tuned`` one."""
        from onnxparity.runners.sessions import make_session

        return make_session(self.path, providers, sess_options, tuned=tuned, rewrites=rewrites,
                            nchwc_block=nchwc_block, profile_prefix=profile_prefix)
