"""Keras and PyTorch models to validated, self-describing ONNX files.

``convert(model, out)`` loads a model (a checkpoint folder, a Keras or PyTorch file, or a live
``keras.Model`` / ``torch.nn.Module``), exports it with its framework's converter, gives the graph
the toolkit's guarantees (see :mod:`onnxparity.convert.graph`), checks it, runs it in ONNX Runtime
against the original at two batch sizes, and only then moves it into place. Only the framework of
the model being converted is imported.

Metadata: the model's :class:`~onnxparity.spec.ModelSpec` under ``onnxparity.*``; provenance
lives in the spec's ``extra`` (``onnxparity.extra``): ``source_framework``, ``source_version``,
``converter``, ``converter_version``, ``exporter``, ``source`` (file name), ``source_sha256``
(of the file; of a folder's files in name order; of a live model's weight arrays) and
``onnxparity_version``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from onnxparity import __version__
from onnxparity.convert.graph import INPUT_NAME, ConversionError
from onnxparity.errors import InputError, ParityFailure
from onnxparity.spec import DIGITS, ModelSpec

__all__ = ["convert", "ConvertResult", "ConversionError"]

log = logging.getLogger(__name__)

CHECK_DIGITS = 7  # batch used to check the file against the original (and batch 1 beside it)
ATOL, RTOL = 1e-4, 1e-3


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
    max_abs_diff: float  # ONNX Runtime vs the original on the check batch
    embedded_preprocessing: bool = False

    @property
    def node_count(self) -> int:
        return sum(self.node_counts.values())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"], d["spec"], d["output_names"] = str(self.path), self.spec.to_dict(), list(self.output_names)
        return d

    def summary(self) -> str:
        """A few lines for the CLI: where, how big, which ops, opset, time."""
        ops = ", ".join(f"{op} {n}" for op, n in self.node_counts.items())
        return (f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, opset {self.opset}, IR {self.ir_version}) "
                f"in {self.seconds:.1f} s\n"
                f"  {self.input_name} {_shape_text(self.spec)} -> {', '.join(self.output_names)}\n"
                f"  {self.node_count} nodes: {ops}\n"
                f"  exporter: {self.exporter}\n"
                f"  checked in ONNX Runtime at batch 1 and {CHECK_DIGITS}: max abs diff {self.max_abs_diff:.2e}")


def convert(model, out: str | os.PathLike | None = None, *, opset: int | None = None, embed_preprocessing: bool = False,
            input_shape=None, torch_class: str | None = None, trust_pickle: bool = False, spec=None) -> ConvertResult:
    """Convert ``model`` to ONNX at ``out`` and check it; see the module docstring.

    ``input_shape`` is one sample's shape without the batch axis (``(1, 28, 28)``), needed when
    neither the model nor a spec says it; ``spec`` (a ModelSpec, dict or spec.json path) says how to
    feed a model that has no spec.json. A failure raises :class:`InputError` and writes nothing.
    """
    from onnxparity._io import atomic_path
    from onnxparity.convert import graph

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

    opset = graph.preflight(opset)  # before loading anything: a refused opset fails fast
    log.info("loading the %s model", framework)
    if framework == "keras":
        from onnxparity.convert.keras import open_source

        source = open_source(target, given_spec)
    else:
        from onnxparity.convert.torch import open_source

        source = open_source(target, given_spec, torch_class=torch_class, trust_pickle=trust_pickle)
    graph.check_converter_opset(opset, source.converter_max_opset, f"{source.converter} {source.converter_version}")

    shape = _input_shape(input_shape, given_spec, source)
    probe_spec = (dataclasses.replace(given_spec, input_shape=shape, input_dtype="float32") if given_spec
                  else _default_spec(source, shape))
    images, x = _check_inputs(probe_spec)
    try:
        reference = source.forward(x)
    except Exception as exc:  # noqa: BLE001 - a shape mismatch surfaces as any framework error
        raise InputError(f"input shape {list(shape)} does not fit the model ({graph.first_line(exc)})") from None
    spec = probe_spec if given_spec else _default_spec(source, shape, reference[0])
    output_names = [spec.output] + [f"output_{i}" for i in range(1, len(reference))]
    raw_shape = graph.raw_image_shape(spec) if embed_preprocessing else None  # refuse before exporting

    log.info("exporting with %s at opset %d", source.converter, opset)
    proto, exporter = source.export(x, shape, opset, output_names)
    if graph.opset_of(proto) != opset:
        raise InputError(f"{exporter} wrote opset {graph.opset_of(proto)}, not the {opset} asked for")
    spec = dataclasses.replace(spec, extra={**spec.extra, **_provenance(source, target, exporter)})
    proto = graph.finish(proto, output_names, spec.to_metadata())
    if embed_preprocessing:
        proto = graph.embed_preprocessing(proto, spec)
        spec = dataclasses.replace(spec, input_shape=raw_shape, input_dtype="uint8",
                                   extra={**spec.extra, "embedded_preprocessing": "true"})
        proto = graph.finish(proto, output_names, spec.to_metadata())

    log.info("checking %s in ONNX Runtime", out)
    import onnx

    try:
        with atomic_path(out) as tmp:
            onnx.save(proto, tmp)
            feed = spec.preprocess(images) if images is not None else x
            diff = _verify(tmp, feed, reference, output_names)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return ConvertResult(path=out, spec=spec, opset=graph.opset_of(proto), ir_version=int(proto.ir_version),
                         seconds=round(time.perf_counter() - started, 3), size_bytes=out.stat().st_size,
                         node_counts=graph.node_counts(proto), input_name=INPUT_NAME, output_name=output_names[0],
                         output_names=tuple(output_names), exporter=exporter, max_abs_diff=diff,
                         embedded_preprocessing=embed_preprocessing)


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
    return ModelSpec.load(path) if path.is_dir() else ModelSpec.from_dict(_read_json(path))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such spec file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid model spec ({exc})") from None


def _input_shape(input_shape, spec: ModelSpec | None, source) -> tuple[int, ...]:
    if input_shape is not None:
        if isinstance(input_shape, str):
            input_shape = input_shape.replace("x", ",").split(",")
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise InputError(f"input shape must be integers such as 1,28,28, not {input_shape!r}") from None
        if not shape or min(shape) < 1:
            raise InputError(f"input shape must be positive sizes such as 1,28,28, not {list(shape)}")
        return shape
    if spec is not None:
        return spec.input_shape
    if source.input_shape:
        return source.input_shape
    raise InputError(f"the {source.framework} model does not say its input shape; pass --input-shape "
                     "(one sample, no batch axis, such as 1,28,28)")


def _default_spec(source, shape: tuple[int, ...], output: np.ndarray | None = None) -> ModelSpec:
    """A spec for a model that came without one: its framework's layout, pixels/255, output kind guessed."""
    kind, labels = "logits", DIGITS
    if output is not None:
        kind = _output_kind(output)
        classes = output.shape[-1] if output.ndim >= 2 else 1
        labels = DIGITS if classes == 10 else tuple(str(i) for i in range(classes))
    return ModelSpec(name=source.name, framework=source.framework, input_shape=shape,
                     layout="NHWC" if source.framework == "keras" else "NCHW", output=kind, labels=labels,
                     architecture=source.architecture)


def _output_kind(output: np.ndarray) -> str:
    """Probabilities (rows >= 0 summing to 1), log-probabilities (exp of rows sums to 1) or logits."""
    out = np.asarray(output, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] < 2:
        return "logits"
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1, atol=1e-3):
        return "probabilities"
    if (out <= 0).all() and np.allclose(np.exp(out).sum(axis=1), 1, atol=1e-3):
        return "log_probabilities"
    return "logits"


def _check_inputs(spec: ModelSpec) -> tuple[np.ndarray | None, np.ndarray]:
    """(raw images, model input): real digits for 28x28 grayscale models, random pixels for other
    grayscale sizes, fixed random floats (and no images) for anything else."""
    from onnxparity.convert.graph import raw_image_shape

    try:
        hw = raw_image_shape(spec)
    except InputError:
        return None, np.random.default_rng(0).standard_normal((CHECK_DIGITS, *spec.input_shape)).astype(np.float32)
    if hw == (28, 28):
        from onnxparity.data import load_digits

        images = load_digits(None, "test").images[:CHECK_DIGITS]
    else:
        images = np.random.default_rng(0).integers(0, 256, (CHECK_DIGITS, *hw), dtype=np.uint8)
    return images, spec.preprocess(images)


def _provenance(source, target, exporter: str) -> dict[str, str]:
    return {
        "source_framework": source.framework, "source_version": source.framework_version,
        "converter": source.converter, "converter_version": source.converter_version, "exporter": exporter,
        "source": Path(target).name if isinstance(target, (str, os.PathLike)) else f"live {type(target).__name__}",
        "source_sha256": source.sha256, "onnxparity_version": __version__,
    }


# -- the check --------------------------------------------------------------------------------
def _verify(path: Path, feed: np.ndarray, reference: list[np.ndarray], names: list[str]) -> float:
    """Run the file at batch N and 1; outputs must match the original's and each other's."""
    from onnxparity.runners.onnxrt import make_session

    session = make_session(path)
    full = session.run(names, {INPUT_NAME: feed})
    single = session.run(names, {INPUT_NAME: feed[:1]})
    worst = 0.0
    for name, got, want, one in zip(names, full, reference, single):
        if got.shape != want.shape:
            raise ParityFailure(f"output {name}: ONNX Runtime gives shape {list(got.shape)}, the original {list(want.shape)}")
        diff = float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0
        worst = max(worst, diff)
        atol = ATOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        if not np.allclose(got, want, atol=atol, rtol=RTOL):
            raise ParityFailure(f"output {name}: ONNX Runtime differs from the original by up to {diff:.3g}")
        if got.ndim == 2 and not np.array_equal(got.argmax(1), want.argmax(1)):
            raise ParityFailure(f"output {name}: ONNX Runtime predicts other classes than the original")
        if not np.allclose(one, got[:1], atol=atol, rtol=RTOL):
            raise ParityFailure(f"output {name}: batch 1 gives other results than batch {len(feed)}; the batch axis is not dynamic")
    return worst


def _shape_text(spec: ModelSpec) -> str:
    return f"{spec.input_dtype}[batch, {', '.join(str(d) for d in spec.input_shape)}]"
