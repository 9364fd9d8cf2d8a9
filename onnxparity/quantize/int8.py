"""Static int8 quantization (QDQ, per channel) with ONNX Runtime's own tools.

``quant_pre_process`` (shape inference and ORT's basic graph optimisation) runs once; calibration
runs once and its ranges are cached, so keeping a few layers in float (``nodes_to_exclude``)
costs one re-quantization, not another calibration. The data types and ``reduce_range`` follow
ORT's guidance for CPUs (``quantize_static``'s docstring, "Choosing parameters for CPU inference"):
x86 without VNNI: uint8 activations, int8 weights, 7-bit weights (``reduce_range``) against
saturation; x86 with VNNI: the same without ``reduce_range``; Arm: int8 for both.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from onnxparity.errors import InputError, first_line
from onnxparity.machine import cpu_flags, vnni_flags

METHODS = ("minmax", "entropy", "percentile", "distribution")
# The ops whose int8 kernels carry the speed-up, tried alone when quantizing every op fails the gate: ORT's
# default set also puts a transformer's embeddings and attention-mask sums on an 8-bit grid (MiniLM:
# median cosine 0.49 to fp32), where these alone keep 0.89.
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
# Samples per calibration run. ONNX Runtime's calibrators keep every intermediate tensor of what they
# are given until they fold it into the ranges (or histograms); fed one run at a time
# (``CalibStridedMinMax``), memory holds one run's activations whatever the calibration size.
CALIBRATION_BATCH = 8


@dataclass(frozen=True)
class Int8Settings:
    """What ``quantize_static`` is asked for (and what the report and metadata record)."""

    calibration_method: str = "minmax"
    reduce_range: bool = False
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    format: str = "QDQ"
    per_channel: bool = True
    cpu: str = ""  # why these types: "x86 with VNNI" ...
    op_types: tuple[str, ...] | None = None  # the ops quantized; None: ONNX Runtime's default set

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_settings(flags: frozenset[str] | set[str], machine: str, method: str = "minmax") -> Int8Settings:
    """ORT's recommended types and ``reduce_range`` for a CPU with ``flags`` (/proc/cpuinfo) and
    ``machine`` (``platform.machine()``)."""
    method = method.lower()
    if method not in METHODS:
        raise InputError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")
    if machine.lower() in ("aarch64", "arm64") or machine.lower().startswith("arm"):
        return Int8Settings(method, reduce_range=False, activation_type="QInt8", cpu="Arm")
    vnni = vnni_flags(flags)
    if vnni:
        return Int8Settings(method, reduce_range=False, cpu=f"x86 with VNNI ({', '.join(vnni)})")
    return Int8Settings(method, reduce_range=True, cpu="x86 without VNNI (7-bit weights against saturation)")


def here(method: str = "minmax") -> Int8Settings:
    return cpu_settings(cpu_flags(), platform.machine(), method)


def prepare(source: str | Path, out: str | Path) -> None:
    """ORT's ``quant_pre_process``: symbolic shape inference (ONNX's own where it gives up) and basic
    optimisation before quantizing."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    # One import per domain: ORT's quantizer refuses a file that lists a domain twice (as
    # onnx.compose.merge_models leaves `convert --embed-preprocessing` files).
    versions: dict[str, int] = {}
    for entry in model.opset_import:
        versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    # A file, not the ModelProto: given a proto, ORT moves every weight out of it for its optimizer's
    # session, whose shape inference then cannot read constant axes (Unsqueeze's) any more.
    out = Path(out).resolve()
    cleaned = out.with_name(out.stem + ".cleaned.onnx")
    onnx.save(model, str(cleaned))
    # Symbolic shape inference leaves temporary files in the current folder when it gives up: it runs
    # in the (temporary) folder of ``out``.
    here = os.getcwd()
    os.chdir(out.parent)
    try:
        quant_pre_process(str(cleaned), str(out))
    except Exception as exc:  # noqa: BLE001 - ORT and onnx raise many types for graphs they cannot take
        # Symbolic shape inference gives up on some transformer graphs (a dynamic sequence axis through
        # attention masks); ONNX's own shape inference is then enough to quantize.
        try:
            quant_pre_process(str(cleaned), str(out), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001
            raise InputError(f"{source}: ONNX Runtime's quantization pre-processing failed "
                             f"({first_line(exc, with_type=False)})") from None
    finally:
        os.chdir(here)
        cleaned.unlink(missing_ok=True)


class FeedReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over a list of feeds; ``set_range`` lets the
    calibrator take them a stride at a time (``CalibStridedMinMax``)."""

    def __new__(cls, feeds):
        from onnxruntime.quantization import CalibrationDataReader

        class _Reader(CalibrationDataReader):
            def __init__(self):
                self._all = list(feeds)
                self._feeds = iter(self._all)

            def get_next(self):
                return next(self._feeds, None)

            def __len__(self):
                return len(self._all)

            def set_range(self, start_index: int, end_index: int):
                self._feeds = iter(self._all[start_index:end_index])

        return _Reader()


def quantize(prepared: str | Path, out: str | Path, settings: Int8Settings, feeds, cache: str | Path,
             nodes_to_exclude: list[str] | None = None) -> None:
    """Write the int8 QDQ model of ``prepared`` to ``out``; calibrates on ``feeds`` (batches of
    :data:`CALIBRATION_BATCH`), one batch at a time, unless ``cache`` already holds the ranges (it is
    written by the first call)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    method = {m.name.lower(): m for m in CalibrationMethod}[settings.calibration_method]
    reader = None if Path(cache).is_file() else FeedReader(feeds)
    try:
        quantize_static(str(prepared), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                        activation_type=QuantType[settings.activation_type],
                        weight_type=QuantType[settings.weight_type],
                        nodes_to_exclude=list(nodes_to_exclude or []), calibrate_method=method,
                        calibration_cache_path=str(cache), extra_options={"CalibStridedMinMax": 1},
                        op_types_to_quantize=list(settings.op_types) if settings.op_types else None)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"ONNX Runtime's static quantization failed "
                         f"({first_line(exc, with_type=False)})") from None
