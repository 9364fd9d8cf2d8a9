"""Dynamic axes beyond the batch: ``--input-shape NAME=AXIS:SIZE`` names an axis, the file carries it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from onnxparity.errors import InputError
from onnxparity.inputs.axes import OTHER_SIZE_SAMPLES, at_sizes, example_sizes, other_sizes
from onnxparity.inputs.samples import Inputs, unlabelled
from onnxparity.signature import Signature, TensorSpec, parse_axis_names, parse_axis_sizes, parse_input_shapes
from tests.helpers import onnxparity


def test_input_shape_flag_names_dynamic_axes_and_keeps_example_sizes():
    values = ["input_ids=sequence:16", "attention_mask=sequence:16", "image=3,32x32"]
    assert parse_input_shapes(values) == {"input_ids": (16,), "attention_mask": (16,), "image": (3, 32, 32)}
    assert parse_axis_names(values) == {"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}}
    assert parse_axis_names(["3,h:32,w:32"]) == {None: {2: "h", 3: "w"}}
    assert parse_input_shapes(["3x32x32"]) == {None: (3, 32, 32)}
    for bad in (["x=batch:4"], ["x=se-q:4"]):
        with pytest.raises(InputError, match="axis name"):
            parse_axis_names(bad)
    with pytest.raises(InputError, match="integers"):
        parse_input_shapes(["x=sequence:many"])


def test_signature_records_the_axis_name():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.FLOAT, ["batch", "sequence"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence"])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["input_ids"], ["y"])], "g", [x], [y]))
    onnx.checker.check_model(model)
    assert Signature.from_onnx(model).inputs[0].shape == ("batch", "sequence")


def test_minilm_converted_with_a_sequence_axis_runs_at_other_lengths(minilm_dynamic):
    """The three inputs share the ``sequence`` axis in the file, and ONNX Runtime runs it at another length."""
    import onnx

    from onnxparity.onnx_model import OnnxModel

    model = OnnxModel(minilm_dynamic["onnx"])
    signature = Signature.from_onnx(onnx.load(str(minilm_dynamic["onnx"]), load_external_data=False))
    assert [t.shape for t in signature.inputs] == [("batch", "sequence")] * 3
    feeds = dict(np.load(minilm_dynamic["sentences"]))
    length = minilm_dynamic["length"]
    longer = {k: np.concatenate([v[:2], np.zeros((2, length), v.dtype)], axis=1) for k, v in feeds.items()}
    hidden, pooled = model.session().run(["last_hidden_state", "pooler_output"], longer)
    assert hidden.shape == (2, 2 * length, 384) and pooled.shape == (2, 384)


def test_convert_refuses_a_file_whose_sequence_axis_froze(tmp_path):
    """A model that reads its length as a Python int exports with that length built in (dynamo
    refuses, TorchScript traces the constant): refused in one line naming the axis, no file written."""
    from onnxparity import _process

    pth, out = tmp_path / "fixed.pth", tmp_path / "fixed.onnx"
    _process.call("tests.torch_models:save_torch_state", "fixed_length", pth, name="save fixed_length")
    result = onnxparity("convert", pth, "-o", out, "--torch-class", "tests.torch_models:FixedLengthTokens",
                        "--input-shape", "sequence:16", "--input-dtype", "int64")
    assert result.returncode == 2 and not out.exists(), result.stderr
    assert "'sequence' axis" in result.stderr and result.stderr.count("\n") == 1, result.stderr


# -- check runs each named axis at a second size --------------------------------------------------
TOKENS = Signature((TensorSpec("input_ids", "int64", ("batch", "sequence"), (0, 50)),
                    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
                    TensorSpec("pixels", "float32", ("batch", 3, "side", "side"))),
                   (TensorSpec("y", "float32", ("batch", 2)),))


def test_axis_sizes_parse_and_plan_the_other_runs():
    assert parse_axis_sizes(["sequence=8,64", "side=32"]) == {"sequence": (8, 64), "side": (32,)}
    for bad in (["sequence"], ["sequence=0"], ["batch=4"], ["sequence=many"]):
        with pytest.raises(InputError, match="--axis-sizes"):
            parse_axis_sizes(bad)
    assert TOKENS.named_axes() == {"sequence": [("input_ids", 1), ("attention_mask", 1)],
                                   "side": [("pixels", 2), ("pixels", 3)]}
    example = {"sequence": 16, "side": 24}
    assert other_sizes(example, {}) == [{"sequence": 32, "side": 48}]  # by default: every axis at twice its size
    assert other_sizes(example, {"sequence": (8, 16, 64)}) == [{"sequence": 8, "side": 24}, {"sequence": 64, "side": 24}]
    assert other_sizes({}, {}) == []
    with pytest.raises(InputError, match="names no dynamic axis.*heads.*named axes: sequence, side"):
        other_sizes(example, {"heads": (2,)})


def test_samples_at_another_size_keep_each_inputs_domain():
    given = Inputs(unlabelled(3), ("given",) * 3, "x.npz", arrays={
        "input_ids": np.ones((3, 16), np.int64), "attention_mask": np.ones((3, 16), np.int64),
        "pixels": np.zeros((3, 3, 24, 24), np.float32)})
    assert example_sizes(TOKENS, given) == {"sequence": 16, "side": 24}
    longer = at_sizes(TOKENS, {"sequence": 40, "side": 8}, n=6)
    ids, mask = longer.arrays["input_ids"], longer.arrays["attention_mask"]
    assert ids.shape[1:] == (40,) and longer.arrays["pixels"].shape[1:] == (3, 8, 8)
    assert ids.min() >= 0 and ids.max() < 50 and mask[:, 0].all()  # ids in the table, every mask has a token
    assert "at sequence=40, side=8" in longer.source


def test_a_file_that_froze_its_sequence_axis_fails_at_the_second_size(minilm):
    """MiniLM converted at a fixed length of 16, checked with the axis named on the command line: the
    file runs on the sentences, and every runtime on it refuses twice the length, naming the axis."""
    names = [a for name in ("input_ids", "attention_mask", "token_type_ids")
             for a in ("--input-shape", f"{name}=sequence:{minilm['length']}")]
    result = onnxparity("check", minilm["pth"], minilm["onnx"], "--torch-class", minilm["torch_class"], "--inputs",
                        minilm["sentences"], "--providers", "cpu", "--batch1-n", "4", *names, env=minilm["env"])
    assert result.returncode == 1, result.stdout + result.stderr
    longer = 2 * minilm["length"]
    assert f"@sequence={longer}: onnxruntime:cpu" in result.stderr
    assert f"(axis 1 fixed at {minilm['length']})" in result.stderr and result.stderr.count("\n") == 1
    assert f"FAILED   MiniLM@sequence={longer}: openvino:cpu" in result.stdout  # not an empty output taken as one


def test_example_sizes_read_unbatched_inputs_past_the_samples_axis_and_skip_what_is_absent():
    signature = Signature((TensorSpec("state", "float32", (1, "sequence")), TensorSpec("ids", "int64", ("batch", "n"))),
                          (TensorSpec("y", "float32", ("batch", 2)),))
    given = Inputs(unlabelled(2), ("given",) * 2, "x.npz", arrays={"state": np.zeros((2, 1, 5), np.float32)})
    assert example_sizes(signature, given) == {"sequence": 5}  # no array for ids: no size for its axis
    assert example_sizes(signature, dataclasses.replace(given, arrays={"state": np.zeros((2, 1), np.float32)})) == {}
    images = Inputs(unlabelled(1), ("image",), "x", images=np.zeros((1, 2, 2), np.float32))
    assert example_sizes(signature, images) == {}
    with pytest.raises(InputError, match=r"names no dynamic axis of the model's inputs: heads, width \(named axes: none\)$"):
        other_sizes({}, {"width": (2,), "heads": (3,)})


def test_samples_at_another_size_take_the_int_range_and_roles_given():
    signature = Signature((TensorSpec("ids", "int64", ("batch", "sequence")),), (TensorSpec("y", "float32", ("batch", 2)),))
    ids = at_sizes(signature, {"sequence": 6}, int_range=(100, 103)).arrays["ids"]
    assert ids.shape == (OTHER_SIZE_SAMPLES + 4, 6) and ids.min() >= 100 and ids.max() < 103
    mask = at_sizes(signature, {"sequence": 6}, input_roles={"ids": "mask"}).arrays["ids"]
    assert set(np.unique(mask)) == {0, 1} and mask[:, 0].all()
