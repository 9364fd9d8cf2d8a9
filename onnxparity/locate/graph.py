"""The ONNX side of locate: who reads and writes each tensor, and the two instrumented models.

- *cumulative*: the file as it is, with the matched tensors added as graph outputs (Polygraphy's
  ``--onnx-outputs mark all``, limited to the tensors that have an original to compare with);
- *isolated*: one model holding, for every matched layer, a copy of the nodes between the tensors
  of the layers before it and its own output. Those boundary tensors become graph inputs, fed with
  the original's own outputs, so each copy shows what that layer does by itself. Copies share the
  file's weights; their inner tensors and node names get a per-layer prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ISOLATED_PREFIX = "locate_isolated_{}::"


@dataclass
class Graph:
    """A loaded ONNX model and its wiring (nodes are in the file's topological order)."""

    model: object
    producer: dict[str, int] = field(default_factory=dict)  # tensor -> node index
    consumers: dict[str, list[int]] = field(default_factory=dict)  # tensor -> node indices
    inputs: list[str] = field(default_factory=list)  # graph inputs that are not initializers
    outputs: list[str] = field(default_factory=list)
    constants: set[str] = field(default_factory=set)  # initializers
    types: dict[str, object] = field(default_factory=dict)  # tensor -> TypeProto, where known
    shapes: dict[str, list] = field(default_factory=dict)  # tensor -> dims (int or None)

    @property
    def nodes(self):
        return self.model.graph.node


def load(path: str | Path) -> Graph:
    import onnx

    from onnxparity.errors import InputError

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - DecodeError, OSError...
        raise InputError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {str(exc)[:200]})") from None
    g = Graph(model=model)
    graph = model.graph
    g.constants = {t.name for t in graph.initializer}
    g.inputs = [v.name for v in graph.input if v.name not in g.constants]
    g.outputs = [v.name for v in graph.output]
    for i, node in enumerate(graph.node):
        for t in node.output:
            if t:
                g.producer[t] = i
        for t in node.input:
            if t:
                g.consumers.setdefault(t, []).append(i)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    except Exception:  # noqa: BLE001 - shapes are a help for choosing among exits, not a must
        inferred = graph
    for v in (*inferred.input, *inferred.value_info, *inferred.output):
        g.types[v.name] = v.type
        if v.type.tensor_type.HasField("shape"):
            g.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    return g


def has_subgraph(node) -> bool:
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def exits(g: Graph, nodes: set[int]) -> list[str]:
    """Tensors written inside ``nodes`` and read outside them (or graph outputs), last written first."""
    out = []
    for i in sorted(nodes, reverse=True):
        for t in g.nodes[i].output:
            if t and (t in g.outputs or any(c not in nodes for c in g.consumers.get(t, []))):
                out.append(t)
    return out


def walk_back(g: Graph, tensor: str, stop: set[str]) -> tuple[set[int], list[str]]:
    """The nodes that compute ``tensor`` from tensors in ``stop``, graph inputs and constants, and
    the boundary tensors it reads (in ``stop`` or graph inputs), in first-read order."""
    nodes: set[int] = set()
    boundary: list[str] = []
    todo = [tensor]
    seen = {tensor}
    while todo:
        t = todo.pop()
        if t != tensor and (t in stop or t in g.inputs):
            boundary.append(t)
            continue
        if t in g.constants or t not in g.producer:
            if t in g.inputs:
                boundary.append(t)
            continue
        i = g.producer[t]
        if i in nodes:
            continue
        nodes.add(i)
        for name in g.nodes[i].input:
            if name and name not in seen:
                seen.add(name)
                todo.append(name)
    return nodes, boundary


def _value_info(g: Graph, name: str, new_name: str | None = None):
    from onnx import ValueInfoProto

    v = ValueInfoProto()
    v.name = new_name or name
    if name in g.types:
        v.type.CopyFrom(g.types[name])
    return v


def cumulative_model(g: Graph, tensors: list[str]):
    """The file with ``tensors`` added as graph outputs (types from shape inference where known)."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(g.model)
    present = set(g.outputs)
    for t in tensors:
        if t not in present:
            model.graph.output.append(_value_info(g, t))
            present.add(t)
    return model


def isolated_model(g: Graph, parts: list[tuple[str, set[int], list[str]]], input_types: dict):
    """One model with a copy of each part: (output tensor, nodes, boundary tensors).

    The boundary tensors become graph inputs (``input_types``: name -> TypeProto seen at run time);
    each copy's output is ``prefix + tensor``. Returns the model and the output names in order.
    """
    import onnx
    from onnx import helper

    graph = onnx.GraphProto(name="locate_isolated")
    graph.initializer.extend(g.model.graph.initializer)
    graph.sparse_initializer.extend(g.model.graph.sparse_initializer)
    inputs_done: set[str] = set()
    output_names = []
    for k, (tensor, nodes, boundary) in enumerate(parts):
        prefix = ISOLATED_PREFIX.format(k)
        inner = {t for i in nodes for t in g.nodes[i].output if t}
        for i in sorted(nodes):
            node = onnx.NodeProto()
            node.CopyFrom(g.nodes[i])
            node.name = prefix + node.name
            node.input[:] = [prefix + t if t in inner else t for t in node.input]
            node.output[:] = [prefix + t if t else t for t in node.output]
            graph.node.append(node)
        for b in boundary:
            if b not in inputs_done:
                inputs_done.add(b)
                v = helper.make_value_info(b, input_types[b]) if b in input_types else _value_info(g, b)
                graph.input.append(v)
        graph.output.append(_value_info(g, tensor, prefix + tensor))
        output_names.append(prefix + tensor)
    model = helper.make_model(graph, opset_imports=list(g.model.opset_import), ir_version=g.model.ir_version)
    model.functions.extend(g.model.functions)
    return model, output_names


def save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path
