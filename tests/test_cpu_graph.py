"""The CPU session's graph rewrites: exact outputs, and ORT's blocked kernels really taking the Conv.

Models are built with onnx.helper (fixed random weights) and run in real ONNX Runtime sessions;
the reference PyTorch Net's rewritten session is checked against PyTorch in test_convert.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxparity.machine import nchwc_block
from onnxparity.runners.cpu_graph import rewrite_for_cpu
from onnxparity.runners.sessions import make_session


def _net(middle_op: str = "MaxPool", channels: int = 10, group: int = 1, share_weights: bool = False):
    """input [N,1,12,12] -> Conv(1->channels, 3x3) -> middle_op -> Relu -> Conv(channels->20) -> Relu -> output."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((channels, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((20, channels // group, 3, 3)).astype(np.float32), "w2"),
    ]
    middle = {
        "MaxPool": helper.make_node("MaxPool", ["c1"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        "Softmax": helper.make_node("Softmax", ["c1"], ["m"], axis=1),  # mixes channels
    }[middle_op]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1"),
        middle,
        helper.make_node("Relu", ["m"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", group=group),
        helper.make_node("Relu", ["c2"], ["output"]),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 20, None, None])]
    if share_weights:  # a second reader of w1: its weights must not change
        nodes.append(helper.make_node("Conv", ["input", "w1"], ["other"]))
        outputs.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, ["batch", channels, None, None]))
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 12, 12])],
                              outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the graph as written
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"input": x})


def _nchwc_convs(model, tmp_path) -> list[str]:
    """The Convs that ORT's optimiser turned into its blocked NCHWc kernels."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(options.optimized_model_filepath)
    return [n.name for n in optimized.graph.node if n.op_type == "Conv" and n.domain == "com.microsoft.nchwc"]


def test_padding_and_swap_keep_every_output(tmp_path):
    model = _net()
    x = np.random.default_rng(1).standard_normal((5, 1, 12, 12)).astype(np.float32)
    want = _run(model, x)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    done = rewrite_for_cpu(rewritten, block=8)
    assert done == ["conv1: 10 -> 16 channels (zero filters) for conv2", "r1: Relu moved before MaxPool"]
    weights = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    assert weights["w1"].shape == (16, 1, 3, 3) and weights["b1"].shape == (16,) and weights["w2"].shape == (20, 16, 3, 3)
    assert not weights["w1"][10:].any() and not weights["w2"][:, 10:].any()
    assert [n.op_type for n in rewritten.graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Relu"]
    onnx.checker.check_model(rewritten)
    got = _run(rewritten, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(nchwc_block() == 0, reason="ONNX Runtime has NCHWc kernels only on x86 with AVX2")
def test_padding_lets_ort_block_the_second_conv(tmp_path):
    model = _net(channels=nchwc_block() + 2)
    assert len(_nchwc_convs(model, tmp_path)) == 1  # the 2nd Conv fell back to im2col + GEMM
    assert rewrite_for_cpu(model)
    assert len(_nchwc_convs(model, tmp_path)) == 2


@pytest.mark.parametrize("case", ["channel_mixing_op", "grouped_consumer", "shared_weights", "aligned_channels"])
def test_nothing_changes_where_padding_would_not_be_exact(case):
    model = {"channel_mixing_op": lambda: _net(middle_op="Softmax"),
             "grouped_consumer": lambda: _net(group=2),
             "shared_weights": lambda: _net(share_weights=True),
             "aligned_channels": lambda: _net(channels=16)}[case]()
    before = model.SerializeToString()
    done = rewrite_for_cpu(model, block=8)
    assert not any("channels" in line for line in done)
    weights = {t.name: t.dims for t in model.graph.initializer}
    assert weights["w1"] == onnx.load_from_string(before).graph.initializer[0].dims


def test_session_uses_rewrites_only_on_cpu_and_never_touches_the_file(tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(_net(), path)
    before = path.read_bytes()
    x = np.random.default_rng(2).standard_normal((3, 1, 12, 12)).astype(np.float32)
    plain = make_session(path)  # the default: ORT on the file as it is (what parity judges)
    assert plain.graph_rewrites == []
    for block in (8, 16):  # AVX2's and AVX-512's NCHWc block, whichever CPU runs the test
        tuned = make_session(path, tuned=True, nchwc_block=block)
        assert tuned.graph_rewrites == rewrite_for_cpu(_net(), block=block)
        np.testing.assert_allclose(tuned.run(None, {"input": x})[0], plain.run(None, {"input": x})[0],
                                   rtol=1e-5, atol=1e-5)
    assert path.read_bytes() == before


@pytest.mark.parametrize("block, padded", [(8, True), (16, False)])
def test_padding_depends_on_the_block_size_asked_for(block, padded):
    """10 channels: below AVX-512's block of 16 (ORT blocks them as they are), not a multiple of AVX2's 8."""
    done = rewrite_for_cpu(_net(), block=block)
    assert any("10 -> 16 channels" in line for line in done) == padded
    assert "r1: Relu moved before MaxPool" in done


def test_block_size_follows_the_cpu_flags():
    from onnxparity.machine import nchwc_block as block_for

    assert block_for(frozenset({"avx2", "avx512f"})) == 16
    assert block_for(frozenset({"avx2"})) == 8
