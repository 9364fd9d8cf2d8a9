"""Real models as users ship them, through every command: the pretrained MiniLM on real sentences,
ONNX files from other exporters (plain torch.onnx.export, Keras' own export), a Keras model with a
registered custom layer and an ExportedProgram whose output class needs its module imported.

Slow: each model runs through the real exporters and workers once; they share the session fixtures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onnxparity import _process
from tests.helpers import assert_one_line_error, console_script, onnxparity, perturb_module

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def passed(result, report: Path) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    r = json.loads(report.read_text())
    assert r["passed"]
    return r


def test_plain_torch_onnx_export_is_checked_against_its_original_by_order(minilm_plain, tmp_path):
    from tests.minilm import PLAIN_NAMES

    pth, plain, env = minilm_plain["pth"], minilm_plain["onnx"], minilm_plain["env"]
    no_class = onnxparity("check", pth, plain, "--inputs", minilm_plain["sentences"], env=env)
    assert_one_line_error(no_class, "written by another exporter", "--torch-class")
    report = tmp_path / "plain.json"
    result = onnxparity("check", pth, plain, "--torch-class", minilm_plain["torch_class"], "--inputs",
                        minilm_plain["sentences"], "--providers", "cpu", "--json", report, env=env, timeout=600)
    r = passed(result, report)
    assert {c["output"] for c in r["comparisons"]} == set(PLAIN_NAMES["outputs"])
    # the file's own dynamic sequence axis, run at a second length too
    assert [m["name"] for m in r["models"]] == ["minilm.plain", f"minilm.plain@sequence={2 * minilm_plain['length']}"]
    reference = next(b for b in r["backends"] if b["role"] == "reference")
    assert reference["details"]["matched"]["inputs"] == {"by": "order", "pairs": [
        ["ids", "input_ids"], ["mask", "attention_mask"], ["segments", "token_type_ids"]]}
    assert reference["details"]["matched"]["outputs"]["by"] == "order"
    assert "inputs by order (ids = input_ids, mask = attention_mask, segments = token_type_ids)" in result.stdout
    assert "arrays matched to inputs by order: input_ids -> ids" in result.stdout  # the .npz's names too
    assert all(c["tolerance_source"].startswith("float64") for c in r["comparisons"])

    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(plain))  # the TorchScript exporter names nodes by scope, under the wrapper's "model"
    query = next(n for n in model.graph.node if n.name == "/model/bert/encoder/layer.3/attention/self/query/MatMul")
    weight = next(t for t in model.graph.initializer if t.name in query.input)
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.01), weight.name))
    bad, located = tmp_path / "plain.bad.onnx", tmp_path / "locate.json"
    onnx.save(model, str(bad))
    done = onnxparity("locate", pth, bad, "--torch-class", minilm_plain["torch_class"], "--inputs",
                      minilm_plain["sentences"], "--json", located, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(located.read_text())["first_divergence"]["original_layer"] == \
        "bert.encoder.layer.3.attention.self.query"


@pytest.fixture(scope="module")
def gated_keras(tmp_path_factory) -> Path:
    """A user's folder: the Keras model with a registered custom layer (``tests/keras_custom_layer.py``, copied
    in as the user's ``gate_layers.py``), its Keras' own ONNX export, nothing on ``PYTHONPATH``."""
    folder = tmp_path_factory.mktemp("gated")
    shutil.copy(ROOT / "tests" / "keras_custom_layer.py", folder / "gate_layers.py")
    _process.call("tests.keras_custom_layer:save", folder / "gated.keras", folder / "keras_export.onnx",
                  name="save the gated Keras model")
    return folder


def test_keras_custom_layer_loads_after_import_found_from_the_current_folder(gated_keras, tmp_path):
    from onnxparity.errors import InputError

    folder = gated_keras
    out = folder / "gated.onnx"
    with pytest.raises(InputError, match="custom layers, pass --import MODULE"):
        _process.call("onnxparity.models.keras_cnn:load", folder / "gated.keras", name="load without the import")
    converted = console_script(folder, "convert", "gated.keras", "-o", out, "--import", "gate_layers", "--json")
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert json.loads(converted.stdout)["spec"]["imports"] == ["gate_layers"]
    refused = console_script(folder, "check", "gated.keras", out)  # recorded, but not named again
    assert_one_line_error(refused, "asks to import gate_layers", "pass --import gate_layers")
    # Keras' own export (tf2onnx inside, no onnxparity metadata), checked against the model: fed as its signature says
    report = tmp_path / "keras_export.json"
    r = passed(console_script(folder, "check", "gated.keras", "keras_export.onnx", "--import", "gate_layers",
                              "--providers", "cpu", "--n", "16", "--json", report), report)
    spec = r["models"][0]["spec"]
    assert spec["layout"] == "NHWC" and spec["input_shape"] == [16, 16, 3]
    assert {c["candidate"] for c in r["comparisons"]} >= {"keras-torch:cpu", "onnxruntime:cpu"}


def test_exported_program_with_registered_output_class_needs_its_module(tmp_path):
    from onnxparity.errors import InputError

    program, out = tmp_path / "tagger.pt2", tmp_path / "tagger.onnx"
    _process.call("tests.torch_models:save_tagger_program", program, name="export the tagger")
    with pytest.raises(InputError, match="TagScores in pytree is not registered.*pass --import MODULE"):
        _process.call("onnxparity.models.torch_io:load_program", program, name="load without the import")
    converted = onnxparity("convert", program, "-o", out, "--import", "tests.torch_models", "--json")
    assert converted.returncode == 0, converted.stderr
    d = json.loads(converted.stdout)
    assert d["spec"]["name"] == "tagger" and d["output_names"] == ["logits", "features"]  # the class's fields
    assert_one_line_error(onnxparity("check", program, out), "asks to import tests.torch_models")
    report = tmp_path / "tagger.json"
    r = passed(onnxparity("check", program, out, "--import", "tests.torch_models", "--providers", "cpu", "--n", "8",
                          "--json", report), report)
    (reference,) = [b for b in r["backends"] if b["role"] == "reference"]
    assert reference["label"] == "torch:cpu" and reference["details"]["matched"]["outputs"] == {"by": "name"}
    located = tmp_path / "locate.json"  # the program's module hierarchy restored: its layers named
    done = onnxparity("locate", program, out, "--import", "tests.torch_models", "--n", "8", "--json", located)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [layer["original_layer"] for layer in json.loads(located.read_text())["layers"]] == ["body", "head"]
    bench = onnxparity("bench", program, "--import", "tests.torch_models", "--backends", "torch.eager,onnxruntime",
                       "--batch-sizes", "4", "--rounds", "1", "--round-time", "0.02", "--warmup", "0")
    assert bench.returncode == 0 and "torch.eager" in bench.stdout, bench.stdout + bench.stderr


# -- the real MiniLM: locate, quantize, bench and serve --------------------------------------------
@pytest.fixture(scope="module")
def minilm_int8(minilm, tmp_path_factory) -> dict:
    """MiniLM's int8 variant by `onnxparity quantize`, calibrated on 128 other real sentences (from Python's
    documentation) and judged on the 32 test sentences; ``report`` is its JSON report."""
    from tests.minilm import save_calibration

    folder = tmp_path_factory.mktemp("minilm-int8")
    calibration = save_calibration(folder / "calibration.npz", minilm["length"])
    out, report = folder / "minilm.int8.onnx", folder / "quantize.json"
    result = onnxparity("quantize", minilm["onnx"], "--int8", "--inputs", calibration, minilm["sentences"], "-o", out,
                        "--rounds", "2", "--json", report, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"onnx": out, "report": json.loads(report.read_text())}


def test_minilm_int8_calibrated_on_real_sentences_passes_the_gate_by_cosine_and_snr(minilm_int8):
    r = minilm_int8["report"]
    assert r["written"] and r["settings"]["calibration_data"].startswith("128 samples of")
    assert set(r["cosine"]) == {"last_hidden_state", "pooler_output"}  # embeddings: no top-1 agreement
    assert all(c["median"] >= r["settings"]["min_cosine_median"] for c in r["cosine"].values())
    assert r["speedup"] > 0 and r["images_per_second"]["cpu"]["64"]["int8"] > 0


def test_locate_names_the_perturbed_transformer_layer(minilm, tmp_path):
    bad, report = tmp_path / "minilm.bad.onnx", tmp_path / "locate.json"
    perturb_module(minilm["onnx"], bad, "bert.encoder.layer.3.attention.self.query")
    result = onnxparity("locate", minilm["pth"], bad, "--torch-class", minilm["torch_class"], "--inputs",
                        minilm["sentences"], "--json", report, env=minilm["env"], timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    r = json.loads(report.read_text())
    assert r["first_divergence"]["original_layer"] == "bert.encoder.layer.3.attention.self.query"
    layers = {layer["original_layer"]: layer for layer in r["layers"]}
    # integer inputs fed as they are; an attention returning (context, weights) compared on its first output
    assert layers["bert.embeddings.word_embeddings"]["cumulative"]["exact"]
    assert layers["bert.encoder.layer.2.attention.self"]["verdict"] == "ok"
    assert layers["bert.encoder.layer.3.attention.self"]["verdict"] == "inherits"


def test_locate_an_int8_variant_node_by_node_against_its_fp32_file(minilm, minilm_int8, tmp_path):
    report = tmp_path / "variant.json"
    result = onnxparity("locate", minilm["onnx"], minilm_int8["onnx"], "--inputs", minilm["sentences"], "--json",
                        report, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    r = json.loads(report.read_text())
    kinds = {layer["kind"] for layer in r["layers"]}
    assert {"MatMul", "LayerNormalization", "Softmax"} <= kinds  # the fp32 file's nodes, matched by tensor name
    assert r["first_divergence"]["kind"] in ("MatMul", "Add", "Gemm")  # the first quantized matrix product
    assert len(r["worst"]) == 5 and r["worst"][0]["sqnr_db"] <= r["worst"][-1]["sqnr_db"]
    assert "loses most by itself" in result.stdout


def test_one_file_on_another_provider_node_by_node(torch_onnx, tmp_path):
    report = tmp_path / "providers.json"
    result = onnxparity("locate", torch_onnx, "--provider", "cpu", "--n", "8", "--json", report)
    assert result.returncode == 0, result.stdout + result.stderr
    r = json.loads(report.read_text())
    assert r["inputs"]["provider"] == "cpu" and len(r["layers"]) > 5
    assert all(layer["cumulative"]["exact"] for layer in r["layers"])


def test_bench_and_serve_minilm_with_a_dynamic_sequence_axis(minilm_dynamic, tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    from tests import minilm as m

    shapes = [a for name in m.INPUT_NAMES for a in ("--input-shape", f"{name}=24")]
    bench = onnxparity("bench", minilm_dynamic["onnx"], *shapes, "--batch-sizes", "1,4", "--rounds", "1",
                       "--round-time", "0.05", "--warmup", "0.02", "--backends", "onnxruntime", timeout=600)
    assert bench.returncode == 0 and "onnxruntime" in bench.stdout, bench.stdout + bench.stderr

    served = tmp_path / "models"
    served.mkdir()
    shutil.copy(minilm_dynamic["onnx"], served / "minilm.onnx")
    log = tmp_path / "serve.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "onnxparity", "serve", str(served), "--port", "0"], cwd=ROOT,
                                stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline, port = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None and port is None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
            port = found.group(1) if found and "ready" in log.read_text() else None
            time.sleep(0.2)
        assert port, log.read_text()
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        for length in (None, 2 * minilm_dynamic["length"]):  # the example's length and another
            feeds = m.tokenize(m.SENTENCES[:6], length=length)
            inputs = []
            for name, array in feeds.items():
                tensor = httpclient.InferInput(name, list(array.shape), "INT64")
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
            answer = client.infer("minilm", inputs)
            expected = _process.call("tests.minilm:torch_outputs", minilm_dynamic["folder"], feeds,
                                     name="PyTorch MiniLM")
            for name, value in expected.items():
                np.testing.assert_allclose(answer.as_numpy(name), value, atol=2e-4, rtol=0)
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in log.read_text()


# -- image models with random weights: a ViT, an EfficientNet-like CNN -----------------------------
@pytest.mark.parametrize("kind, torch_class, module", [
    ("vit", "torchvision.models:VisionTransformer", "encoder.layers.encoder_layer_3.mlp.0"),
    ("efficientnet", "tests.torch_models:TinyEfficientNet", "blocks.1.depthwise.1"),  # the BatchNorm, its Conv folded in
])
def test_image_model_through_convert_check_locate_quantize_and_bench(kind, torch_class, module, tmp_path):
    from tests.torch_models import VIT_KWARGS

    _process.call("tests.torch_models:save_with_inputs", kind, tmp_path, name=f"save {kind}")
    pth, out, images = tmp_path / "model.pth", tmp_path / "model.onnx", tmp_path / "images.npz"
    build = ["--torch-class", torch_class] + (["--torch-kwargs", json.dumps(VIT_KWARGS)] if kind == "vit" else [])
    converted = onnxparity("convert", pth, "-o", out, *build, "--input-shape", "3,64,64", "--json", timeout=600)
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert json.loads(converted.stdout)["spec"]["layout"] == "NCHW"
    report = tmp_path / "check.json"
    r = passed(onnxparity("check", pth, out, *build, "--providers", "cpu", "--n", "8", "--json", report), report)
    assert all(c["tolerance_source"].startswith("float64") for c in r["comparisons"])

    bad, located = tmp_path / "bad.onnx", tmp_path / "locate.json"
    perturb_module(out, bad, module, factor=1.05)
    done = onnxparity("locate", pth, bad, *build, "--n", "8", "--json", located, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(located.read_text())["first_divergence"]["original_layer"] == module

    quantized = tmp_path / "quantize.json"
    q = onnxparity("quantize", out, "--int8", "--inputs", images, "--calibration-size", "32", "--max-exclude", "0",
                   "--rounds", "1", "--json", quantized, timeout=600)
    assert q.returncode in (0, 1), q.stdout + q.stderr  # written, or refused by the gate: judged either way
    judged = json.loads(quantized.read_text())
    assert judged["top1_agreement"] is not None and judged["speedup"] > 0

    bench = onnxparity("bench", out, "--batch-sizes", "1,8", "--rounds", "1", "--round-time", "0.02", "--warmup", "0",
                       "--backends", "onnxruntime")
    assert bench.returncode == 0 and "onnxruntime" in bench.stdout, bench.stdout + bench.stderr
