"""Framework-free steps on the ONNX graph: pre-flight, naming, batch axis, metadata, checks.

Both exporters hand their ``ModelProto`` here, so every file the toolkit writes gets the same
guarantees whichever framework it came from: input ``input``, outputs named after what they
hold, one dynamic axis ``batch``, metadata, a full ``onnx.checker`` pass and an IR version the
installed ONNX Runtime accepts.
"""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np

from onnxparity.errors import InputError, first_line

INPUT_NAME = "input"
BATCH = "batch"
DEFAULT_OPSET = 18  # the highest both tf2onnx 1.17 and torch's dynamo exporter (torchlib) target


class ConversionError(InputError):
    """The exporter failed or produced a file that does not check (one line, exit 2)."""


def _probe_session(opset: int, ir_version: int) -> bool:
    """Does ONNX Runtime open a one-node model stamped with this opset and IR version?"""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return True
    except Exception:  # noqa: BLE001 - any refusal means "not supported"
        return False


@functools.lru_cache(maxsize=1)
def runtime_limits() -> tuple[int, int]:
    """(highest opset, highest IR version) the installed ONNX Runtime loads, found by asking it.

    ORT has no API for this; probing a tiny model is exact for any release, no table to update.
    """
    import onnx

    top_opset, top_ir = onnx.defs.onnx_opset_version() + 4, onnx.IR_VERSION + 4
    ir = next((v for v in range(top_ir, 2, -1) if _probe_session(13, v)), 7)
    opset = next((v for v in range(top_opset, 6, -1) if _probe_session(v, ir)), 7)
    return opset, ir


def min_ir_version(opset: int) -> int:
    from onnx import helper

    try:
        return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    except Exception:  # noqa: BLE001 - opset unknown to this onnx: newer than any table row
        return 10**6


def preflight(opset: int | None) -> int:
    """The opset to export with; refuses one newer than the installed ONNX or ONNX Runtime support."""
    import onnx
    import onnxruntime as ort

    ort_opset, ort_ir = runtime_limits()
    onnx_opset = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, ort_opset, onnx_opset)
    if opset < 7:
        raise InputError(f"opset {opset} is too old; use 7 or newer (default {DEFAULT_OPSET})")
    if opset > ort_opset or min_ir_version(opset) > ort_ir:
        raise InputError(f"opset {opset} is newer than the installed ONNX Runtime {ort.__version__} supports "
                         f"(opsets up to {ort_opset}, IR versions up to {ort_ir})")
    if opset > onnx_opset:
        raise InputError(f"opset {opset} is newer than the installed onnx {onnx.__version__} knows (up to {onnx_opset})")
    return opset


def check_converter_opset(opset: int, converter_max: int | None, converter: str) -> None:
    if converter_max is not None and opset > converter_max:
        raise InputError(f"opset {opset} is newer than {converter} supports (up to {converter_max})")


def rename_value(graph, old: str, new: str) -> None:
    """Rename a value everywhere it appears in ``graph`` (inputs, outputs, nodes, value_info)."""
    if old == new:
        return
    for seq in (graph.input, graph.output, graph.value_info):
        for v in seq:
            if v.name == old:
                v.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def _set_batch_axis(value_info) -> None:
    dims = value_info.type.tensor_type.shape.dim
    if len(dims):
        dims[0].Clear()
        dims[0].dim_param = BATCH


def batch_is_static(model) -> bool:
    """True when the exporter froze an input's first axis to a number."""
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializers and len(dims) and dims[0].HasField("dim_value"):
            return True
    return False


def name_input_axes(model, axes: dict[str, dict[int, str]]) -> None:
    """Give each named dynamic axis its name (``dim_param``) on the inputs; one the exporter froze to
    a number is refused, naming the axis (the file would break at any other size)."""
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, name in axes.get(value.name, {}).items():
            if axis >= len(dims):
                raise ConversionError(f"input {value.name} has no axis {axis} to name {name!r}")
            if dims[axis].HasField("dim_value"):
                raise ConversionError(f"the exporter froze the {name!r} axis of {value.name} to "
                                      f"{dims[axis].dim_value}")
            dims[axis].Clear()
            dims[axis].dim_param = name


def finish(model, output_names: list[str], metadata: dict[str, str], input_names: list[str] | None = None):
    """Name inputs and outputs, make axis 0 ``batch``, stamp metadata, re-infer shapes, check."""
    import onnx

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    real_inputs = [v for v in graph.input if v.name not in initializers]
    input_names = input_names or [INPUT_NAME]
    if len(real_inputs) != len(input_names):
        raise ConversionError(f"the exported graph has {len(real_inputs)} inputs, the model {len(input_names)}")
    if len(graph.output) != len(output_names):
        raise ConversionError(f"the exported graph has {len(graph.output)} outputs, the model {len(output_names)}")
    for value, name in zip(real_inputs, input_names):
        rename_value(graph, value.name, name)
    for out, name in zip(list(graph.output), output_names):
        rename_value(graph, out.name, name)
    for value in real_inputs:
        _set_batch_axis(value)
    for out in graph.output:
        _set_batch_axis(out)
    del graph.value_info[:]  # stale symbols such as tf2onnx's unk__40; inferred again below
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    _, ort_ir = runtime_limits()
    model.ir_version = min(model.ir_version, max(ort_ir, min_ir_version(opset_of(model))))
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        fold_static_reshapes(model)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker and inference raise several types
        raise ConversionError(f"the exported ONNX graph does not check ({first_line(exc)})") from None
    return model


def set_metadata(model, metadata: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``metadata``."""
    import onnx

    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)


def fold_static_reshapes(model) -> int:
    """Give a ``Reshape`` whose shape the graph computes at run time a constant one, where it can.

    tf2onnx exports Keras ``Flatten`` as ``Shape -> Gather -> Slice -> Concat -> Reshape``: the
    batch size read back from the tensor. When shape inference (run before, with data
    propagation) shows every axis but the batch static on both sides, the shape is the constant
    ``[0, d1, ...]`` (0 copies the batch axis) and the chain is dead. Besides tidying the file
    this spares ONNX Runtime's CPU provider a layout conversion that existed only to feed
    ``Shape`` (docs/bench.md). Returns how many reshapes it folded; ``model`` is changed in place.
    """
    from onnx import numpy_helper

    graph = model.graph
    dims = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in (*graph.input, *graph.value_info, *graph.output) if v.type.tensor_type.HasField("shape")}
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    folded = 0
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] in constants:
            continue
        allowzero = next((a.i for a in node.attribute if a.name == "allowzero"), 0)
        src, dst = dims.get(node.input[0]), dims.get(node.output[0])
        if allowzero or not src or not dst or None in src[1:] + dst[1:] or 0 in src[1:] + dst[1:]:
            continue
        if int(np.prod(src[1:])) != int(np.prod(dst[1:])):
            continue  # the leading axis changes too: not a batch-preserving reshape
        name = f"{node.output[0]}__static_shape"
        graph.initializer.append(numpy_helper.from_array(np.array([0, *dst[1:]], dtype=np.int64), name))
        node.input[1] = name
        folded += 1
    if folded:
        prune_dead_nodes(graph)
    return folded


def prune_dead_nodes(graph) -> None:
    """Drop nodes whose outputs nothing reads, then initializers and value_info left unused."""
    needed = {o.name for o in graph.output} | {i.name for i in graph.input}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(_reads(node))
    del graph.node[:]
    graph.node.extend(reversed(kept))
    produced = {o for n in graph.node for o in n.output}
    keep_init = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    keep_info = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)


def _reads(node):
    """Every value ``node`` reads, those its subgraphs (If, Loop, Scan) take from outer scopes included."""
    from onnx import AttributeProto

    names = {i for i in node.input if i}
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in subgraphs:
            for inner in sub.node:
                names |= _reads(inner)
    return names


def opset_of(model) -> int:
    """The model's default-domain (``ai.onnx``) opset."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def node_counts(model) -> dict[str, int]:
    """Nodes by op type, most frequent first (the CLI's summary)."""
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def embed_preprocessing(model, spec):
    """Prepend ``uint8 [batch, H, W] -> (x * scale - mean) / std -> layout`` to ``model``.

    The same float32 operations, in the same order, as :meth:`ModelSpec.preprocess`, so the
    embedded variant matches a client that preprocesses in NumPy bit for bit.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    height, width = raw_image_shape(spec)
    pre_nodes = [
        helper.make_node("Cast", ["raw"], ["pre_float"], to=TensorProto.FLOAT, name="pre_cast"),
        helper.make_node("Mul", ["pre_float", "pre_scale"], ["pre_scaled"], name="pre_scale"),
        helper.make_node("Sub", ["pre_scaled", "pre_mean"], ["pre_centered"], name="pre_center"),
        helper.make_node("Div", ["pre_centered", "pre_std"], ["pre_normalized"], name="pre_normalize"),
        helper.make_node("Reshape", ["pre_normalized", "pre_shape"], ["pre_out"], name="pre_layout"),
    ]
    inits = [
        numpy_helper.from_array(np.array(spec.scale, dtype=np.float32), "pre_scale"),
        numpy_helper.from_array(np.array(spec.mean, dtype=np.float32), "pre_mean"),
        numpy_helper.from_array(np.array(spec.std, dtype=np.float32), "pre_std"),
        numpy_helper.from_array(np.array([-1, *spec.input_shape], dtype=np.int64), "pre_shape"),
    ]
    raw = helper.make_tensor_value_info("raw", TensorProto.UINT8, [BATCH, height, width])
    out = helper.make_tensor_value_info("pre_out", TensorProto.FLOAT, [BATCH, *spec.input_shape])
    pre_graph = helper.make_graph(pre_nodes, "preprocess", [raw], [out], initializer=inits)
    pre = helper.make_model(pre_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    merged = onnx.compose.merge_models(pre, model, io_map=[("pre_out", INPUT_NAME)], prefix2="model/")
    for v in list(merged.graph.output):
        rename_value(merged.graph, v.name, v.name.removeprefix("model/"))
    rename_value(merged.graph, "raw", INPUT_NAME)
    merged.producer_name, merged.producer_version = model.producer_name, model.producer_version
    # merge_models lists "" and "ai.onnx" (the same domain) once per side; keep one import per domain.
    imports = {}
    for op in merged.opset_import:
        domain = "" if op.domain == "ai.onnx" else op.domain
        imports[domain] = max(imports.get(domain, 0), op.version)
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(d, v) for d, v in imports.items())
    return merged


def raw_image_shape(spec) -> tuple[int, int]:
    """(H, W) of the raw grayscale image a spec's input holds, or an error when it holds none."""
    shape = tuple(spec.input_shape)
    if len(shape) == 3 and spec.layout == "NHWC" and shape[2] == 1:
        return shape[0], shape[1]
    if len(shape) == 3 and spec.layout == "NCHW" and shape[0] == 1:
        return shape[1], shape[2]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise InputError(f"--embed-preprocessing needs a model whose input is one grayscale image; "
                     f"this one takes {list(shape)} ({spec.layout})")
