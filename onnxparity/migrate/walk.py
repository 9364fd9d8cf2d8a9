"""ONNX graph -> :class:`~onnxparity.migrate.plan.Plan` for PyTorch or Keras: the layout logic lives here.

Each ONNX value is tracked as a tensor of the target model plus a permutation ``perm`` such that
``onnx_value == target_tensor.transpose(perm)``. The target keeps its own layout (NCHW for torch,
NHWC for Keras), so the Transpose nodes that tf2onnx puts around Keras convolutions become
bookkeeping rather than layers, and a real permute is written only where an op needs one. A flatten
of a tensor whose layout differs from the ONNX one records which feature goes where (``cols``); the
Dense layer after it takes its rows in that order, so no permute is needed before it.

Each op of migrate's op set has one handler, listed in :data:`OP_HANDLERS`. Refusals are
:class:`InputError` (exit 2) naming the op and the node, raised before anything runs.
"""

from __future__ import annotations

import ast
import keyword
import re
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from onnxparity.errors import InputError
from onnxparity.migrate.plan import TARGETS, Plan, Step

NONNEG_KINDS = ("relu", "sigmoid", "hardsigmoid", "softmax")
# ONNX ops a flatten's row order may pass through on its way to a Dense layer (elementwise, one input).
PASS_THROUGH = ("Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Dropout", "Identity")
RESERVED = {"x", "input", "self", "torch", "nn", "F"}
RECURRENT_OPS = ("LSTM", "GRU", "RNN", "Loop", "Scan")  # layers migrate cannot write, named first when refused


@dataclass(frozen=True)
class Tracked:
    """An ONNX value as the target model holds it."""

    name: str  # the plan value
    shape: tuple  # the ONNX value's shape (None for unknown axes)
    perm: tuple[int, ...] | None = None  # onnx == target.transpose(perm); None: the same layout
    cols: np.ndarray | None = None  # 2-D only: ONNX feature j is target feature cols[j]
    nonneg: bool = False  # known to be >= 0 (zero padding is then exact for max pooling)

    @property
    def rank(self) -> int:
        return len(self.shape)


def channels_first(target: str, rank: int) -> tuple[int, ...] | None:
    """The perm an NCHW ONNX value has in the target: None for torch, (0, 3, 1, 2) for Keras."""
    if target == "torch" or rank < 3:
        return None
    return (0, rank - 1, *range(1, rank - 1))


def _inverse(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _norm(perm) -> tuple[int, ...] | None:
    if perm is None:
        return None
    perm = tuple(int(p) for p in perm)
    return None if perm == tuple(range(len(perm))) else perm


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_") or "layer"
    if name[0].isdigit():
        name = "l" + name
    if keyword.iskeyword(name):
        name += "_"
    return name


class Walker:
    def __init__(self, model, target: str, source_layout: str | None):
        import onnx

        if target not in TARGETS:
            raise InputError(f"migrate: --to must be one of {TARGETS}, not {target!r}")
        self.target = target
        self.model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        self.graph = self.model.graph
        self.from_tf = self.model.producer_name.startswith("tf2onnx")
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.source_layout = source_layout
        self.consts: dict[str, np.ndarray] = {}
        self.values: dict[str, Tracked] = {}
        self.steps: list[Step] = []
        self.kinds_by_name: dict[str, str] = {}
        self.skip: set[int] = set()
        self.permuted: dict[tuple, str] = {}
        self.shapes = self._shapes()
        self.consumers: dict[str, list] = {}
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))
        self.graph_outputs = {o.name for o in self.graph.output}

    # -- bookkeeping ------------------------------------------------------------------------
    def _shapes(self) -> dict[str, tuple]:
        out = {}
        for vi in [*self.graph.input, *self.graph.value_info, *self.graph.output]:
            t = vi.type.tensor_type
            if t.HasField("shape"):
                out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        return out

    def _name(self, base: str, kind: str) -> str:
        name = _identifier(base)
        if name in RESERVED:
            name = f"{name}_{kind}"
        if name in self.kinds_by_name and self.kinds_by_name[name] != kind:
            name = f"{name}_{kind}"
        unique, n = name, 1
        while unique in self.kinds_by_name:
            unique, n = f"{name}_{n}", n + 1
        self.kinds_by_name[unique] = kind
        return unique

    def _base(self, node, weight: str | None = None) -> str:
        """The source's layer name for ``node``: from its weight, its module path or its scope."""
        if weight:
            if self.from_tf and "/" in weight:
                return self._tf_layer(weight.split("/"))
            if not weight.startswith(("val_", "onnx::", "_")):
                return weight.rsplit(".", 1)[0] if "." in weight else weight  # "conv1.weight" -> "conv1"
        props = {p.key: p.value for p in node.metadata_props}
        scopes = props.get("pkg.torch.onnx.name_scopes")
        if scopes:
            try:
                scopes = [s for s in ast.literal_eval(scopes) if isinstance(s, str)]
            except (ValueError, SyntaxError):
                scopes = []
        if scopes:
            op = re.sub(r"_\d+$", "", scopes[-1])
            if len(scopes) >= 2 and scopes[-2]:
                module = scopes[-2]
                return module if op.split("_")[0] in module.rsplit(".", 1)[-1] else f"{module}.{op}"
            return op
        if self.from_tf and node.name.count("/") >= 2:
            return self._tf_layer(node.name.split("/"))
        return node.name or node.op_type.lower()

    @staticmethod
    def _tf_layer(parts: list[str]) -> str:
        # tf2onnx scopes are "<model>_N/<layer>_N/<op>": Keras adds one "_N" to each name scope.
        return re.sub(r"_\d+$", "", parts[1]) if len(parts) >= 3 else parts[0]

    def _emit(self, node, kind: str, inputs: list[Tracked], attrs=None, weights=None, *, weight: str | None = None,
              name: str | None = None) -> str:
        name = name or self._name(self._base(node, weight), kind)
        self.steps.append(Step(kind, name, [t.name for t in inputs], name, dict(attrs or {}), dict(weights or {})))
        return name

    def _refuse(self, node, why: str):
        raise InputError(f"migrate: {node.op_type} node {node.name!r}: {why}")

    def _const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)

    def _need_const(self, node, name: str, what: str) -> np.ndarray:
        value = self._const(name)
        if value is None:
            self._refuse(node, f"its {what} must be a constant (initializer)")
        return value

    def _value(self, node, name: str) -> Tracked:
        if name not in self.values:
            if name in self.consts:
                self._refuse(node, "an input that is a constant is not supported for this op")
            self._refuse(node, f"input {name!r} is not produced by a supported node")
        return self.values[name]

    def _attrs(self, node) -> dict:
        import onnx

        out = {}
        for a in node.attribute:
            v = onnx.helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def _shape(self, name: str, fallback=None) -> tuple:
        return self.shapes.get(name, fallback)

    def _set(self, node_output: str, tracked: Tracked) -> None:
        self.values[node_output] = tracked

    # -- layouts ----------------------------------------------------------------------------
    def _with_perm(self, node, t: Tracked, want: tuple[int, ...] | None) -> Tracked:
        """``t`` held so that ``onnx == target.transpose(want)``: a permute step where it is not already."""
        want = _norm(want)
        if t.perm == want:
            return t
        if t.cols is not None:
            self._refuse(node, "its input is a flattened tensor whose feature order differs between the frameworks")
        have = t.perm or tuple(range(t.rank))
        inv = _inverse(want) if want is not None else tuple(range(t.rank))
        perm = tuple(have[q] for q in inv)
        if perm[0] != 0:
            self._refuse(node, "needs a transpose that moves the batch axis")
        key = (t.name, perm)
        if key not in self.permuted:
            name = self._name(f"{t.name}_permuted", "permute")
            self.permuted[key] = self._emit(node, "permute", [t], {"perm": perm}, name=name)
        return replace(t, name=self.permuted[key], perm=want)

    def _channels_first(self, node, t: Tracked) -> Tracked:
        if t.rank != 4:
            self._refuse(node, f"only 2-D images (rank 4) are supported, not rank {t.rank}")
        return self._with_perm(node, t, channels_first(self.target, 4))

    def _target_axis(self, t: Tracked, axis: int) -> int:
        axis = axis % t.rank
        return axis if t.perm is None else t.perm[axis]

    def _target_shape(self, t: Tracked) -> tuple:
        """The shape of the target's tensor for ``t``."""
        if t.perm is None:
            return t.shape
        inv = _inverse(t.perm)
        return tuple(t.shape[inv[k]] for k in range(t.rank))

    # -- the walk ---------------------------------------------------------------------------
    def run(self) -> Plan:
        from onnx import numpy_helper

        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise InputError(f"migrate: the ONNX graph has {len(inputs)} inputs; migrate handles one-input models")
        graph_input = inputs[0]
        shape = self._shape(graph_input.name)
        if shape is None or any(d is None for d in shape[1:]):
            raise InputError(f"migrate: the input {graph_input.name!r} needs a static shape apart from the batch axis")
        perm = None
        if len(shape) == 4:
            onnx_layout = self.source_layout or "NCHW"
            native = "NCHW" if self.target == "torch" else "NHWC"
            if onnx_layout != native:
                perm = (0, 2, 3, 1) if native == "NCHW" else (0, 3, 1, 2)
        start = Tracked("x", shape, perm)
        self._set(graph_input.name, start)

        for index, node in enumerate(self.graph.node):
            if index in self.skip:
                continue
            handler = OP_HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if handler is None:
                # A recurrent layer's own op (LSTM, GRU, Loop...) is the real limit, not the Shape ops before it.
                node = next((n for n in self.graph.node if n.op_type in RECURRENT_OPS), node)
                raise InputError(f"migrate: unsupported op {node.op_type} (node {node.name!r}); migrate's op set is "
                                 f"{', '.join(op for op in OP_HANDLERS if op not in ('Constant', 'ReduceMean'))}")
            handler(self, node)

        outputs, perms = [], []
        for out in self.graph.output:
            t = self.values.get(out.name)
            if t is None or t.name == "x":
                raise InputError(f"migrate: graph output {out.name!r} is a constant or the input itself")
            if t.cols is not None:
                raise InputError(f"migrate: graph output {out.name!r} is a flattened tensor in another feature order")
            outputs.append(t.name)
            perms.append(t.perm)
        return Plan(target=self.target, name=self.graph.name or "model", input_name=graph_input.name,
                    input_shape=tuple(int(d) for d in self._target_shape(start)[1:]), steps=self.steps,
                    outputs=outputs, output_names=[o.name for o in self.graph.output], output_perms=perms,
                    source_layout=(self.source_layout or "NCHW") if len(shape) == 4 else None)

    # -- ops --------------------------------------------------------------------------------
    def _op_Constant(self, node):
        from onnx import numpy_helper

        attrs = {a.name: a for a in node.attribute}
        if "value" not in attrs:
            self._refuse(node, "only tensor constants are supported")
        self.consts[node.output[0]] = numpy_helper.to_array(attrs["value"].t)

    def _op_Identity(self, node):
        if node.input[0] in self.consts:
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self._set(node.output[0], self._value(node, node.input[0]))

    def _op_Dropout(self, node):
        t = self._value(node, node.input[0])
        if len(node.output) > 1 and node.output[1] and node.output[1] in self.consumers:
            self._refuse(node, "its mask output is used")
        ratio = self._attrs(node).get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1]:
            ratio = float(self._need_const(node, node.input[1], "ratio"))
        name = self._emit(node, "dropout", [t], {"rate": float(ratio)})
        self._set(node.output[0], replace(t, name=name))

    def _op_Transpose(self, node):
        perm = self._attrs(node).get("perm")
        if node.input[0] in self.consts:
            self.consts[node.output[0]] = np.transpose(self.consts[node.input[0]], perm)
            return
        t = self._value(node, node.input[0])
        perm = tuple(perm) if perm else tuple(reversed(range(t.rank)))
        self._alias_transpose(node, t, perm)

    def _alias_transpose(self, node, t: Tracked, perm: tuple[int, ...]):
        if t.cols is not None:
            self._refuse(node, "transposes a flattened tensor")
        have = t.perm or tuple(range(t.rank))
        shape = tuple(t.shape[p] for p in perm)
        self._set(node.output[0], replace(t, shape=shape, perm=_norm(tuple(have[p] for p in perm))))

    def _unary(self, node, kind: str, attrs=None):
        t = self._value(node, node.input[0])
        name = self._emit(node, kind, [t], attrs)
        self._set(node.output[0], replace(t, name=name, nonneg=kind in NONNEG_KINDS))

    def _op_HardSigmoid(self, node):
        a = self._attrs(node)
        self._unary(node, "hardsigmoid", {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))})

    def _softmax(self, node, kind: str):
        t = self._value(node, node.input[0])
        axis = self._attrs(node).get("axis", -1 if self.opset >= 13 else 1)
        if self.opset < 13 and axis % t.rank != t.rank - 1:
            self._refuse(node, "before opset 13 softmax flattens its input; only the last axis is supported")
        target_axis = self._target_axis(t, axis)
        if kind == "log_softmax" and self.target == "keras" and target_axis != t.rank - 1:
            self._refuse(node, "Keras' log_softmax works on the last axis only")
        name = self._emit(node, kind, [t], {"axis": target_axis})
        self._set(node.output[0], replace(t, name=name, nonneg=kind == "softmax"))

    # convolutions and pooling ---------------------------------------------------------------
    def _pads(self, node, a: dict, t: Tracked, kernel, strides, dilations) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), auto_pad resolved against the input's size."""
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            return pads[0], pads[1], pads[2], pads[3]
        if auto == "VALID":
            return 0, 0, 0, 0
        hw = t.shape[2:]
        if any(d is None for d in hw):
            self._refuse(node, "auto_pad needs a static input size")
        begin, end = [], []
        for size, k, s, d in zip(hw, kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin[0], begin[1], end[0], end[1]

    def _op_Conv(self, node):
        a = self._attrs(node)
        t = self._channels_first(node, self._value(node, node.input[0]))
        w = self._need_const(node, node.input[1], "weight").astype(np.float32)
        if w.ndim != 4:
            self._refuse(node, "only 2-D convolutions are supported")
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self._need_const(node, node.input[2], "bias").astype(np.float32)
        kernel = tuple(a.get("kernel_shape", w.shape[2:]))
        strides = tuple(a.get("strides", (1, 1)))
        dilations = tuple(a.get("dilations", (1, 1)))
        group = int(a.get("group", 1))
        pads = self._pads(node, a, t, kernel, strides, dilations)
        if self.target == "keras" and max(strides) > 1 and max(dilations) > 1:
            self._refuse(node, "Keras convolutions cannot combine strides and dilations")
        attrs = {"in_channels": int(w.shape[1]) * group, "out_channels": int(w.shape[0]), "kernel": kernel,
                 "strides": strides, "dilations": dilations, "groups": group, "pads": pads}
        weights = {"weight": w} if bias is None else {"weight": w, "bias": bias}
        name = self._emit(node, "conv", [t], attrs, weights, weight=node.input[1])
        self._set(node.output[0], replace(t, name=name, shape=self._shape(node.output[0], t.shape), nonneg=False))

    def _pool(self, node, kind: str):
        a = self._attrs(node)
        if kind == "maxpool" and len(node.output) > 1 and node.output[1]:
            self._refuse(node, "its indices output is not supported")
        t = self._channels_first(node, self._value(node, node.input[0]))
        kernel = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", (1,) * len(kernel)))
        dilations = tuple(a.get("dilations", (1,) * len(kernel)))
        if len(kernel) != 2:
            self._refuse(node, "only 2-D pooling is supported")
        pads = self._pads(node, a, t, kernel, strides, dilations)
        ceil = bool(a.get("ceil_mode", 0))
        include_pad = bool(a.get("count_include_pad", 0))
        out_shape = self._shape(node.output[0])
        hw = t.shape[2:]
        floor_hw = None
        if all(d is not None for d in hw):
            floor_hw = tuple((size + pads[i] + pads[i + 2] - ((k - 1) * d + 1)) // s + 1
                             for i, (size, k, s, d) in enumerate(zip(hw, kernel, strides, dilations)))
        if ceil and out_shape is not None and floor_hw is not None and tuple(out_shape[2:]) == floor_hw:
            ceil = False  # ceil_mode changes nothing at this size
        attrs = {"kernel": kernel, "strides": strides, "dilations": dilations, "pads": pads, "ceil_mode": ceil,
                 "count_include_pad": include_pad}
        if self.target == "keras":
            attrs["keras_padding"] = self._keras_pool_padding(node, kind, t, attrs)
        name = self._emit(node, kind, [t], attrs)
        self._set(node.output[0], replace(t, name=name, shape=self._shape(node.output[0], t.shape)))

    def _keras_pool_padding(self, node, kind: str, t: Tracked, attrs: dict) -> str:
        """How a Keras pooling layer reproduces the ONNX pads: "valid", "same" or "zeros" (ZeroPadding2D)."""
        if attrs["ceil_mode"]:
            self._refuse(node, "ceil_mode changes the output size here, and Keras pooling has no ceil mode")
        if max(attrs["dilations"]) > 1:
            self._refuse(node, "Keras pooling has no dilation")
        pads = attrs["pads"]
        if not any(pads):
            return "valid"
        hw = t.shape[2:]
        same = None
        if all(d is not None for d in hw):
            same_pads = self._pads(node, {"auto_pad": "SAME_UPPER"}, t, attrs["kernel"], attrs["strides"], (1, 1))
            same = tuple(same_pads) == tuple(pads)
        if kind == "maxpool":
            if t.nonneg:
                return "zeros"  # the input is >= 0 (after a ReLU, say), so zero padding is exact
            if same:
                return "same"
            self._refuse(node, "pads on a possibly negative input, which Keras' max pooling cannot reproduce")
        if attrs["count_include_pad"]:
            return "zeros"
        if same:
            return "same"
        self._refuse(node, "pads excluded from the average in a way Keras' average pooling cannot reproduce")

    def _global_avgpool(self, node, keepdims: bool):
        t = self._channels_first(node, self._value(node, node.input[0]))
        name = self._emit(node, "global_avgpool", [t], {"keepdims": keepdims})
        out_shape = self._shape(node.output[0], (t.shape[0], t.shape[1], 1, 1) if keepdims else t.shape[:2])
        self._set(node.output[0], Tracked(name, out_shape, t.perm if keepdims else None, None, t.nonneg))

    def _op_ReduceMean(self, node):
        a = self._attrs(node)
        axes = a.get("axes")
        if len(node.input) > 1 and node.input[1]:
            axes = self._need_const(node, node.input[1], "axes").tolist()
        t = self._value(node, node.input[0])
        if t.rank != 4 or axes is None or sorted(ax % 4 for ax in axes) != [2, 3]:
            raise InputError(f"migrate: unsupported op ReduceMean (node {node.name!r}); only a mean over the two "
                             "spatial axes (a global average pool) is supported")
        self._global_avgpool(node, bool(a.get("keepdims", 1)))

    def _op_BatchNormalization(self, node):
        a = self._attrs(node)
        if a.get("training_mode", 0):
            self._refuse(node, "training mode is not supported")
        t = self._value(node, node.input[0])
        if t.rank == 4:
            t = self._channels_first(node, t)
        elif t.rank != 2 or t.cols is not None:
            self._refuse(node, "only batch norm over images (rank 4) or features (rank 2) is supported")
        gamma, beta, mean, var = (self._need_const(node, n, what).astype(np.float32)
                                  for n, what in zip(node.input[1:5], ("scale", "bias", "mean", "variance")))
        attrs = {"epsilon": float(a.get("epsilon", 1e-5)), "momentum": float(a.get("momentum", 0.9)), "rank": t.rank,
                 "channels": int(gamma.shape[0])}
        name = self._emit(node, "batchnorm", [t], attrs, {"gamma": gamma, "beta": beta, "mean": mean, "var": var},
                          weight=node.input[1])
        self._set(node.output[0], replace(t, name=name, nonneg=False))

    # dense ------------------------------------------------------------------------------------
    def _dense(self, node, t: Tracked, kernel: np.ndarray, bias, out_name: str, weight_name: str):
        if t.cols is None:
            t = self._with_perm(node, t, None)  # Dense works on the last axis, as ONNX's MatMul does
        kernel = kernel.astype(np.float32)
        if t.cols is not None:
            rows = np.empty_like(kernel)
            rows[t.cols] = kernel
            kernel = rows
        attrs = {"in_features": int(kernel.shape[0]), "out_features": int(kernel.shape[1])}
        weights = {"kernel": kernel} if bias is None else {"kernel": kernel, "bias": bias.astype(np.float32)}
        name = self._emit(node, "dense", [t], attrs, weights, weight=weight_name)
        shape = self._shape(out_name, (*t.shape[:-1], int(kernel.shape[1])))
        self._set(out_name, Tracked(name, shape))

    def _op_Gemm(self, node):
        a = self._attrs(node)
        if a.get("transA", 0):
            self._refuse(node, "transA is not supported")
        t = self._value(node, node.input[0])
        b = self._need_const(node, node.input[1], "B")
        kernel = (b.T if a.get("transB", 0) else b) * np.float32(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self._need_const(node, node.input[2], "C") * np.float32(a.get("beta", 1.0))
            bias = np.broadcast_to(c.reshape(-1) if c.size > 1 else c, (kernel.shape[1],)).copy()
        self._dense(node, t, kernel, bias, node.output[0], node.input[1])

    def _op_MatMul(self, node):
        t = self._value(node, node.input[0])
        b = self._const(node.input[1])
        if b is None or b.ndim != 2:
            self._refuse(node, "only a matrix product with a constant 2-D weight (a dense layer) is supported")
        out, bias = node.output[0], None
        users = self.consumers.get(out, [])
        if len(users) == 1 and users[0][0].op_type == "Add" and out not in self.graph_outputs:
            add, _ = users[0]
            c = self._const(add.input[1] if add.input[0] == out else add.input[0])
            if c is not None and c.size == b.shape[1] and c.shape[-1:] == (b.shape[1],):
                bias = c.reshape(-1)
                self.skip.add(list(self.graph.node).index(add))
                out = add.output[0]
        self._dense(node, t, b, bias, out, node.input[1])

    # elementwise with two inputs ----------------------------------------------------------------
    def _binary(self, node, kind: str):
        a_name, b_name = node.input[0], node.input[1]
        consts = [n for n in (a_name, b_name) if n in self.consts]
        if len(consts) == 2:
            op = np.add if kind == "add" else np.multiply
            self.consts[node.output[0]] = op(self.consts[a_name], self.consts[b_name])
            return
        if consts:
            t = self._value(node, b_name if a_name in self.consts else a_name)
            c = self.consts[consts[0]].astype(np.float32)
            self._binary_const(node, kind, t, c)
            return
        a, b = self._value(node, a_name), self._value(node, b_name)
        if a.rank != b.rank or a.shape[1:] != b.shape[1:]:
            self._refuse(node, "only inputs of the same shape are supported (no broadcasting between tensors)")
        if a.cols is not None or b.cols is not None:
            if a.cols is None or b.cols is None or not np.array_equal(a.cols, b.cols):
                self._refuse(node, "its inputs are flattened tensors in different feature orders")
        else:
            b = self._with_perm(node, b, a.perm)
        name = self._emit(node, kind, [a, b])
        self._set(node.output[0], replace(a, name=name, nonneg=a.nonneg and b.nonneg))

    def _binary_const(self, node, kind: str, t: Tracked, c: np.ndarray):
        if c.ndim > t.rank:
            self._refuse(node, "the constant has more axes than the tensor")
        full = c.reshape((1,) * (t.rank - c.ndim) + c.shape)
        if full.shape[0] != 1:
            self._refuse(node, "the constant varies along the batch axis")
        if t.perm is not None:
            full = np.transpose(full, _inverse(t.perm))
        if t.cols is not None and full.shape[-1] > 1:
            moved = np.empty_like(full)
            moved[..., t.cols] = full
            full = moved
        per_sample = np.ascontiguousarray(full[0])
        last_axis_only = per_sample.ndim > 0 and per_sample.size == per_sample.shape[-1]
        if self.target == "keras" and per_sample.size > 1 and not last_axis_only:
            self._refuse(node, "Keras takes a constant that is a scalar or varies along the last axis only")
        name = self._emit(node, kind, [t], {"constant": True}, {"constant": per_sample})
        nonneg = t.nonneg and bool((c >= 0).all())
        self._set(node.output[0], replace(t, name=name, nonneg=nonneg))

    def _op_Concat(self, node):
        axis = self._attrs(node).get("axis", 1)
        parts = [self._value(node, n) for n in node.input if n]
        first = parts[0]
        if any(p.cols is not None for p in parts):
            self._refuse(node, "concatenates flattened tensors in another feature order")
        parts = [first] + [self._with_perm(node, p, first.perm) for p in parts[1:]]
        target_axis = self._target_axis(first, axis)
        if target_axis == 0:
            self._refuse(node, "concatenating along the batch axis is not supported")
        name = self._emit(node, "concat", parts, {"axis": target_axis})
        self._set(node.output[0], Tracked(name, self._shape(node.output[0], first.shape), first.perm, None,
                                          all(p.nonneg for p in parts)))

    # shapes -------------------------------------------------------------------------------------
    def _op_Flatten(self, node):
        t = self._value(node, node.input[0])
        axis = self._attrs(node).get("axis", 1)
        if axis % max(t.rank, 1) != 1:
            self._refuse(node, "only flattening everything but the batch axis (axis=1) is supported")
        self._flatten(node, t)

    def _flatten(self, node, t: Tracked):
        out = node.output[0]
        if t.rank == 2:
            self._set(out, t)
            return
        if any(d is None for d in t.shape[1:]):
            self._refuse(node, "flattening needs static sizes apart from the batch axis")
        features = int(np.prod(t.shape[1:]))
        cols = None
        if t.perm is not None:
            if self._feeds_dense_only(out):
                target_shape = self._target_shape(t)[1:]
                index = np.arange(features).reshape(target_shape)
                cols = index.transpose([p - 1 for p in t.perm[1:]]).reshape(-1)
            else:
                t = self._with_perm(node, t, None)
        name = self._emit(node, "flatten", [t])
        self._set(out, Tracked(name, (t.shape[0], features), None, cols, t.nonneg))

    def _feeds_dense_only(self, value: str) -> bool:
        """True when every path from ``value`` reaches a dense layer's input through elementwise ops only."""
        if value in self.graph_outputs:
            return False
        users = self.consumers.get(value, [])
        if not users:
            return False
        for node, i in users:
            if node.op_type in PASS_THROUGH and i == 0:
                if not self._feeds_dense_only(node.output[0]):
                    return False
            elif node.op_type == "Gemm" and i == 0 and not self._attrs(node).get("transA", 0):
                if self._const(node.input[1]) is None:
                    return False
            elif node.op_type == "MatMul" and i == 0:
                b = self._const(node.input[1])
                if b is None or b.ndim != 2:
                    return False
            else:
                return False
        return True

    def _op_Reshape(self, node):
        if node.input[0] in self.consts:
            shape = self._need_const(node, node.input[1], "shape")
            self.consts[node.output[0]] = self.consts[node.input[0]].reshape(shape)
            return
        t = self._value(node, node.input[0])
        target = self._need_const(node, node.input[1], "shape").astype(np.int64).tolist()
        out_shape = self._shape(node.output[0])
        if out_shape is None or any(d is None for d in out_shape[1:]):
            out_shape = self._resolve_shape(node, t, target)
        out_shape = tuple(out_shape)
        if any(d is None for d in t.shape[1:]):
            self._refuse(node, "needs static sizes apart from the batch axis")
        if len(out_shape) == 2 and out_shape[1] == int(np.prod(t.shape[1:])):
            self._flatten(node, t)
            return
        if tuple(out_shape[1:]) == tuple(t.shape[1:]):
            self._set(node.output[0], t)
            return
        perm = _moves_unit_axes(t.shape, out_shape)
        if perm is not None and t.cols is None:
            self._alias_transpose(node, t, perm)
            return
        t = self._with_perm(node, t, None)
        name = self._emit(node, "reshape", [t], {"shape": tuple(int(d) for d in out_shape[1:])})
        self._set(node.output[0], Tracked(name, out_shape, None, None, t.nonneg))

    def _resolve_shape(self, node, t: Tracked, target: list[int]) -> tuple:
        if len(target) < 1 or any(d is None for d in t.shape[1:]):
            self._refuse(node, "cannot tell the output shape")
        dims = [t.shape[i] if d == 0 and i < t.rank else d for i, d in enumerate(target)]
        total = int(np.prod(t.shape[1:]))
        if dims[0] in (-1, None) or dims[0] == t.shape[0]:
            rest = dims[1:]
            if rest.count(-1) == 1:
                known = int(np.prod([d for d in rest if d != -1]))
                rest[rest.index(-1)] = total // known
            if int(np.prod(rest)) != total:
                self._refuse(node, "only reshapes that keep the batch axis are supported")
            return (t.shape[0], *rest)
        self._refuse(node, "only reshapes that keep the batch axis are supported")


# Migrate's op set: ONNX op type -> its handler, which adds the target's steps for one node.
OP_HANDLERS: dict[str, Callable[[Walker, object], None]] = {
    "Conv": Walker._op_Conv,
    "MaxPool": lambda w, node: w._pool(node, "maxpool"),
    "AveragePool": lambda w, node: w._pool(node, "avgpool"),
    "GlobalAveragePool": lambda w, node: w._global_avgpool(node, True),
    "ReduceMean": Walker._op_ReduceMean,
    "Gemm": Walker._op_Gemm,
    "MatMul": Walker._op_MatMul,
    "Relu": lambda w, node: w._unary(node, "relu"),
    "Sigmoid": lambda w, node: w._unary(node, "sigmoid"),
    "Tanh": lambda w, node: w._unary(node, "tanh"),
    "HardSigmoid": Walker._op_HardSigmoid,
    "HardSwish": lambda w, node: w._unary(node, "hardswish"),
    "Softmax": lambda w, node: w._softmax(node, "softmax"),
    "LogSoftmax": lambda w, node: w._softmax(node, "log_softmax"),
    "BatchNormalization": Walker._op_BatchNormalization,
    "Add": lambda w, node: w._binary(node, "add"),
    "Mul": lambda w, node: w._binary(node, "mul"),
    "Concat": Walker._op_Concat,
    "Flatten": Walker._op_Flatten,
    "Reshape": Walker._op_Reshape,
    "Transpose": Walker._op_Transpose,
    "Dropout": Walker._op_Dropout,
    "Identity": Walker._op_Identity,
    "Constant": Walker._op_Constant,
}


def _moves_unit_axes(src: tuple, dst: tuple) -> tuple[int, ...] | None:
    """The transpose a reshape amounts to when it only moves size-1 axes (tf2onnx's NHWC->NCHW for one
    channel), or None. Axis 0 (the batch) must stay."""
    if len(src) != len(dst) or len(src) < 3:
        return None
    big_src = [i for i in range(1, len(src)) if src[i] != 1]
    big_dst = [i for i in range(1, len(dst)) if dst[i] != 1]
    if [src[i] for i in big_src] != [dst[i] for i in big_dst]:
        return None
    ones_src = iter(i for i in range(1, len(src)) if src[i] == 1)
    big = iter(big_src)
    perm = [0]
    for i in range(1, len(dst)):
        perm.append(next(big) if dst[i] != 1 else next(ones_src))
    return tuple(perm)


def plan_for(model, target: str, source_layout: str | None = None, name: str | None = None) -> Plan:
    """The :class:`Plan` that rebuilds the ONNX ``model`` (a ModelProto) in ``target``."""
    plan = Walker(model, target, source_layout).run()
    if name:
        plan.name = name
    return plan
