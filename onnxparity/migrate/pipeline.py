"""``migrate(source, to, out)``: a Keras or PyTorch model (or an ONNX file) rebuilt in the other framework.

The steps: convert the source to ONNX (in the source framework's process), plan the target model
from the ONNX graph (:mod:`~onnxparity.migrate.walk`), write it in the target framework's process,
then check every leg on the same inputs: source vs ONNX, ONNX vs the migrated model as loaded back
from its files, and source vs migrated. Real digits for digit models, seeded inputs otherwise, each
model fed in its own layout. Only when every leg passes does the folder appear (atomically).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxparity import __version__, _process
from onnxparity.compare import CONVERT_TOLERANCE, accuracy, holds_classes, scaled_to, within
from onnxparity.compare.metrics import max_abs_diff, top1_agreement
from onnxparity.errors import InputError, ParityFailure
from onnxparity.inputs import load_digits_inputs, seeded_normal
from onnxparity.migrate.plan import TARGETS, Plan
from onnxparity.spec import ModelSpec

log = logging.getLogger(__name__)

SEEDED = 16  # inputs for models that do not take 28x28 digits


@dataclass(frozen=True)
class Leg:
    """One comparison: ``a`` vs ``b`` on the check inputs, per output."""

    a: str
    b: str
    max_abs_diff: float
    passed: bool
    argmax_agreement: float | None  # share of rows with the same top class (2-D outputs)
    detail: str = ""


@dataclass(frozen=True)
class MigrateResult:
    path: Path
    target: str
    spec: ModelSpec
    seconds: float
    inputs: str  # "N digits from ..." or "N seeded inputs"
    legs: tuple[Leg, ...]
    accuracy: dict[str, float]  # per model, when the inputs are labelled digits
    layers: dict[str, int]  # plan step kinds -> count

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"], d["spec"] = str(self.path), self.spec.to_dict()
        return d

    def summary(self) -> str:
        lines = [f"wrote {self.path} ({self.target}) in {self.seconds:.1f} s; checked on {self.inputs}"]
        for leg in self.legs:
            agree = "" if leg.argmax_agreement is None else f", same top class {leg.argmax_agreement:.2%}"
            lines.append(f"  {leg.a} -> {leg.b}: max abs diff {leg.max_abs_diff:.2e}{agree}")
        if self.accuracy:
            lines.append("  accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in self.accuracy.items()))
        lines.append("  layers: " + ", ".join(f"{k} {n}" for k, n in self.layers.items()))
        return "\n".join(lines)


def migrate(source: str | os.PathLike, to: str, out: str | os.PathLike, *, check_data: str | None = None,
            timeout: float | None = None, **convert_options) -> MigrateResult:
    """Rebuild ``source`` in ``to`` ("torch" or "keras") into the folder ``out``; see the module docstring.

    ``check_data`` picks the digits the legs are checked on (default: the bundled held-out digits);
    ``convert_options`` go to :func:`onnxparity.convert.convert` (``input_shape``, ``torch_class``,
    ``spec``, ``trust_pickle``) for a source that needs them.
    Raises :class:`InputError` (exit 2) for what cannot migrate, :class:`ParityFailure` (exit 1)
    when a leg differs; either way nothing is written.
    """
    from onnxparity._io import atomic_dir
    from onnxparity.models import resolve

    started = time.perf_counter()
    if to not in TARGETS:
        raise InputError(f"migrate: --to must be one of {', '.join(TARGETS)}, not {to!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: a file; migrate writes a folder")
    ref = resolve(source)

    with tempfile.TemporaryDirectory(prefix="onnxparity-migrate-") as work:
        outputs: dict[str, list[np.ndarray]] = {}
        service = None
        try:
            if ref.framework == "onnx":
                if convert_options:
                    raise InputError(f"{source}: already an ONNX file; {', '.join(convert_options)} are for converting")
                onnx_path = Path(source)
                spec = _onnx_spec(onnx_path)
                source_name = None
            else:
                onnx_path = Path(work) / "model.onnx"
                log.info("converting %s to ONNX", source)
                service = _process.Service("onnxparity.migrate.legs:SourceModel", str(source), str(onnx_path),
                                           name=f"{ref.framework} source", timeout=timeout, **convert_options)
                spec = ModelSpec.from_dict(service.call("summary")["spec"])
                source_name = ref.framework
            inputs = spec.signature.inputs if spec.signature else ()
            if spec.input_dtype == "uint8" and spec.layout is not None:
                raise InputError(f"{onnx_path}: takes raw uint8 pixels (embedded preprocessing); migrate the model "
                                 "it was converted from instead")
            if len(inputs) > 1 or spec.input_dtype != "float32":
                takes = ", ".join(f"{t.name} ({t.dtype})" for t in inputs) or spec.input_dtype
                raise InputError(f"{source}: takes {takes}; migrate moves models of one float input (its op set has "
                                 "no Gather for token ids)")
            plan = _plan(onnx_path, to, spec)
            new_spec = _migrated_spec(spec, plan, source)
            images, labels, inputs_text = _check_inputs(spec, check_data)
            x_source = spec.preprocess(images) if images is not None else seeded_normal(spec.input_shape, SEEDED)
            x_target = new_spec.preprocess(images) if images is not None else _to_target_layout(x_source, plan)
            if service is not None:
                log.info("running the source model on %d inputs", len(x_source))
                outputs[source_name] = service.call("run", x_source)
        finally:
            if service is not None:
                service.close()

        from onnxparity.migrate.legs import run_onnx

        outputs["onnx"] = run_onnx(onnx_path, x_source)
        migrated = f"{to} (migrated)"
        with atomic_dir(out) as folder:
            log.info("writing the %s model and running it as loaded back", to)
            got = _process.call("onnxparity.migrate.legs:write_target", plan, str(folder), x_target,
                                name=f"{to} target", timeout=timeout)
            outputs[migrated] = plan.to_onnx_layout(got)
            legs = _legs(outputs, plan)
            failed = [leg for leg in legs if not leg.passed]
            if failed:
                raise ParityFailure("migrate: parity failed, nothing written: " + "; ".join(
                    f"{leg.a} -> {leg.b}: {leg.detail}" for leg in failed))
            new_spec.save(folder)
    accuracy = _accuracy(outputs, labels, spec) if labels is not None else {}
    return MigrateResult(path=out, target=to, spec=new_spec, seconds=round(time.perf_counter() - started, 3),
                         inputs=inputs_text, legs=tuple(legs), accuracy=accuracy, layers=plan.counts())


# -- steps --------------------------------------------------------------------------------------
def _onnx_spec(path: Path) -> ModelSpec:
    """The spec in an onnxparity ONNX file, or one from the graph: NCHW, pixels/255, logits."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise InputError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if any(k.startswith("onnxparity.") for k in props):
        return ModelSpec.from_metadata(props)
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        raise InputError(f"{path}: the ONNX graph has {len(inputs)} inputs; migrate handles one-input models")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) < 2 or any(d is None for d in dims[1:]):
        raise InputError(f"{path}: the input needs a static shape apart from the batch axis")
    return ModelSpec(name=model.graph.name or path.stem, framework="onnx",
                     input_shape=tuple(dims[1:]), layout="NCHW", output="logits")


def _plan(onnx_path: Path, to: str, spec: ModelSpec) -> Plan:
    import onnx

    from onnxparity.migrate.walk import plan_for

    model = onnx.load(str(onnx_path))
    layout = spec.layout if len(spec.input_shape) == 3 else None
    return plan_for(model, to, layout, name=spec.name)


def _migrated_spec(spec: ModelSpec, plan: Plan, source) -> ModelSpec:
    from onnxparity.migrate.to_torch import architecture

    extra = {"migrated_from": spec.framework, "migrated_source": Path(source).name,
             "migrated_outputs": json.dumps(plan.output_names), "onnxparity_version": __version__}
    for key in ("source_framework", "source_version", "source_sha256"):
        if key in spec.extra:
            extra[key] = spec.extra[key]
    return dataclasses.replace(spec, framework=plan.target, input_shape=plan.input_shape, layout=plan.layout,
                               signature=None,  # the ONNX file's names and layout; convert writes the new one
                               architecture=architecture(plan) if plan.target == "torch" else None, extra=extra)


def _check_inputs(spec: ModelSpec, check_data: str | None):
    """(raw images or None, labels or None, a description)."""
    if not spec.takes_digits:
        if check_data is not None:
            raise InputError("--check-data is for models that take 28x28 digits")
        return None, None, f"{SEEDED} seeded inputs"
    digits = load_digits_inputs(check_data, synthetic=False)
    where = "the bundled held-out digits" if check_data is None else str(check_data)
    return digits.images, digits.labels, f"{len(digits)} real digits ({where})"


def _to_target_layout(x: np.ndarray, plan: Plan) -> np.ndarray:
    if x.ndim != 4 or plan.source_layout == plan.layout:
        return x
    perm = (0, 2, 3, 1) if plan.layout == "NHWC" else (0, 3, 1, 2)
    return np.ascontiguousarray(np.transpose(x, perm))


def _compare(a: str, b: str, want: list[np.ndarray], got: list[np.ndarray], names: list[str]) -> Leg:
    """Each output within convert's tolerance (scaled to the output's magnitude); the top class
    agreement of the first that holds class scores."""
    worst, agree, problems = 0.0, None, []
    if len(want) != len(got):
        return Leg(a, b, float("inf"), False, None, f"{len(got)} outputs instead of {len(want)}")
    for name, w, g in zip(names, want, got):
        w, g = np.asarray(w, dtype=np.float64), np.asarray(g, dtype=np.float64)
        if w.shape != g.shape:
            problems.append(f"output {name}: shape {list(g.shape)} instead of {list(w.shape)}")
            worst = float("inf")
            continue
        diff = max_abs_diff(w, g)
        diff = math.inf if diff is None else diff
        worst = max(worst, diff)
        if not within(w, g, scaled_to(CONVERT_TOLERANCE, w)):
            problems.append(f"output {name} differs by up to {diff:.3g}")
        if agree is None and holds_classes(w, name):
            agree = top1_agreement(w, g)
    return Leg(a, b, worst, not problems, agree, "; ".join(problems))


def _legs(outputs: dict[str, list[np.ndarray]], plan: Plan) -> list[Leg]:
    names = plan.output_names
    models = list(outputs)  # source (when there is one), onnx, migrated: the order of the legs
    legs = [_compare(a, b, outputs[a], outputs[b], names) for a, b in zip(models, models[1:])]
    if len(models) == 3:
        legs.append(_compare(models[0], models[2], outputs[models[0]], outputs[models[2]], names))
    return legs


def _accuracy(outputs: dict[str, list[np.ndarray]], labels: np.ndarray, spec: ModelSpec) -> dict[str, float]:
    out = {}
    for model, outs in outputs.items():
        first = np.asarray(outs[0])
        if first.ndim == 2 and first.shape[1] == len(spec.labels):
            out[model] = accuracy(first, labels)["accuracy"]
    return out
