"""Dynamic axes beyond the batch: ``--input-shape NAME=AXIS:SIZE`` names an axis, the file carries it."""

from __future__ import annotations

import numpy as np
import pytest

from onnxparity.errors import InputError
from onnxparity.signature import Signature, parse_axis_names, parse_input_shapes


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
    from tests.helpers import onnxparity

    pth, out = tmp_path / "fixed.pth", tmp_path / "fixed.onnx"
    _process.call("tests.torch_models:save_torch_state", "fixed_length", pth, name="save fixed_length")
    result = onnxparity("convert", pth, "-o", out, "--torch-class", "tests.torch_models:FixedLengthTokens",
                        "--input-shape", "sequence:16", "--input-dtype", "int64")
    assert result.returncode == 2 and not out.exists(), result.stderr
    assert "'sequence' axis" in result.stderr and result.stderr.count("\n") == 1, result.stderr
