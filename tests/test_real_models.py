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
from tests.helpers import assert_one_line_error, console_script, onnxparity

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
