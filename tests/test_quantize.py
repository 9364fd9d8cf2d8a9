"""Quantize (issue 12): int8 and fp16 variants of real converted models, gated on real digits.

The ONNX files are converted in worker processes from the conftest's briefly trained reference
models and from a small PyTorch model trained here on downsampled real digits (a "user" model:
14x14 inputs, so not a reference digit model, calibrated from --inputs). Timing runs one short
round: these tests check what is reported, never how fast anything is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxparity import _process
from onnxparity.cli import main
from onnxparity.onnx_model import OnnxModel
from onnxparity.quantize import quantize, variant_of
from onnxparity.quantize.int8 import cpu_settings
from onnxparity._io import sha256_path

FAST = dict(rounds=1, round_s=0.02)
REPORT_FIELDS = {"written", "path", "variant", "top1_agreement", "accuracy", "max_abs_diff", "speedup",
                 "images_per_second", "excluded_nodes", "settings", "notes", "cosine"}


# -- models made in worker processes -------------------------------------------------------------
def shrink(images: np.ndarray) -> np.ndarray:
    """28x28 uint8 digits -> 14x14 floats in 0..1 (2x2 means): the user model's inputs."""
    x = images.astype(np.float32).reshape(len(images), 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
    return x[:, None, :, :]


def make_user_model(out: str) -> str:
    """A small PyTorch CNN trained briefly on shrunken real digits, converted to ONNX (in a worker)."""
    import torch
    from torch import nn

    from onnxparity.convert import convert
    from onnxparity.data import load_digits

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(),
                          nn.Linear(16, 10))
    train = load_digits(None, "train")
    x, y = torch.from_numpy(shrink(train.images)), torch.from_numpy(train.labels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    path = str(convert(model.eval(), out, input_shape=(1, 14, 14)).path)
    # The same function with one hidden unit 1000x larger and its outgoing weights 1000x smaller:
    # exact in float, but that activation outlier leaves the other 15 units almost no int8 levels.
    with torch.no_grad():
        model[8].weight[0] *= 1000.0
        model[8].bias[0] *= 1000.0
        model[10].weight[:, 0] /= 1000.0
    convert(model.eval(), out.replace(".onnx", "-outlier.onnx"), input_shape=(1, 14, 14))
    return path


@pytest.fixture(scope="module")
def onnx_files(keras_checkpoint, torch_checkpoint, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("quantize")
    workers = {fw: _process.Worker("onnxparity.convert:convert", str(ckpt), str(out / f"{fw}.onnx"),
                                   name=f"convert {fw}")
               for fw, ckpt in (("keras", keras_checkpoint), ("torch", torch_checkpoint))}
    workers["torch-uint8"] = _process.Worker("onnxparity.convert:convert", str(torch_checkpoint),
                                             str(out / "torch-uint8.onnx"), embed_preprocessing=True, name="uint8")
    workers["user"] = _process.Worker("tests.test_quantize:make_user_model", str(out / "user.onnx"), name="user")
    files = {name: Path(str(w.result().path if name != "user" else w.result())) for name, w in workers.items()}
    return {**files, "outlier": out / "user-outlier.onnx"}


@pytest.fixture(scope="module")
def user_inputs(tmp_path_factory, test_digits) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "user.npz"
    np.savez(path, input=shrink(test_digits.images), labels=test_digits.labels)
    return path


def _run(path, feed):
    from onnxparity.runners.sessions import make_session

    session = make_session(path, tuned=False)
    return session.run(None, {session.get_inputs()[0].name: feed})[0]


# -- int8 on both reference models ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "torch", "torch-uint8"])  # uint8: preprocessing in the graph
def test_reference_models_to_int8_on_real_digits(framework, onnx_files, tmp_path, test_digits):
    import onnx

    from onnxparity.spec import ModelSpec

    source = onnx_files[framework]
    out = tmp_path / f"{framework}.int8.onnx"
    report = quantize(source, "int8", out, json_path=tmp_path / "report.json", **FAST)
    assert report.written and out.is_file(), report.summary()
    assert report.top1_agreement >= 0.99
    assert set(report.accuracy) == {"fp32", "int8"}
    assert report.accuracy["fp32"] - report.accuracy["int8"] <= 0.005
    saved = json.loads((tmp_path / "report.json").read_text())
    assert set(saved) == REPORT_FIELDS
    assert set(saved["images_per_second"]["cpu"]) == {"1", "64"}
    assert saved["speedup"] == pytest.approx(saved["images_per_second"]["cpu"]["64"]["int8"]
                                             / saved["images_per_second"]["cpu"]["64"]["fp32"], rel=1e-2)
    from onnxparity.machine import int8_kernels

    assert any(n.startswith(f"int8 ran on ONNX Runtime's {int8_kernels()['kernel']}") for n in saved["notes"])
    s = saved["settings"]
    assert (s["format"], s["per_channel"], s["calibration_method"]) == ("QDQ", True, "minmax")
    assert "1000 digits of bundled" in s["calibration_data"] and "test" in s["held_out"]

    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    info = variant_of(out)
    assert info["precision"] == "int8" and info["source_sha256"] == sha256_path(source)
    assert info["calibration_fingerprint"] == s["calibration_fingerprint"] and len(s["calibration_fingerprint"]) == 64
    props = {m.key: m.value for m in model.metadata_props}
    assert ModelSpec.from_metadata(props) == ModelSpec.from_metadata(
        {m.key: m.value for m in onnx.load(str(source)).metadata_props})
    assert OnnxModel(out).precision == "int8" and OnnxModel(source).precision == "float32"

    spec = ModelSpec.from_metadata(props)  # the variant predicts real digits as the report says
    x = spec.preprocess(test_digits.images)
    agree = (_run(out, x).argmax(1) == _run(source, x).argmax(1)).mean()
    assert agree == pytest.approx(report.top1_agreement)


@pytest.mark.slow
def test_check_judges_a_variant_by_agreement_and_accuracy(torch_checkpoint, onnx_files, tmp_path, capsys):
    variant = tmp_path / "torch.int8.onnx"
    assert main(["quantize", str(onnx_files["torch"]), "--int8", "-o", str(variant), "--rounds", "1"]) == 0
    capsys.readouterr()
    assert main(["check", str(torch_checkpoint), str(variant), "--cpu-only", "--providers", "cpu",
                 "--json", str(tmp_path / "parity.json")]) == 0
    assert "int8 variant: class scores by top-1 agreement" in capsys.readouterr().out
    comparisons = json.loads((tmp_path / "parity.json").read_text())["comparisons"]
    assert {c["candidate"] for c in comparisons} == {"onnxruntime:cpu", "onnxruntime:cpu:tuned", "onnxruntime:cpu:b1",
                                                     "openvino:cpu"}
    for c in comparisons:
        assert c["passed"] and c["atol"] is None and c["checks"]["variant"]["precision"] == "int8"
        assert c["checks"]["variant"]["accuracy"]["variant"] >= c["checks"]["variant"]["accuracy"]["reference"] - 0.005
    # Under float32's element-wise tolerance the same file fails: int8 is not within 1e-5.
    assert max(c["max_abs_diff"] for c in comparisons) > 1e-3


# -- the gate ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_gate_refuses_and_writes_no_variant(onnx_files, user_inputs, tmp_path, capsys):
    # Calibrated on inputs a hundredth of the real range, every activation range is far too small:
    # the held-out digits saturate and no three layers kept in float can save the agreement.
    with np.load(user_inputs) as f:
        np.savez(tmp_path / "dim.npz", input=f["input"] * 0.01)
    out, report = tmp_path / "user.int8.onnx", tmp_path / "report.json"
    code = main(["quantize", str(onnx_files["user"]), "--int8", "-o", str(out), "--inputs", str(tmp_path / "dim.npz"),
                 str(user_inputs), "--json", str(report), "--rounds", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert not out.exists() and not list(tmp_path.glob(".user.int8*"))
    assert "NOT written" in captured.out and captured.err.startswith("onnxparity: error: int8 variant not written")
    saved = json.loads(report.read_text())
    assert saved["written"] is False and saved["top1_agreement"] < 0.99
    tries = [n for n in saved["notes"] if n.startswith("tried keeping")]  # the noisiest layers in float
    assert [t.split(" layer")[0] for t in tries] == ["tried keeping 1", "tried keeping 2", "tried keeping 3"]
    assert saved["notes"][0].startswith("refused: output logits: top-1 agreement")


@pytest.mark.slow
def test_user_model_calibrated_from_inputs(onnx_files, user_inputs, tmp_path):
    out = tmp_path / "user.int8.onnx"
    report = quantize(onnx_files["user"], "int8", out, inputs=[str(user_inputs)], **FAST)
    assert report.written, report.summary()
    s = report.settings
    assert s["calibration_data"] == f"400 samples of {user_inputs} (seeded split)"
    assert s["held_out"] == f"100 other samples of {user_inputs}"
    assert set(report.accuracy) == {"fp32", "int8"} and report.top1_agreement >= 0.99
    assert variant_of(out)["calibration_fingerprint"] == s["calibration_fingerprint"]
    # The same inputs without labels: judged by agreement alone.
    with np.load(user_inputs) as f:
        np.savez(tmp_path / "unlabelled.npz", input=f["input"])
    again = quantize(onnx_files["user"], "int8", tmp_path / "u2.onnx", inputs=[str(tmp_path / "unlabelled.npz")],
                     **FAST)
    assert again.written and again.accuracy is None
    assert again.settings["calibration_fingerprint"] == s["calibration_fingerprint"]  # labels are not calibrated on


@pytest.mark.slow
def test_layers_that_cost_the_agreement_are_kept_in_float(onnx_files, user_inputs, tmp_path):
    out = tmp_path / "outlier.int8.onnx"
    plain = quantize(onnx_files["outlier"], "int8", tmp_path / "none.onnx", inputs=[str(user_inputs)], max_exclude=0,
                     **FAST)
    assert not plain.written and plain.top1_agreement < 0.99  # the outlier ruins int8 everywhere it is read
    report = quantize(onnx_files["outlier"], "int8", out, inputs=[str(user_inputs)], **FAST)
    assert report.written and report.top1_agreement >= 0.99, report.summary()
    assert 1 <= len(report.excluded_nodes) <= 3
    assert variant_of(out)["settings"]["excluded_nodes"] == report.excluded_nodes
    import onnx

    graph = onnx.load(str(out)).graph
    kept = [n for n in graph.node if n.name in report.excluded_nodes]
    assert kept and all(n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in kept)


# -- fp16 ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_fp16_variant_is_produced_and_checked(framework, onnx_files, tmp_path):
    import onnx

    out = tmp_path / f"{framework}.fp16.onnx"
    report = quantize(onnx_files[framework], "fp16", out, **FAST)  # this ONNX Runtime must run the fp16 file
    assert report.written and report.top1_agreement >= 0.99, report.summary()
    assert set(report.max_abs_diff) == {o.name for o in onnx.load(str(onnx_files[framework])).graph.output}
    assert all(d is not None and 0 < d < 1 for d in report.max_abs_diff.values())  # half: not exact, not far off
    model = onnx.load(str(out))
    elem = {i.name: i.type.tensor_type.elem_type for i in [*model.graph.input, *model.graph.output]}
    assert set(elem.values()) == {onnx.TensorProto.FLOAT}  # float32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert variant_of(out)["precision"] == "fp16" and "calibration_fingerprint" not in variant_of(out)
    if report.settings["judged_on"] == "cpu":
        assert "skipped" in report.images_per_second["cuda"]
        assert any(n.startswith("CUDA speed skipped") for n in report.notes)
    else:
        assert set(report.images_per_second["cuda"]) == {"1", "64"}


# -- variants in the other commands ----------------------------------------------------------------
@pytest.mark.slow
def test_serve_bench_and_triton_take_variants(onnx_files, tmp_path, test_digits):
    from onnxparity.bench.models import _model
    from onnxparity.serve import load_models
    from onnxparity.serve.repository import warm_up
    from onnxparity.serve.triton import export_triton

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "torch.onnx").write_bytes(onnx_files["torch"].read_bytes())
    assert quantize(folder / "torch.onnx", "int8", **FAST).written  # -> folder/torch.int8.onnx
    models = load_models(folder)
    assert set(models) == {"torch", "torch.int8"}
    for model in models.values():
        warm_up(model, 8)
        out = model.run(model.digits_feed(test_digits.images[:64]))[model.digit_output]
        assert (out.argmax(1) == test_digits.labels[:64]).mean() > 0.8
    assert _model(folder / "torch.int8.onnx").name == "torch_net.int8"
    written = export_triton(folder, tmp_path / "triton")
    copied = {m.name: m for m in written}
    assert (tmp_path / "triton" / "torch.int8" / "1" / "model.onnx").read_bytes() == \
        (folder / "torch.int8.onnx").read_bytes()
    assert "torch.int8" in copied


# -- settings and errors -------------------------------------------------------------------------
def test_reduce_range_follows_the_cpu_as_ort_advises():
    vnni = cpu_settings({"avx2", "avx512f", "avx512_vnni"}, "x86_64")
    assert (vnni.reduce_range, vnni.activation_type, vnni.weight_type) == (False, "QUInt8", "QInt8")
    assert cpu_settings({"avx2", "avx_vnni"}, "x86_64").reduce_range is False
    old = cpu_settings({"avx2", "avx512f"}, "x86_64")
    assert (old.reduce_range, old.activation_type) == (True, "QUInt8")
    arm = cpu_settings({"asimd"}, "aarch64", "entropy")
    assert (arm.reduce_range, arm.activation_type, arm.calibration_method) == (False, "QInt8", "entropy")


def test_int8_kernels_follow_the_cpu_flags_as_mlas_picks_them():
    """Why int8's speed-up differs between CPUs: VNNI's one instruction against three without it."""
    from onnxparity.machine import int8_kernels

    avx2 = int8_kernels({"avx", "avx2", "fma"}, "x86_64")
    assert avx2["isa"] == "avx2" and "vpmaddubsw" in avx2["kernel"] and avx2["int8_vs_fp32"] == pytest.approx(1.33)
    vnni = int8_kernels({"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni"}, "x86_64")
    assert vnni["isa"] == "avx512_vnni" and "vpdpbusd" in vnni["kernel"] and vnni["int8_vs_fp32"] == 4.0
    assert int8_kernels({"avx2", "avx_vnni"}, "x86_64")["isa"] == "avx_vnni"
    assert int8_kernels({"avx2", "avx512f", "avx512bw"}, "x86_64")["int8_vs_fp32"] == pytest.approx(1.33)
    assert int8_kernels({"amx_int8", "avx512_vnni"}, "x86_64")["isa"] == "amx_int8"
    assert int8_kernels({"asimd"}, "aarch64")["int8_vs_fp32"] is None


@pytest.mark.slow
def test_error_paths_exit_2_and_write_nothing(onnx_files, user_inputs, tmp_path, capsys):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    with np.load(user_inputs) as f:
        np.savez(tmp_path / "wrong_name.npz", image=f["input"])
        np.savez(tmp_path / "wrong_shape.npz", input=f["input"][:, :, :7])
    torch_onnx, user = str(onnx_files["torch"]), str(onnx_files["user"])
    variant = tmp_path / "v.onnx"
    cases = [
        ([str(tmp_path / "missing.onnx"), "--int8"], "no such ONNX file"),
        ([str(not_onnx), "--int8"], "not a readable ONNX file"),
        ([torch_onnx, "--int8", "--min-agreement", "1.5"], "--min-agreement must lie in 0..1"),
        ([torch_onnx, "--int8", "--max-accuracy-drop", "-0.1"], "--max-accuracy-drop must lie in 0..1"),
        ([torch_onnx, "--int8", "--data", str(tmp_path / "nowhere")], "no such file or folder"),
        ([torch_onnx, "--int8", "-o", torch_onnx], "that is the fp32 source"),
        ([user, "--int8"], "give its inputs with --inputs"),
        ([user, "--int8", "--inputs", str(tmp_path / "wrong_name.npz")], "no array for input 'input'"),
        ([user, "--int8", "--inputs", str(tmp_path / "wrong_shape.npz")], "has shape"),
        ([user, "--int8", "--inputs", str(tmp_path / "none.npz")], "no such file"),
        ([user, "--int8", "--inputs", str(not_onnx)], "not a .npz or .npy"),
    ]
    for args, message in cases:
        assert main(["quantize", *args, "-o", str(variant), "--rounds", "1"] if "-o" not in args
                    else ["quantize", *args, "--rounds", "1"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("onnxparity: error: ") and message in err and err.count("\n") == 1, (args, err)
        assert not variant.exists()
    assert quantize(torch_onnx, "int8", variant, **FAST).written
    capsys.readouterr()
    assert main(["quantize", str(variant), "--int8", "-o", str(tmp_path / "again.onnx")]) == 2
    assert "already a int8 variant" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: one of --int8/--fp16, not both
        main(["quantize", torch_onnx, "--int8", "--fp16"])
    assert exit_info.value.code == 2
