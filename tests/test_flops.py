"""The bench's FLOP count (onnx-tool on the ONNX graph) against torch's own count of the same model.

A ViT and a BERT-like encoder with seeded random weights, exported by torch.onnx; torch's
``FlopCounterMode`` counts the module's matmuls, convolutions and attention (with the math attention
kernel, which it sees as matmuls: it has no formula for the CPU's fused one). The MatMul, Gemm and
Conv part of onnx-tool's count must agree within 5%; the element-wise work comes on top.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from onnxparity.bench.flops import flops_per_sample
from tests.torch_models import VIT_KWARGS

pytest.importorskip("onnx_tool", reason="the bench counts FLOPs with onnx-tool (a dependency)")


class BertLike(torch.nn.Module):
    """Token ids -> an encoder's hidden states and a pooled vector (BERT's shape, small)."""

    def __init__(self, vocab: int = 500, width: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = torch.nn.Linear(width, width)

    def forward(self, ids):
        hidden = self.encoder(self.embed(ids))
        return hidden, torch.tanh(self.pool(hidden[:, 0]))


def _torch_mflop(module, example) -> float:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(example)
    return counter.get_total_flops() / 1e6


@pytest.mark.parametrize("kind", ["vit", "bert"])
def test_flop_count_agrees_with_torch(kind, tmp_path):
    torch.manual_seed(0)
    if kind == "vit":
        module, example, name = torchvision.models.VisionTransformer(**{**VIT_KWARGS, "num_layers": 2}), \
            torch.randn(1, 3, 64, 64), "input"
    else:
        module, example, name = BertLike(), torch.randint(0, 500, (1, 32)), "input_ids"
    module.eval()
    path = tmp_path / f"{kind}.onnx"
    torch.onnx.export(module, (example,), str(path), input_names=[name], dynamic_axes={name: {0: "batch"}},
                      dynamo=False, opset_version=17)
    counted = flops_per_sample(path)
    expected = _torch_mflop(module, example)
    assert counted["mflop_matmul"] == pytest.approx(expected, rel=0.05), counted
    assert counted["by_op"]["MatMul"] > 0 and counted["mflop"] > counted["mflop_matmul"]


def test_a_shape_node_with_start_and_end_is_counted_right(tmp_path):
    """torch's exporter writes Shape(x, start, end) (opset 15); the count must see the sliced shape: here
    x [1, 64, 128] reshaped to [-1, 64] (128 rows) and a [128, 64] x [64, 256] MatMul."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    nodes = [helper.make_node("Shape", ["x"], ["tail"], start=1, end=2),
             helper.make_node("Concat", ["minus_one", "tail"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["same"]),
             helper.make_node("MatMul", ["same", "w"], ["y"])]
    inits = [numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
             numpy_helper.from_array(np.zeros((64, 256), np.float32), "w")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64, 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 256])], inits)
    path = tmp_path / "shape_start.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert flops_per_sample(path)["mflop_matmul"] == pytest.approx(2 * 128 * 64 * 256 / 1e6, abs=1e-3)
