"""``quantize()``: make a variant, judge it against its fp32 file, time both, write it only if it passes."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import onnxparity.quantize.evaluate as evaluate
import onnxparity.quantize.fp16 as fp16
import onnxparity.quantize.int8 as int8
import onnxparity.quantize.layers as layers
import onnxparity.quantize.speed as speed
import onnxparity.variant as variant
from onnxparity._io import sha256_path
from onnxparity.compare import VariantGate
from onnxparity.errors import InputError
from onnxparity.inputs import CALIBRATION_SIZE, calibration_split
from onnxparity.quantize.report import QuantizeReport

log = logging.getLogger(__name__)

MAX_EXCLUDE = 3  # layers at most kept in float
MIN_AGREEMENT, MAX_ACCURACY_DROP = VariantGate.min_agreement, VariantGate.max_accuracy_drop  # the CLI's defaults


def _check_arguments(precision, min_agreement, max_accuracy_drop, max_exclude, calibration_size) -> None:
    if precision not in variant.PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(variant.PRECISIONS)}, not {precision!r}")
    if not 0 <= min_agreement <= 1:
        raise InputError("--min-agreement must lie in 0..1")
    if not 0 <= max_accuracy_drop <= 1:
        raise InputError("--max-accuracy-drop must lie in 0..1")
    if max_exclude < 0:
        raise InputError("--max-exclude must be 0 or more")
    if calibration_size < 1:
        raise InputError("--calibration-size must be at least 1")


def _open(source: Path):
    import onnx

    if not source.is_file():
        raise InputError(f"{source}: no such ONNX file")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise InputError(f"{source}: not a readable ONNX file ({type(exc).__name__})") from None
    if not model.graph.node:
        raise InputError(f"{source}: not a readable ONNX file (no graph)")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise InputError(f"{source}: keeps its weights in external data files; quantize takes a self-contained file")
    return model


def quantize(model: str | Path, precision: str, out: str | Path | None = None, *, data: str | None = None,
             inputs: list[str] | None = None, min_agreement: float = MIN_AGREEMENT,
             max_accuracy_drop: float = MAX_ACCURACY_DROP, calibration_method: str = "minmax",
             calibration_size: int = CALIBRATION_SIZE, max_exclude: int = MAX_EXCLUDE,
             json_path: str | Path | None = None, rounds: int = speed.ROUNDS,
             round_s: float = speed.ROUND_S) -> QuantizeReport:
    """Make the ``precision`` ("int8" or "fp16") variant of the ONNX file ``model`` and write it to
    ``out`` (default ``MODEL.<precision>.onnx``) only when it agrees with the fp32 file on held-out
    data; the report (also at ``json_path``) says how it went either way. Bad input raises
    :class:`InputError`; a refused variant is ``report.written == False``."""
    from onnxparity.onnx_model import softmax_outputs
    from onnxparity.signature import Signature
    from onnxparity.spec import ModelSpec

    _check_arguments(precision, min_agreement, max_accuracy_drop, max_exclude, calibration_size)
    settings_int8 = int8.here(calibration_method) if precision == "int8" else None
    source = Path(model)
    proto = _open(source)
    out = Path(out) if out is not None else source.with_name(f"{source.stem}.{precision}.onnx")
    if out.is_dir():
        raise InputError(f"{out}: a folder; give the variant's file name")
    if out.resolve() == source.resolve():
        raise InputError(f"{out}: that is the fp32 source; write the variant elsewhere")
    props = {m.key: m.value for m in proto.metadata_props}
    if variant.read(props):
        raise InputError(f"{source}: already a {variant.read(props)['precision']} variant; quantize its fp32 source")
    try:
        spec = ModelSpec.from_metadata(props)
    except InputError:
        spec = None  # a plain ONNX file: its inputs come from --inputs
    feeds = calibration_split(spec, Signature.from_onnx(proto), data=data, input_files=inputs,
                              calibration_size=calibration_size)
    gate = VariantGate(min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop)
    marked = tuple(spec.class_outputs if spec else ()) + tuple(softmax_outputs(proto.graph))
    info = {"precision": precision, "source_sha256": sha256_path(source), "gate": gate.to_dict()}
    notes: list[str] = []
    cuda_why = speed.cuda_unavailable() if precision == "fp16" else None
    judge_on = "cuda" if precision == "fp16" and cuda_why is None else "cpu"

    with tempfile.TemporaryDirectory(prefix="onnxparity-quantize-") as tmp:
        tmp = Path(tmp)
        reference = evaluate.outputs_of(source, feeds.batches("held_out", evaluate.EVAL_BATCH))

        def judged(path: Path):
            providers = None if judge_on == "cpu" else ["CUDAExecutionProvider", "CPUExecutionProvider"]
            agree = evaluate.agreement(reference, evaluate.outputs_of(path, feeds.batches("held_out",
                                       evaluate.EVAL_BATCH), providers), feeds.labels, precision, gate, marked)
            return agree, agree.reasons

        if precision == "int8":
            settings = {**settings_int8.to_dict(), "calibration_fingerprint": feeds.fingerprint(),
                        "calibration_data": feeds.calibration_source}
            path, agree, reasons, excluded, chosen = _int8(source, tmp, props, info, settings, settings_int8, feeds,
                                                           judged, max_exclude, notes)
            settings = {**settings, **chosen.to_dict()}
        else:
            settings = {"format": "fp16 weights and compute, float32 inputs and outputs (keep_io_types)",
                        "per_channel": None, "reduce_range": None, "calibration_method": None,
                        "calibration_fingerprint": None, "converter": "onnxruntime.transformers.float16"}
            path, excluded = tmp / "fp16.onnx", []
            _save(fp16.convert(proto), props, {**info, "settings": settings}, path)
            agree, reasons = judged(path)
            if judge_on == "cpu":
                notes.append("judged on CPU, where ONNX Runtime runs most fp16 nodes in float32; judge it on the GPU "
                             "it is meant for before serving it")

        devices = ("cpu", "cuda") if judge_on == "cuda" else ("cpu",)
        ips = speed.measure({"fp32": str(source), precision: str(path)}, next(feeds.batches("held_out", 64)),
                            devices, rounds=rounds, round_s=round_s)
        if precision == "fp16" and cuda_why:
            ips["cuda"] = {"skipped": cuda_why}
            notes.append(f"CUDA speed skipped: {cuda_why}")
        speed_device = "cuda" if "cuda" in ips and "skipped" not in ips["cuda"] else "cpu"
        at64 = ips[speed_device]["64"]
        speedup = round(at64[precision] / at64["fp32"], 3)
        if precision == "int8" and speed_device == "cpu":
            notes.append(_kernels_note(speedup))
        if speedup < 1:
            notes.append(f"the {precision} variant is SLOWER than fp32 here ({speedup:.2f}x at batch 64 on "
                         f"{speed_device}): not advised on this machine; keep serving the fp32 file")
        notes[:0] = [f"refused: {r}" for r in reasons]
        report = QuantizeReport(
            written=not reasons, path=str(out), variant=precision,
            top1_agreement=None if agree.top1_agreement is None else round(agree.top1_agreement, 6),
            cosine=agree.cosine, accuracy=agree.accuracy, max_abs_diff=agree.max_abs_diff, speedup=speedup, images_per_second=ips,
            excluded_nodes=excluded, notes=notes,
            settings={**settings, "source": str(source), "held_out": feeds.held_out_source,
                      "judged_output": agree.output, "judged_on": judge_on, "speed_device": speed_device,
                      **gate.to_dict()})
        if not reasons:
            from onnxparity._io import atomic_path

            try:
                with atomic_path(out) as target:
                    shutil.copyfile(path, target)
            except OSError as exc:
                raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    if json_path:
        report.save(json_path)
    return report


def _save(model, props: dict, info: dict, path: Path) -> None:
    import onnx

    from onnxparity._io import atomic_path

    variant.stamp(model, props, info)
    with atomic_path(path) as tmp:  # a full disk names the file
        onnx.save(model, str(tmp))


def _int8(source, tmp, props, info, settings, settings_int8, feeds, judged, max_exclude, notes):
    """Quantize; while the gate refuses, quantize only the compute ops (:data:`int8.COMPUTE_OPS`), then keep
    the noisiest layers in float (at most ``max_exclude``), noting each try. Returns the chosen attempt:
    (path, agreement, gate reasons, excluded nodes)."""
    import dataclasses

    import onnx

    prepared, ranges = tmp / "prepared.onnx", tmp / "ranges.json"
    int8.prepare(source, prepared)

    def attempt(excluded: list[str], chosen: int8.Int8Settings):
        path = tmp / f"int8-{len(excluded)}-{len(chosen.op_types or ())}.onnx"
        int8.quantize(prepared, path, chosen, feeds.batches("calibration", int8.CALIBRATION_BATCH), ranges,
                      excluded)
        _save(onnx.load(str(path)), props, {**info, "calibration_fingerprint": settings["calibration_fingerprint"],
                                            "settings": {**settings, **chosen.to_dict(), "excluded_nodes": excluded}},
              path)
        agree, reasons = judged(path)
        log.info("int8 with %d layers in float: agreement or cosine %.4f%s", len(excluded), agree.score,
                 f" ({'; '.join(reasons)})" if reasons else "")
        return path, agree, reasons, excluded, chosen

    best = attempt([], settings_int8)
    if best[2] and max_exclude > 0:
        compute = dataclasses.replace(settings_int8, op_types=int8.COMPUTE_OPS)
        tried = attempt([], compute)
        notes.append(f"tried quantizing only {', '.join(int8.COMPUTE_OPS)}: " + _score(tried[1]))
        if not tried[2] or tried[1].score > best[1].score:
            best = tried
    if not best[2] or max_exclude == 0:
        return best
    samples = feeds.batches("calibration", layers.SAMPLES)
    ranking = layers.rank(prepared, best[0], [next(samples)], tmp)
    log.info("per-layer quantization error (SQNR dB, worst first): %s", ranking[:8])
    for k in range(1, min(max_exclude, len(ranking)) + 1):
        tried = attempt([name for name, _ in ranking[:k]], best[4])
        notes.append(f"tried keeping {k} layer(s) in float ({', '.join(f'{n} {db:.1f} dB' for n, db in ranking[:k])}): "
                     + _score(tried[1]))
        if not tried[2]:
            return tried
        if tried[1].score > best[1].score:
            best = tried
    return best


def _kernels_note(speedup: float) -> str:
    """Which int8 kernels the speed was measured on, what they allow against float32 here, and why
    another kind of x86 CPU gives another figure."""
    from onnxparity.machine import int8_kernels

    k = int8_kernels()
    bound = f"at most {k['int8_vs_fp32']:g}x float32's multiply-adds per instruction ({k['fp32_fma']})" \
        if k["int8_vs_fp32"] else "no fixed bound"
    if "vnni" in k["isa"] or k["isa"] == "amx_int8":
        other = ("on x86 without VNNI the same file gains less: vpmaddubsw + vpmaddwd + vpaddd, three instructions "
                 "for what vpdpbusd does in one, 1.33x float32 at most")
    else:
        other = "on x86 with VNNI (vpdpbusd: one instruction for these three) or AMX the same file gains more"
    return (f"int8 ran on ONNX Runtime's {k['kernel']} ({k['isa']}): {bound}; measured {speedup:.2f}x at batch 64, "
            f"quantize/dequantize and the float work around the matrix products included; {other}")


def _score(agree) -> str:
    return (f"top-1 agreement {agree.top1_agreement:.2%}" if agree.top1_agreement is not None
            else f"median cosine {agree.score:.4f}")
