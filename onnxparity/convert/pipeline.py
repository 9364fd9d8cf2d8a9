"""The conversion pipeline: load, describe, probe, export, finish, verify, write.

Each step is a named function; :func:`convert` runs them in order and logs each as it starts.
What the model is and how it is fed is read in :mod:`.describe`; a model without a spec gets the
one :mod:`onnxparity.models.spec_inference` infers. The file is verified as it is (plain ONNX
Runtime, as a user or Triton deploys it) against the original at two batch sizes, by the same
comparison functions parity uses (:mod:`.verify`), and only then moved into place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


from onnxparity import __version__
from onnxparity._process import requested_imports
from onnxparity.convert.describe import (axis_names_argument, describe_inputs, describe_outputs,
                                         dtypes_argument, identify,
                                         shapes_argument)
from onnxparity.convert.verify import verify
from onnxparity.errors import InputError, first_line
from onnxparity.models.spec_inference import CHECK_SAMPLES, final_spec, probe_inputs, probe_spec
from onnxparity.signature import Signature
from onnxparity.spec import ModelSpec, as_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote (plain data: picklable, ``to_dict()`` for JSON)."""

    path: Path
    spec: ModelSpec  # as stored in the file's metadata
    opset: int
    ir_version: int
    seconds: float
    size_bytes: int
    node_counts: dict[str, int]
    input_name: str
    output_name: str
    output_names: tuple[str, ...]
    exporter: str  # which exporter produced the graph, with the fallback reason if any
    max_abs_diff: float  # ONNX Runtime vs the original on the check batch, over every output
    embedded_preprocessing: bool = False
    max_abs_diff_per_output: Mapping[str, float] | None = None

    @property
    def node_count(self) -> int:
        return sum(self.node_counts.values())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"], d["spec"], d["output_names"] = str(self.path), self.spec.to_dict(), list(self.output_names)
        d["max_abs_diff_per_output"] = dict(self.max_abs_diff_per_output or {})
        return d

    def summary(self) -> str:
        """A few lines for the CLI: where, how big, which ops, opset, time."""
        ops = ", ".join(f"{op} {n}" for op, n in self.node_counts.items())
        sig = self.spec.signature
        ins = ", ".join(t.describe() for t in sig.inputs) if sig else self.input_name
        outs = ", ".join(t.describe() for t in sig.outputs) if sig else ", ".join(self.output_names)
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in (self.max_abs_diff_per_output or {}).items())
        return (f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, opset {self.opset}, IR {self.ir_version}) "
                f"in {self.seconds:.1f} s\n"
                f"  {ins} -> {outs}\n"
                f"  {self.node_count} nodes: {ops}\n"
                f"  exporter: {self.exporter}\n"
                f"  checked in ONNX Runtime at batch 1 and {CHECK_SAMPLES}: max abs diff {self.max_abs_diff:.2e}"
                + (f" ({diffs})" if len(self.max_abs_diff_per_output or {}) > 1 else ""))


def convert(model, out: str | os.PathLike | None = None, *, opset: int | None = None, embed_preprocessing: bool = False,
            input_shape=None, input_dtype=None, torch_class: str | None = None, torch_kwargs: dict | None = None,
            int_range: tuple[int, int] | None = None, trust_pickle: bool = False, trust_recorded: bool = False,
            spec=None, force: bool = True, class_outputs=None) -> ConvertResult:
    """Convert ``model`` to ONNX at ``out`` and check it.

    ``model``: a checkpoint folder, a Keras or PyTorch file, or a live ``keras.Model`` /
    ``torch.nn.Module``. ``input_shape``: one sample's shape without the batch axis, for one input
    (``(1, 28, 28)`` or ``"1,28,28"``) or per input name (``{"image": (3, 32, 32)}``, the CLI's
    repeatable ``--input-shape image=3,32,32``); ``input_dtype`` likewise (``"int64"`` or
    ``{"ids": "int64"}``). ``torch_class``/``torch_kwargs`` rebuild a state dict's module
    (``"torchvision.models:mobilenet_v3_small"``, ``{"num_classes": 10}``); both are stored, so later
    steps rebuild it with no flags; a class a spec records is built only as :mod:`onnxparity.trust`
    allows (``trust_recorded=True``: any). ``spec`` (a ModelSpec, dict or spec.json path) says how to feed
    a model that has none. ``class_outputs``: output names that hold class scores, stored in the spec
    (outputs a Softmax computes, or named ``logits``/``probabilities``..., need no naming). A failure
    raises :class:`InputError` and writes nothing.
    """
    from onnxparity._io import atomic_path
    import onnxparity.convert.graph as graph

    started = time.perf_counter()
    framework, target, given_spec, default_out = identify(model)
    if spec is not None:
        given_spec = as_spec(spec)
    if out is None:
        if default_out is None:
            raise InputError("say where to write the ONNX file (out)")
        out = default_out.with_name(default_out.stem + (".uint8" if embed_preprocessing else "") + ".onnx")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out}: a folder; give the ONNX file's path")
    if not force and out.exists():
        raise InputError(f"{out}: exists; pass --force to replace it")
    shapes = shapes_argument(input_shape)
    dtypes = dtypes_argument(input_dtype)

    opset = graph.preflight(opset)  # before loading anything: a refused opset fails fast
    log.info("loading the %s model", framework)
    if framework == "keras":
        from onnxparity.convert.keras import open_source

        source = open_source(target, given_spec)
    else:
        from onnxparity.convert.torch import open_source

        from onnxparity.trust import Trust

        source = open_source(target, given_spec, Trust(torch_class, torch_kwargs, trust_recorded),
                             trust_pickle=trust_pickle)
    graph.check_converter_opset(opset, source.converter_max_opset, f"{source.converter} {source.converter_version}")

    inputs = describe_inputs(source, given_spec, shapes, dtypes, int_range)
    dynamic_axes = axis_names_argument(input_shape, inputs)
    probe = probe_spec(given_spec, source, inputs)
    images, xs = probe_inputs(probe, inputs)
    try:
        reference = source.forward(xs)
    except Exception as exc:  # noqa: BLE001 - a shape mismatch surfaces as any framework error
        shown = ", ".join(f"{t.name} {t.dtype}{list(x.shape[1:])}" for t, x in zip(inputs, xs))
        raise InputError(f"input shape {shown} does not fit the model ({first_line(exc)}); "
                         "pass --input-shape / --input-dtype") from None
    output_names = describe_outputs(source, given_spec, reference)
    spec = final_spec(given_spec, probe, source, inputs, reference)
    if class_outputs:
        unknown = [n for n in class_outputs if n not in output_names]
        if unknown:
            raise InputError(f"--class-output {', '.join(unknown)}: no such output (the model has "
                             f"{', '.join(output_names)})")
        spec = dataclasses.replace(spec, class_outputs=tuple(dict.fromkeys([*spec.class_outputs, *class_outputs])))
    raw_shape = graph.raw_image_shape(spec) if embed_preprocessing else None  # refuse before exporting

    log.info("exporting with %s at opset %d", source.converter, opset)
    proto, exporter = source.export(xs, inputs, opset, output_names, dynamic_axes)
    if graph.opset_of(proto) != opset:
        raise InputError(f"{exporter} wrote opset {graph.opset_of(proto)}, not the {opset} asked for")
    spec = dataclasses.replace(spec, extra={**spec.extra, **_provenance(source, target, exporter)},
                               imports=tuple(dict.fromkeys([*spec.imports, *requested_imports()])))
    proto = graph.finish(proto, output_names, spec.to_metadata(), [t.name for t in inputs])
    graph.name_input_axes(proto, dynamic_axes)
    if embed_preprocessing:
        proto = graph.embed_preprocessing(proto, spec)
        spec = dataclasses.replace(spec, input_shape=raw_shape, input_dtype="uint8",
                                   extra={**spec.extra, "embedded_preprocessing": "true"})
        proto = graph.finish(proto, output_names, spec.to_metadata())
    signature = Signature.from_onnx(proto)
    ranges = {t.name: t.int_range for t in inputs if t.int_range}
    spec = dataclasses.replace(spec, signature=signature.with_int_ranges(ranges))
    graph.set_metadata(proto, spec.to_metadata())

    log.info("checking %s in ONNX Runtime", out)
    import onnx

    try:
        with atomic_path(out) as tmp:
            onnx.save(proto, tmp)
            feed = {inputs[0].name: spec.preprocess(images)} if images is not None else \
                {t.name: x for t, x in zip(signature.inputs, xs)}
            diffs = verify(tmp, feed, dict(zip(output_names, reference)))
            if dynamic_axes and images is None:
                _verify_other_size(tmp, source, probe, inputs, signature, output_names, dynamic_axes)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ConvertResult(path=out, spec=spec, opset=graph.opset_of(proto), ir_version=int(proto.ir_version),
                         seconds=round(time.perf_counter() - started, 3), size_bytes=out.stat().st_size,
                         node_counts=graph.node_counts(proto), input_name=inputs[0].name, output_name=output_names[0],
                         output_names=tuple(output_names), exporter=exporter, max_abs_diff=max(diffs.values()),
                         embedded_preprocessing=embed_preprocessing, max_abs_diff_per_output=diffs)


def _verify_other_size(path, source, probe, inputs, signature, output_names, dynamic_axes) -> None:
    """The file at twice the example size of each named axis must still match the original: an axis
    the exporter traced as a constant (a reshape to the example's length) breaks only there."""
    from onnxparity.errors import ParityFailure

    def grown(t):
        named = dynamic_axes.get(t.name, {})
        return dataclasses.replace(t, shape=tuple(d * 2 if i in named else d for i, d in enumerate(t.shape)))

    other = [grown(t) for t in inputs]
    _, xs = probe_inputs(probe, other)
    sizes = ", ".join(sorted({f"{n}={t.shape[i]}" for t in other for i, n in dynamic_axes.get(t.name, {}).items()}))
    try:
        reference = source.forward(xs)
        verify(path, {t.name: x for t, x in zip(signature.inputs, xs)}, dict(zip(output_names, reference)))
    except ParityFailure as exc:
        raise ParityFailure(f"at {sizes}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime refusing the size: the axis is static inside
        raise ParityFailure(f"at {sizes}: the file does not run ({first_line(exc)})") from None


def _provenance(source, target, exporter: str) -> dict[str, str]:
    return {
        "source_framework": source.framework, "source_version": source.framework_version,
        "converter": source.converter, "converter_version": source.converter_version, "exporter": exporter,
        "source": Path(target).name if isinstance(target, (str, os.PathLike)) else f"live {type(target).__name__}",
        "source_sha256": source.sha256, "onnxparity_version": __version__,
    }
