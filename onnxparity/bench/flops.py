"""The work of one sample through an ONNX graph, counted by onnx-tool, to put images/s against the
machine's peak FLOP/s.

onnx-tool (a maintained profiler of ONNX graphs) runs its own shape inference on real inputs at batch
1 (every activation gets its shape, so a MatMul between two activations, attention's among them, is
counted like one against a weight) and counts multiply-adds per node, element-wise ops by its own
per-op costs. Here a multiply-add is 2 FLOP; ``matmul`` is the part in MatMul, Gemm, Conv and
attention nodes, the work torch's ``FlopCounterMode`` counts (the tests check the two agree).

onnx-tool 1.0 reads a ``Shape`` node's ``start``/``end`` attributes (opset 15, which torch's exporter
writes) as the whole shape, so such a node is handed to it as the older ``Shape`` + ``Slice``, which
computes the same (:func:`_slices_apart`); the file itself is not changed.
"""

from __future__ import annotations

import contextlib
import io
import os

MATMUL_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "ConvInteger", "QLinearMatMul",
                        "QLinearConv", "Attention", "MultiHeadAttention", "GroupQueryAttention", "FusedMatMul"})


def flops_per_sample(path: str | os.PathLike, input_shapes=None, input_roles=None) -> dict:
    """``{"mflop": every node, "mflop_matmul": MatMul, Gemm, Conv and attention nodes, "by_op": {op: mflop}}``
    for one sample; ``input_shapes`` sizes dynamic axes other than the batch (as ``--input-shape``)."""
    import onnx
    import onnx_tool

    from onnxparity.inputs import fixed_batch
    from onnxparity.onnx_model import OnnxModel

    model = OnnxModel(path)
    feeds = fixed_batch(model.spec, model.signature, 1, input_shapes=input_shapes, input_roles=input_roles)
    with contextlib.redirect_stdout(io.StringIO()):  # onnx-tool prints its progress
        graph = onnx_tool.Model(_slices_apart(onnx.load(str(path))), {"verbose": False}).graph
        graph.shape_infer(feeds)
        graph.profile()
    by_op: dict[str, float] = {}
    for node in graph.nodemap.values():
        by_op[node.op_type] = by_op.get(node.op_type, 0.0) + 2.0 * float(node.macs[0]) / 1e6
    return {"mflop": round(sum(by_op.values()), 3),
            "mflop_matmul": round(sum(v for op, v in by_op.items() if op in MATMUL_OPS), 3),
            "by_op": {op: round(v, 3) for op, v in sorted(by_op.items(), key=lambda kv: -kv[1]) if v}}


def _slices_apart(model):
    """``model`` with every ``Shape(x, start, end)`` written as ``Slice(Shape(x), [start], [end])``."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = []
    for node in model.graph.node:
        bounds = {a.name: a.i for a in node.attribute if a.name in ("start", "end")}
        if node.op_type != "Shape" or node.domain not in ("", "ai.onnx") or not bounds:
            nodes.append(node)
            continue
        whole, start, end = node.output[0] + "__whole", node.output[0] + "__start", node.output[0] + "__end"
        model.graph.initializer.extend([numpy_helper.from_array(np.array([bounds.get("start", 0)], np.int64), start),
                                        numpy_helper.from_array(np.array([bounds.get("end", 2**62)], np.int64), end)])
        nodes += [helper.make_node("Shape", [node.input[0]], [whole], name=node.name),
                  helper.make_node("Slice", [whole, start, end], [node.output[0]], name=node.name + "__slice")]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model
