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
