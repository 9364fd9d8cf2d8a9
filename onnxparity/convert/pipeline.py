"""The conversion pipeline: load, describe, probe, export, finish, verify, write.

Each step is a named function; :func:`convert` runs them in order and logs each as it starts. The
file is verified as it is (plain ONNX Runtime, as a user or Triton deploys it) against the original
at two batch sizes, by the same comparison functions parity uses, and only then moved into place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from onnxparity import __version__
from onnxparity.convert.graph import BATCH, INPUT_NAME
from onnxparity.errors import InputError, ParityFailure, first_line
from onnxparity.models.spec_inference import CHECK_SAMPLES, final_spec, output_kind, probe_inputs, probe_spec
from onnxparity.signature import Signature, TensorSpec
from onnxparity.spec import ModelSpec

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
            spec=None, force: bool = True) -> ConvertResult:
    """Convert ``model`` to ONNX at ``out`` and check it.

    ``model``: a checkpoint folder, a Keras or PyTorch file, or a live ``keras.Model`` /
    ``torch.nn.Module``. ``input_shape``: one sample's shape without the batch axis, for one input
    (``(1, 28, 28)`` or ``"1,28,28"``) or per input name (``{"image": (3, 32, 32)}``, the CLI's
    repeatable ``--input-shape image=3,32,32``); ``input_dtype`` likewise (``"int64"`` or
    ``{"ids": "int64"}``). ``torch_class``/``torch_kwargs`` rebuild a state dict's module
    (``"torchvision.models:mobilenet_v3_small"``, ``{"num_classes": 10}``); both are stored, so later
    steps rebuild it with no flags; a class a spec records is built only as :mod:`onnxparity.trust`
    allows (``trust_recorded=True``: any). ``spec`` (a ModelSpec, dict or spec.json path) says how to feed
    a model that has none. A failure raises :class:`InputError` and writes nothing.
    """
    from onnxparity._io import atomic_path
    import onnxparity.convert.graph as graph

    started = time.perf_counter()
    framework, target, given_spec, default_out = _identify(model)
    if spec is not None:
        given_spec = _as_spec(spec)
    if out is None:
        if default_out is None:
            raise InputError("say where to write the ONNX file (out)")
        out = default_out.with_name(default_out.stem + (".uint8" if embed_preprocessing else "") + ".onnx")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{out}: a folder; give the ONNX file's path")
    if not force and out.exists():
        raise InputError(f"{out}: exists; pass --force to replace it")
    shapes = _shapes_argument(input_shape)
    dtypes = _dtypes_argument(input_dtype)

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
    probe = probe_spec(given_spec, source, inputs)
    images, xs = probe_inputs(probe, inputs)
    try:
        reference = source.forward(xs)
    except Exception as exc:  # noqa: BLE001 - a shape mismatch surfaces as any framework error
        shown = ", ".join(f"{t.name} {t.dtype}{list(x.shape[1:])}" for t, x in zip(inputs, xs))
        raise InputError(f"input shape {shown} does not fit the model ({first_line(exc)}); "
                         "pass --input-shape / --input-dtype") from None
    output_names = _output_names(source, given_spec, reference)
    spec = final_spec(given_spec, probe, source, inputs, reference)
    raw_shape = graph.raw_image_shape(spec) if embed_preprocessing else None  # refuse before exporting

    log.info("exporting with %s at opset %d", source.converter, opset)
    proto, exporter = source.export(xs, inputs, opset, output_names)
    if graph.opset_of(proto) != opset:
        raise InputError(f"{exporter} wrote opset {graph.opset_of(proto)}, not the {opset} asked for")
    spec = dataclasses.replace(spec, extra={**spec.extra, **_provenance(source, target, exporter)})
    proto = graph.finish(proto, output_names, spec.to_metadata(), [t.name for t in inputs])
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
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ConvertResult(path=out, spec=spec, opset=graph.opset_of(proto), ir_version=int(proto.ir_version),
                         seconds=round(time.perf_counter() - started, 3), size_bytes=out.stat().st_size,
                         node_counts=graph.node_counts(proto), input_name=inputs[0].name, output_name=output_names[0],
                         output_names=tuple(output_names), exporter=exporter, max_abs_diff=max(diffs.values()),
                         embedded_preprocessing=embed_preprocessing, max_abs_diff_per_output=diffs)


# -- what the model is ------------------------------------------------------------------------
def _identify(model) -> tuple[str, Any, ModelSpec | None, Path | None]:
    """(framework, what to load, spec if the model describes itself, default output path stem)."""
    if isinstance(model, (str, os.PathLike)):
        from onnxparity.models import resolve

        ref = resolve(model)
        if ref.framework == "onnx":
            raise InputError(f"{ref.path}: already an ONNX file")
        path = Path(model)
        target = path if ref.spec is None else ref.path  # a checkpoint folder -> its weights file
        default = (path / "model") if path.is_dir() else path.with_suffix("")
        return ref.framework, target, ref.spec, default
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch", model, None, None
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras", model, None, None
    raise InputError(f"cannot convert a {type(model).__name__}; expected a path, a keras.Model or a torch.nn.Module")


def _as_spec(spec) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, Mapping):
        return ModelSpec.from_dict(spec)
    path = Path(spec)
    return ModelSpec.load(path) if path.is_dir() else ModelSpec.read(path)


def _shapes_argument(input_shape) -> dict[str | None, tuple[int, ...]]:
    """``input_shape`` in any of its forms -> {input name or None: sample shape}."""
    from onnxparity.signature import parse_input_shapes

    if input_shape is None:
        return {}
    if isinstance(input_shape, Mapping):
        return {k: tuple(int(d) for d in v) for k, v in input_shape.items()}
    if isinstance(input_shape, str):
        return parse_input_shapes([input_shape])
    if isinstance(input_shape, (list, tuple)) and input_shape and all(isinstance(v, str) for v in input_shape):
        return parse_input_shapes(list(input_shape))
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InputError(f"input shape must be integers such as 1,28,28, not {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise InputError(f"input shape must be positive sizes such as 1,28,28, not {list(shape)}")
    return {None: shape}


def _dtypes_argument(input_dtype) -> dict[str | None, str]:
    from onnxparity.signature import DTYPES

    if input_dtype is None:
        return {}
    if isinstance(input_dtype, str):
        input_dtype = [input_dtype]
    pairs = input_dtype.items() if isinstance(input_dtype, Mapping) else \
        [(v.rpartition("=")[0] or None, v.rpartition("=")[2]) for v in input_dtype]
    out = {}
    for name, dtype in pairs:
        if dtype not in DTYPES:
            raise InputError(f"--input-dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        out[name] = dtype
    return out


def describe_inputs(source, spec: ModelSpec | None, shapes: dict, dtypes: dict,
                    int_range: tuple[int, int] | None) -> list[TensorSpec]:
    """The model's inputs for export: names, dtypes and sample shapes, from what the model declares,
    completed by the user's ``--input-shape``/``--input-dtype`` and a checkpoint's spec.

    One input is called ``input``; several keep the model's own names."""
    declared = list(source.inputs or [])
    if spec is not None and spec.signature is not None and not shapes:
        declared = [dataclasses.replace(t, shape=(BATCH, *t.sample_shape)) for t in spec.signature.inputs]
    named = [k for k in list(shapes) + list(dtypes) if k is not None]
    if not declared:
        names = list(dict.fromkeys(named)) or [INPUT_NAME]
        declared = [TensorSpec(n, "float32", (BATCH,)) for n in names]
    if len(declared) > 1 and (None in shapes or None in dtypes):
        raise InputError(f"the model has {len(declared)} inputs ({', '.join(t.name for t in declared)}); "
                         "name each: --input-shape NAME=SHAPE")
    unknown = set(named) - {t.name for t in declared}
    if unknown:
        raise InputError(f"no input called {', '.join(sorted(unknown))} (inputs: {', '.join(t.name for t in declared)})")
    if len(declared) == 1 and spec is not None and not shapes and spec.input_shape:
        shapes = {None: spec.input_shape}
    out = []
    for t in declared:
        key = None if len(declared) == 1 and None in shapes else t.name
        shape = shapes.get(key) or shapes.get(t.name)
        dtype = dtypes.get(t.name) or dtypes.get(None if len(declared) == 1 else "") or t.dtype
        if shape is None:
            if len(t.shape) <= 1 and not source.inputs or any(isinstance(d, str) for d in t.sample_shape):
                raise InputError(f"the {source.framework} model does not say the shape of its input {t.name!r}; pass "
                                 "--input-shape (one sample, no batch axis, such as 1,28,28 or "
                                 f"{t.name}=1,28,28)")
            shape = t.sample_shape
        rng = None
        if dtype not in ("float16", "float32", "float64", "bool"):
            rng = int_range or ((0, source.embedding_rows) if source.embedding_rows else None)
        name = INPUT_NAME if len(declared) == 1 else t.name
        out.append(TensorSpec(name, dtype, (BATCH, *shape), rng))
    return out


def _output_names(source, spec: ModelSpec | None, reference: list[np.ndarray]) -> list[str]:
    """Outputs the model names (dict outputs, a SavedModel's signature) keep their names; otherwise
    the first is named after what it holds (``probabilities``...) and the others ``output_1``..."""
    names = list(source.output_names or [])
    if spec is not None and spec.signature is not None and len(spec.signature.outputs) == len(reference):
        names = spec.signature.output_names
    if len(names) == len(reference) and len(set(names)) == len(names) and len(reference) > 1:
        return names
    first = spec.output if spec else output_kind(reference[0])
    return [first] + [f"output_{i}" for i in range(1, len(reference))]


def _provenance(source, target, exporter: str) -> dict[str, str]:
    return {
        "source_framework": source.framework, "source_version": source.framework_version,
        "converter": source.converter, "converter_version": source.converter_version, "exporter": exporter,
        "source": Path(target).name if isinstance(target, (str, os.PathLike)) else f"live {type(target).__name__}",
        "source_sha256": source.sha256, "onnxparity_version": __version__,
    }


# -- the check --------------------------------------------------------------------------------
def verify(path: Path, feeds: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Run the file as it is (plain ORT) at batch N and 1; each output must match the original's
    within :data:`onnxparity.compare.CONVERT_TOLERANCE` (scaled to the output's
    magnitude: a converter reorders float sums) and the batch-1 run must match batch N."""
    from onnxparity.compare import CONVERT_TOLERANCE, compare, scaled_to
    from onnxparity.onnx_model import OnnxModel

    session = OnnxModel(path).session()
    names = list(reference)
    n = len(next(iter(feeds.values())))
    full = dict(zip(names, session.run(names, feeds)))
    single = dict(zip(names, session.run(names, {k: v[:1] for k, v in feeds.items()})))
    diffs = {}
    for name in names:
        got, want = full[name], reference[name]
        if got.shape != want.shape:
            raise ParityFailure(f"output {name}: ONNX Runtime gives shape {list(got.shape)}, the original {list(want.shape)}")
        tol = scaled_to(CONVERT_TOLERANCE, want)
        idx = np.arange(n)
        c = compare("convert", {"outputs": want, "indices": idx, "output_name": name, "label": "original"},
                    {"outputs": got, "indices": idx, "output_name": name, "label": "onnxruntime"}, tol, output=name)
        diffs[name] = c.max_abs_diff or 0.0
        if not c.passed:
            raise ParityFailure(f"output {name}: ONNX Runtime differs from the original: {'; '.join(c.reasons)}")
        one = compare("convert", {"outputs": got[:1], "indices": idx[:1], "output_name": name, "label": f"batch {n}"},
                      {"outputs": single[name], "indices": idx[:1], "output_name": name, "label": "batch 1"}, tol,
                      output=name)
        if not one.passed:
            raise ParityFailure(f"output {name}: batch 1 gives other results than batch {n}; the batch axis is not dynamic")
    return diffs
