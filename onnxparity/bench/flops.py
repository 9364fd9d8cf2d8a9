"""Multiply-add work of an ONNX graph per sample (Conv, Gemm, MatMul), to put images/s against
the machine's peak FLOP/s. Counts 2 FLOP per multiply-add; other ops are left out."""

from __future__ import annotations

import math
import os


def mflop_per_sample(path: str | os.PathLike) -> float:
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    graph_input = model.graph.input[0]
    dims = graph_input.type.tensor_type.shape.dim
    dims[0].ClearField("dim_param")
    dims[0].dim_value = 1  # one sample
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        t = value.type.tensor_type
        if t.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    weights = {init.name: list(init.dims) for init in model.graph.initializer if len(init.dims) == 2}
    total = 0.0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w, y = shapes.get(node.input[1]), shapes.get(node.output[0])
            if w and y and None not in w and None not in y:
                total += 2.0 * math.prod(y) * math.prod(w[1:])
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            k, n = weights[node.input[1]][-2:]
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                k, n = n, k
            a = shapes.get(node.input[0])
            rows = math.prod(a[:-1]) if a and None not in a[:-1] else 1  # one sample: its rows
            total += 2.0 * rows * k * n
    return round(total / 1e6, 3)
