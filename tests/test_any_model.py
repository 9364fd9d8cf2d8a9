"""Any model: convert, check, bench and serve on models of other shapes, made here with random weights.

A Keras application at 32x32x3, a torchvision model built with ``num_classes=10``, a Keras text
model on int32 token ids, a PyTorch model on int64 ids, a PyTorch model with two inputs and two
outputs, a Keras model with two named outputs, and an ONNX file from elsewhere with test data in
the ONNX layout. Each goes through the real exporters and the real parity matrix (CPU backends).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxparity import _process
from tests.helpers import assert_one_line_error, foreign_onnx, foreign_scores, onnxparity

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def converted(result) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def checked(result, report: Path) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(report.read_text())


# -- Keras -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("keras_models")
    for kind in ("text", "application", "two_outputs"):
        _process.call("tests.helpers:save_keras_model", kind, folder / f"{kind}.keras", name=f"save {kind}")
    return folder


def test_keras_text_model_keeps_int32_ids_inside_the_embedding(keras_models, tmp_path):
    out = tmp_path / "text.onnx"
    d = converted(onnxparity("convert", keras_models / "text.keras", "-o", out, "--json"))
    (ids,) = d["spec"]["signature"]["inputs"]
    assert ids["dtype"] == "int32" and ids["shape"] == ["batch", 12] and ids["int_range"] == [0, 100]
    report = tmp_path / "text.json"
    r = checked(onnxparity("check", keras_models / "text.keras", out, "--providers", "cpu", "--json", report), report)
    assert r["passed"] and r["inputs"]["n"] == 64 + 4
    ran = {c["candidate"] for c in r["comparisons"]}
    assert {"keras-torch:cpu", "onnxruntime:cpu", "onnxruntime:cpu:tuned", "onnxruntime:cpu:b1"} <= ran
    assert all(c["judged_as"] == "class scores" and c["top1_agreement"] == 1.0 for c in r["comparisons"])


def test_keras_application_at_another_size(keras_models, tmp_path):
    out = tmp_path / "app.onnx"
    d = converted(onnxparity("convert", keras_models / "application.keras", "-o", out, "--json"))
    assert d["spec"]["signature"]["inputs"][0]["shape"] == ["batch", 32, 32, 3] and d["spec"]["layout"] == "NHWC"
    report = tmp_path / "app.json"
    r = checked(onnxparity("check", keras_models / "application.keras", out, "--providers", "cpu", "--n", 16,
                           "--json", report), report)
    assert r["passed"] and r["inputs"]["kinds"]["random"] == 16
    assert all(c["max_abs_diff"] < 1e-4 for c in r["comparisons"])


def test_keras_dict_outputs_are_matched_by_name(keras_models, tmp_path):
    out = tmp_path / "two.onnx"
    d = converted(onnxparity("convert", keras_models / "two_outputs.keras", "-o", out, "--json"))
    assert [o["name"] for o in d["spec"]["signature"]["outputs"]] == d["output_names"] == ["kind", "size"]
    report = tmp_path / "two.json"
    r = checked(onnxparity("check", keras_models / "two_outputs.keras", out, "--providers", "cpu", "--json", report),
                report)
    judged = {(c["candidate"], c["output"]): c["judged_as"] for c in r["comparisons"]}
    assert judged[("onnxruntime:cpu", "kind")] == "class scores"
    assert judged[("onnxruntime:cpu", "size")] == "element-wise"


# -- PyTorch ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("torch_models")
    for kind in ("two_io", "tokens", "mobilenet"):
        _process.call("tests.torch_models:save_torch_state", kind, folder / f"{kind}.pth", name=f"save {kind}")
    return folder


def test_torchvision_model_built_with_kwargs_is_rebuilt_from_the_metadata(torch_models, tmp_path):
    pth, out = torch_models / "mobilenet.pth", tmp_path / "mobilenet.onnx"
    without = onnxparity("convert", pth, "-o", out, "--torch-class", "torchvision.models:mobilenet_v3_small",
                         "--input-shape", "3,64,64")
    assert_one_line_error(without, "do not fit", "--torch-kwargs")  # "weights do not fit ...; pass them with"
    assert not out.exists()
    d = converted(onnxparity("convert", pth, "-o", out, "--torch-class", "torchvision.models:mobilenet_v3_small",
                             "--torch-kwargs", '{"num_classes": 10}', "--input-shape", "3,64,64", "--json"))
    assert d["spec"]["torch_kwargs"] == {"num_classes": 10} and d["spec"]["layout"] == "NCHW"
    report = tmp_path / "mobilenet.json"  # no flags: the class and its arguments come from the file
    r = checked(onnxparity("check", pth, out, "--providers", "cpu", "--n", 8, "--json", report), report)
    assert r["passed"] and {c["output"] for c in r["comparisons"]} == {"logits"}


def test_two_inputs_two_outputs_and_a_perturbed_file(torch_models, tmp_path):
    pth, out = torch_models / "two_io.pth", tmp_path / "two_io.onnx"
    d = converted(onnxparity("convert", pth, "-o", out, "--torch-class", "tests.torch_models:TwoInTwoOut",
                             "--torch-kwargs", '{"width": 6}', "--input-shape", "image=3,8,8",
                             "--input-shape", "meta=5", "--json"))
    sig = d["spec"]["signature"]
    assert [t["name"] for t in sig["inputs"]] == ["image", "meta"]
    assert [t["name"] for t in sig["outputs"]] == ["logits", "output_1"]  # a tuple: the first named by its kind
    assert set(d["max_abs_diff_per_output"]) == {"logits", "output_1"}
    report = tmp_path / "two_io.json"
    # the class is the user's own: named again (its recorded arguments kept), or --trust-recorded
    r = checked(onnxparity("check", pth, out, "--torch-class", "tests.torch_models:TwoInTwoOut", "--providers", "cpu",
                           "--json", report), report)
    judged = {c["output"]: c["judged_as"] for c in r["comparisons"]}
    assert judged == {"logits": "class scores", "output_1": "element-wise"} and r["passed"]
    openvino = {c["output"]: c for c in r["comparisons"] if c["candidate"] == "openvino:cpu"}
    assert set(openvino) == {"logits", "output_1"} and all(c["passed"] for c in openvino.values())

    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(out))
    init = next(t for t in model.graph.initializer if numpy_helper.to_array(t).ndim == 2)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.5), init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    result = onnxparity("check", pth, broken, "--trust-recorded", "--providers", "cpu")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("onnxparity: error: TwoInTwoOut: onnxruntime:cpu") and "values beyond" in result.stderr
    assert "(and 7 more)" in result.stderr  # both outputs fail in all 4 runtimes on the file, OpenVINO's included


def test_int64_token_ids_stay_inside_the_embedding(torch_models, tmp_path):
    pth, out = torch_models / "tokens.pth", tmp_path / "tokens.onnx"
    d = converted(onnxparity("convert", pth, "-o", out, "--torch-class", "tests.torch_models:TokenClassifier",
                             "--input-shape", "16", "--input-dtype", "int64", "--json"))
    (ids,) = d["spec"]["signature"]["inputs"]
    assert ids["dtype"] == "int64" and ids["int_range"] == [0, 50]
    from onnxparity.onnx_model import OnnxModel

    assert OnnxModel(out).signature.inputs[0].int_range == (0, 50)  # read back from the Gather in the graph
    report = tmp_path / "tokens.json"
    r = checked(onnxparity("check", pth, out, "--torch-class", "tests.torch_models:TokenClassifier", "--providers",
                           "cpu", "--int-range", "0,50", "--json", report), report)
    assert r["passed"]
    bench = onnxparity("bench", out, "--batch-sizes", "1,4", "--rounds", "2", "--round-time", "0.02",
                       "--warmup", "0.01")
    assert bench.returncode == 0 and "onnxruntime" in bench.stdout, bench.stdout + bench.stderr


# -- ONNX from elsewhere ---------------------------------------------------------------------------
def _write_test_data(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    from onnx import numpy_helper

    for i in range(len(x)):
        d = folder / f"test_data_set_{i}"
        d.mkdir(parents=True)
        (d / "input_0.pb").write_bytes(numpy_helper.from_array(x[i : i + 1], "features").SerializeToString())
        (d / "output_0.pb").write_bytes(numpy_helper.from_array(y[i : i + 1], "scores").SerializeToString())


def test_plain_onnx_file_against_saved_test_data(tmp_path):
    model = tmp_path / "foreign.onnx"
    w, b = foreign_onnx(model)
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    y = foreign_scores(x, w, b)
    good, bad = tmp_path / "good", tmp_path / "bad"
    _write_test_data(good, x, y.astype(np.float32))
    _write_test_data(bad, x, np.roll(y, 1, axis=1).astype(np.float32))
    report = tmp_path / "r.json"
    r = checked(onnxparity("check", model, "--reference", good, "--providers", "cpu", "--json", report), report)
    assert r["passed"] and {c["reference"] for c in r["comparisons"]} == {"saved"} and r["inputs"]["n"] == 5
    assert {c["candidate"] for c in r["comparisons"]} >= {"onnxruntime:cpu", "onnxruntime:cpu:tuned"}
    failed = onnxparity("check", model, "--reference", bad, "--providers", "cpu")
    assert failed.returncode == 1 and "top-1 agreement" in failed.stderr, failed.stderr
    served = onnxparity("bench", model, "--batch-sizes", "2", "--rounds", "1", "--round-time", "0.01", "--warmup", "0")
    assert served.returncode == 0, served.stderr
    twin = tmp_path / "twin.onnx"  # check A B: two ONNX files directly, the first's plain CPU run the reference
    twin.write_bytes(model.read_bytes())
    r = checked(onnxparity("check", model, twin, "--providers", "cpu", "--json", report), report)
    assert {c["candidate"] for c in r["comparisons"]} >= {"B:onnxruntime:cpu", "onnxruntime:cpu:tuned"}
    assert {c["reference"] for c in r["comparisons"]} == {"onnxruntime:cpu"} and r["passed"]


def test_a_dynamic_axis_needs_its_size_and_then_runs(tmp_path):
    model = tmp_path / "seq.onnx"
    w, b = foreign_onnx(model, seq_axis=True)
    npz = tmp_path / "ref.npz"
    x = np.random.default_rng(3).standard_normal((3, 4, 6)).astype(np.float32)
    np.savez(npz, features=x, scores=foreign_scores(x, w, b))
    report = tmp_path / "r.json"
    r = checked(onnxparity("check", model, "--reference", npz, "--providers", "cpu", "--json", report), report)
    assert r["passed"]
    bench = onnxparity("bench", model, "--batch-sizes", "2", "--rounds", "1")
    assert_one_line_error(bench, "dynamic axis 'seq'", "--input-shape features=")
    ok = onnxparity("bench", model, "--batch-sizes", "2", "--rounds", "1", "--round-time", "0.01", "--warmup", "0",
                    "--input-shape", "features=4,6")
    assert ok.returncode == 0, ok.stderr


# -- what is refused, in one line ------------------------------------------------------------------
def test_error_paths_exit_2(torch_models, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("n", TensorProto.INT64, [])
    graph = helper.make_graph([helper.make_node("SequenceLength", ["xs"], ["n"])], "g", [seq], [y])
    odd = tmp_path / "sequence.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(odd))
    assert_one_line_error(onnxparity("check", odd, "--reference", tmp_path), "not a tensor")
    foreign = tmp_path / "foreign.onnx"
    foreign_onnx(foreign)
    assert_one_line_error(onnxparity("check", foreign), "--reference")
    pth = torch_models / "two_io.pth"
    klass = ["--torch-class", "tests.torch_models:TwoInTwoOut", "--torch-kwargs"]
    assert_one_line_error(onnxparity("convert", pth, *klass, "[1]"), "JSON object")
    assert_one_line_error(onnxparity("convert", pth, *klass, '{"width": 6}', "--input-shape", "3,8,8"),
                          "name each")
    assert_one_line_error(onnxparity("convert", pth, *klass, '{"width": 6}', "--input-shape", "picture=3,8,8",
                                     "--input-shape", "meta=5"), "no input called picture")
    assert_one_line_error(onnxparity("convert", pth, "--torch-class", "tests.torch_models:Nope"), "cannot import")
    assert_one_line_error(onnxparity("check", foreign, "--reference", tmp_path / "missing"), "no such file")
