"""migrate: Keras <-> PyTorch through ONNX with parity on every leg, and train --from the result.

Every case runs the real frameworks in worker processes and checks the migrated files as loaded
back (torch weights_only, Keras safe_mode) against the source and its ONNX file.
"""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest

from onnxparity import _process
from onnxparity.errors import InputError
from onnxparity.migrate import migrate
from tests import migrate_helpers
from tests.test_cli import assert_one_line_error, onnxparity

pytestmark = pytest.mark.slow
HELPERS = "tests.migrate_helpers"


def assert_legs_pass(result, n_legs=3, classes=True):
    """Every leg within tolerance; with ``classes`` (the model has a class-score output) its top-1
    agreement is measured, and total."""
    assert len(result.legs) == n_legs
    for leg in result.legs:
        assert leg.passed and leg.max_abs_diff < 1e-4, leg
        if classes:
            assert leg.argmax_agreement == 1.0, leg


def torch_source_shape(folder):
    """model.py: one nn.Module class, importing only torch; its attribute names."""
    tree = ast.parse((folder / "model.py").read_text())
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names} | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    attrs = {t.attr for node in ast.walk(classes[0]) if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Attribute)}
    return imports, classes, attrs


def test_keras_cnn_to_torch_on_real_digits(tmp_path, keras_checkpoint, torch_checkpoint):
    out = tmp_path / "torch"
    result = migrate(keras_checkpoint, "torch", out)
    assert_legs_pass(result)
    assert "500 real digits" in result.inputs
    assert len(result.accuracy) == 3 and None not in result.accuracy.values(), result.accuracy
    assert len(set(result.accuracy.values())) == 1  # source, ONNX and migrated classify alike
    assert sorted(p.name for p in out.iterdir()) == ["model.pth", "model.py", "spec.json"]
    imports, classes, attrs = torch_source_shape(out)
    assert imports <= {"torch", "torch.nn", "torch.nn.functional", "nn", "F"} and len(classes) == 1
    assert {"conv2d", "conv2d_1", "max_pooling2d", "dense", "dense_1"} <= attrs  # the Keras layer names
    spec = json.loads((out / "spec.json").read_text())
    assert spec["framework"] == "torch" and spec["layout"] == "NCHW" and spec["input_shape"] == [1, 28, 28]
    assert spec["architecture"] == "./model.py:KerasCnn"
    # Every other command feeds the migrated folder in its new layout.
    evaluated = onnxparity("evaluate", out, "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(result.accuracy["keras"])
    # check A B: the Keras original against the migrated PyTorch one directly, each in its own layout.
    report = tmp_path / "ab.json"
    both = onnxparity("check", keras_checkpoint, out, "--n", 50, "--cpu-only", "--json", report)
    assert both.returncode == 0, both.stdout + both.stderr
    d = json.loads(report.read_text())
    assert [(c["reference"], c["candidate"]) for c in d["comparisons"]] == [("keras-tf:cpu", "torch:cpu")]
    assert d["comparisons"][0]["top1_agreement"] == 1.0 and d["comparisons"][0]["max_abs_diff"] < 1e-4
    other = onnxparity("check", keras_checkpoint, torch_checkpoint, "--n", 50, "--cpu-only")  # another model
    assert other.returncode == 1 and "torch:cpu vs keras-tf:cpu" in other.stderr, other.stdout + other.stderr


def test_torch_net_to_keras_on_real_digits(tmp_path, torch_checkpoint, torch_onnx):
    out = tmp_path / "keras"
    result = migrate(torch_checkpoint, "keras", out)
    assert_legs_pass(result)
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "spec.json"]
    layers = _process.call(f"{HELPERS}:keras_layers", out / "model.keras")
    assert all(module.startswith("keras.src.") for module, _, _ in layers)
    assert not {"Lambda", "TFOpLambda"} & {cls for _, cls, _ in layers}
    assert {"conv1", "conv2", "fc1", "fc2"} <= {name for _, _, name in layers}  # the PyTorch attribute names
    spec = json.loads((out / "spec.json").read_text())
    assert spec["framework"] == "keras" and spec["layout"] == "NHWC" and spec["input_shape"] == [28, 28, 1]
    assert spec["mean"] == pytest.approx(0.1307) and spec["output"] == "log_probabilities"
    # The migrated model against the ONNX file of its source, in either order: each fed in its own layout.
    for a, b in ((out, torch_onnx), (torch_onnx, out)):
        report = tmp_path / "pair.json"
        checked = onnxparity("check", a, b, "--providers", "cpu", "--n", "50", "--json", report)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        r = json.loads(report.read_text())
        assert r["models"][0]["pair"] and r["passed"] and r["inputs"]["n_digits"] == 50


def test_resnet18_to_keras(tmp_path):
    source = _process.call(f"{HELPERS}:save_resnet18", tmp_path / "resnet")
    result = migrate(source, "keras", tmp_path / "keras")
    assert_legs_pass(result)
    assert result.inputs == "16 seeded inputs"
    assert result.layers["add"] == 8 and result.layers["conv"] == 20 and "batchnorm" not in result.layers
    layers = _process.call(f"{HELPERS}:keras_layers", tmp_path / "keras" / "model.keras")
    classes = [cls for _, cls, _ in layers]
    # torch's symmetric pads become explicit zero padding before the Keras conv and pool layers.
    assert classes.count("ZeroPadding2D") >= 17 and classes.count("Add") == 8
    assert {"conv1", "layer1_0_conv1", "layer4_1_conv2", "fc"} <= {name for _, _, name in layers}
    assert json.loads((tmp_path / "keras" / "spec.json").read_text())["input_shape"] == [64, 64, 3]


def test_two_output_keras_model_to_torch(tmp_path, test_digits):
    source = _process.call(f"{HELPERS}:save_two_output_keras", tmp_path / "heads")
    out = tmp_path / "torch"
    result = migrate(source, "torch", out)
    assert_legs_pass(result)
    x = json.loads((out / "spec.json").read_text())
    from onnxparity.spec import ModelSpec

    spec = ModelSpec.from_dict(x)
    outputs = _process.call(f"{HELPERS}:torch_outputs", out, spec.preprocess(test_digits.images[:5]))
    assert [o.shape for o in outputs] == [(5, 10), (5, 3)]
    np.testing.assert_allclose(outputs[0].sum(axis=1), 1, atol=1e-5)  # the softmax head comes first
    _, _, attrs = torch_source_shape(out)
    assert {"stem", "block_conv", "digits", "extra"} <= attrs


def test_the_op_set_both_ways(tmp_path):
    source = migrate_helpers.save_op_set_onnx(tmp_path / "ops.onnx")
    for target in ("torch", "keras"):
        result = migrate(source, target, tmp_path / target)
        assert_legs_pass(result, n_legs=1)
        assert {"batchnorm", "hardswish", "hardsigmoid", "avgpool", "concat", "mul", "add", "dropout",
                "global_avgpool"} <= set(result.layers)
    layers = _process.call(f"{HELPERS}:keras_layers", tmp_path / "keras" / "model.keras")
    assert "DepthwiseConv2D" in {cls for _, cls, _ in layers}


def test_a_migrated_model_trains_on_in_its_new_framework(tmp_path, keras_checkpoint):
    migrated = tmp_path / "torch"
    before = migrate(keras_checkpoint, "torch", migrated).accuracy["torch (migrated)"]
    summary = _process.call("onnxparity.models:train_from", migrated, tmp_path / "trained", epochs=1, n_train=1000,
                            log_interval=0)
    assert summary["framework"] == "torch" and summary["epochs_done"] == 1
    # It learns on from where Keras left it: as good as the Keras model, not retrained from scratch.
    assert before > 0.85 and summary["test_accuracy"] >= before - 0.01
    assert sorted(p.name for p in (tmp_path / "trained").iterdir()) == [
        "history.json", "model.pth", "model.py", "optimizer.pth", "spec.json"]


def test_an_unsupported_op_exits_2_and_writes_nothing(tmp_path):
    source = migrate_helpers.save_op_set_onnx(tmp_path / "odd.onnx", unsupported="Erf")
    result = onnxparity("migrate", source, "--to", "keras", "-o", tmp_path / "out")
    assert_one_line_error(result, "Erf", "odd_node")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_keras_bilstm_is_located_and_migrate_names_the_lstm(tmp_path):
    model, onnx_path = tmp_path / "bilstm.keras", tmp_path / "bilstm.onnx"
    _process.call("tests.helpers:save_keras_model", "bilstm", model, name="save the BiLSTM")
    assert onnxparity("convert", model, "-o", onnx_path).returncode == 0
    located = onnxparity("locate", model, onnx_path, "--n", "8")  # not "raw uint8 pixels"
    assert located.returncode == 0 and "bilstm" in located.stdout, located.stdout + located.stderr
    assert_one_line_error(onnxparity("migrate", onnx_path, "--to", "torch", "-o", tmp_path / "out"),
                          "unsupported op LSTM")


def test_model_py_outside_the_generated_form_is_refused(tmp_path):
    from onnxparity.models.generated import check_source

    good = ("import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.fc = nn.Linear(2, 2)\n\n    def forward(self, x):\n"
            "        fc = self.fc(x)\n        return fc.reshape(-1, 2)\n")
    check_source(tmp_path / "model.py", good)
    for bad in ["import os\n", "open('x')", "torch.load('x')", "x.numpy().tofile('x')", "self.__class__",
                "getattr(self, 'fc')", "__import__('os')"]:
        text = good.replace("return fc.reshape(-1, 2)", f"{bad.strip()}\n        return fc") if "\n" not in bad \
            else bad + good
        with pytest.raises(InputError, match="not a model file onnxparity imports"):
            check_source(tmp_path / "model.py", text)


@pytest.mark.parametrize("args, needles", [
    (["train"], ["--from DIR"]),
    (["train", "--from", "nowhere"], ["nowhere", "no such file"]),
    (["train", "torch", "--from", "nowhere"], ["--from takes the framework from the folder"]),
])
def test_train_from_bad_arguments(args, needles):
    assert_one_line_error(onnxparity(*args), *needles)


def test_a_failing_leg_writes_nothing(tmp_path, monkeypatch):
    from onnxparity.errors import ParityFailure
    from onnxparity.migrate import walk

    real = walk.plan_for

    def skewed(*args, **kwargs):  # a converter bug: one kernel scaled on its way to the target
        plan = real(*args, **kwargs)
        conv = next(step for step in plan.steps if step.kind == "conv")
        conv.weights["weight"] = conv.weights["weight"] * 1.2
        return plan

    monkeypatch.setattr(walk, "plan_for", skewed)
    source = migrate_helpers.save_op_set_onnx(tmp_path / "ops.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("an earlier result")
    with pytest.raises(ParityFailure, match="onnx -> torch"):
        migrate(source, "torch", out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ops.onnx", "out"]
