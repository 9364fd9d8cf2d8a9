"""A model's signature: its named input and output tensors, each with a dtype and a shape.

The signature is what every backend agrees on: the ONNX graph's inputs and outputs, the original's
inputs (in order) and outputs (Keras dict outputs and PyTorch tuple outputs keep their order). It is
read from the ONNX graph (:meth:`Signature.from_onnx`) or from the original at conversion time, and
stored in the spec (spec.json and the ONNX metadata), so that original and ONNX are matched by name.

A shape holds ints for fixed axes and strings for named dynamic axes (``"batch"``, ``"seq"``); a
model is *batched* when every input and output has a dynamic first axis, so samples can be stacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from onnxparity.errors import InputError

BATCH = "batch"
DTYPES = ("float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
FLOAT_DTYPES = ("float16", "float32", "float64")
# What an input means, so samples stay inside the domain the model really takes (``--input-role NAME=ROLE``).
TOKEN_IDS, TYPE_IDS, MASK, POSITION_IDS, IMAGE, VALUES = \
    "token_ids", "type_ids", "mask", "position_ids", "image", "values"
ROLES = (TOKEN_IDS, TYPE_IDS, MASK, POSITION_IDS, IMAGE, VALUES)
# Segment ids with no table in the graph: BERT's token_type_ids index a 2-row table.
DEFAULT_TYPE_VOCAB = 2


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: dtype, shape (ints and named dynamic axes) and, for integer ids, their range."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    int_range: tuple[int, int] | None = None  # [low, high): ids that index an embedding table stay inside it
    role: str | None = None  # one of ROLES, given (--input-role) or recorded; None: guessed (input_role)

    def __post_init__(self) -> None:
        dtype = np.dtype(self.dtype).name if self.dtype != "bool" else "bool"
        if dtype not in DTYPES:
            raise InputError(f"tensor {self.name!r}: dtype {self.dtype} is not supported (supported: {', '.join(DTYPES)})")
        object.__setattr__(self, "dtype", dtype)
        shape = tuple(d if isinstance(d, str) else int(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.int_range is not None:
            lo, hi = (int(v) for v in self.int_range)
            object.__setattr__(self, "int_range", (lo, hi))
        if self.role is not None and self.role not in ROLES:
            raise InputError(f"tensor {self.name!r}: no such input role {self.role!r} (roles: {', '.join(ROLES)})")

    @property
    def input_role(self) -> str:
        """The role given, else the one its name and dtype say (:func:`guess_role`)."""
        return self.role or guess_role(self.name, self.dtype, len(self.sample_shape))

    @property
    def batched(self) -> bool:
        return bool(self.shape) and isinstance(self.shape[0], str)

    @property
    def sample_shape(self) -> tuple[int | str, ...]:
        """The shape of one sample: without the batch axis when batched."""
        return self.shape[1:] if self.batched else self.shape

    @property
    def dynamic_axes(self) -> list[str]:
        return [d for d in self.sample_shape if isinstance(d, str)]

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def concrete(self, batch: int | None, sizes: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """The shape to feed: ``batch`` samples, and every other dynamic axis from ``sizes``.

        A dynamic axis with no size is the caller's to name: a one-line error says which flag."""
        sizes = sizes or {}
        out = []
        for d in self.sample_shape:
            if isinstance(d, str):
                if d not in sizes:
                    raise InputError(f"input {self.name!r} has a dynamic axis {d!r} with no size; pass "
                                     f"--input-shape {self.name}=... (one sample's shape)")
                d = sizes[d]
            out.append(int(d))
        return ((batch,) if self.batched and batch is not None else ()) + tuple(out)

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.int_range is not None:
            d["int_range"] = list(self.int_range)
        if self.role is not None:
            d["role"] = self.role
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TensorSpec":
        try:
            rng = d.get("int_range")
            return cls(str(d["name"]), str(d["dtype"]), tuple(d["shape"]), tuple(rng) if rng else None,
                       d.get("role"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a valid tensor description: {d!r} ({exc})") from None

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class Signature:
    """The model's inputs and outputs, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def batched(self) -> bool:
        """Whether every input and output has a dynamic first axis (samples can be stacked)."""
        return all(t.batched for t in self.inputs + self.outputs)

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise InputError(f"the model has no input {name!r} (inputs: {', '.join(self.input_names)})")

    def named_axes(self) -> dict[str, list[tuple[str, int]]]:
        """Each dynamic input axis other than the batch, by name: the (input, axis) pairs sharing it
        (axis numbers count the batch as 0, as in the file)."""
        axes: dict[str, list[tuple[str, int]]] = {}
        for t in self.inputs:
            for i, d in enumerate(t.shape):
                if isinstance(d, str) and not (i == 0 and d == BATCH):
                    axes.setdefault(d, []).append((t.name, i))
        return axes

    def with_axis_names(self, names: Mapping[str | None, Mapping[int, str]]) -> "Signature":
        """The signature with these input axes dynamic under these names ({input: {axis: name}},
        from ``--input-shape NAME=AXIS:SIZE`` or the original's recorded signature), where the
        file may have fixed them."""
        import dataclasses

        names = dict(names)
        if None in names and len(self.inputs) == 1:
            names[self.inputs[0].name] = names.pop(None)
        changed = []
        for t in self.inputs:
            axes = names.get(t.name, {})
            shape = tuple(axes.get(i, d) if 0 < i else d for i, d in enumerate(t.shape))
            changed.append(dataclasses.replace(t, shape=shape) if shape != t.shape else t)
        return dataclasses.replace(self, inputs=tuple(changed))

    def with_int_ranges(self, ranges: Mapping[str, tuple[int, int]]) -> "Signature":
        import dataclasses

        return dataclasses.replace(self, inputs=tuple(
            dataclasses.replace(t, int_range=ranges[t.name]) if t.name in ranges else t for t in self.inputs))

    def with_roles(self, roles: Mapping[str, str] | None) -> "Signature":
        """The signature with ``--input-role`` applied; a name that is no input is an input error."""
        import dataclasses

        roles = dict(roles or {})
        for name in roles:
            self.input(name)
        return dataclasses.replace(self, inputs=tuple(
            dataclasses.replace(t, role=roles[t.name]) if t.name in roles else t for t in self.inputs))

    def to_dict(self) -> dict:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Signature":
        try:
            return cls(tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                       tuple(TensorSpec.from_dict(t) for t in d["outputs"]))
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a valid model signature ({exc})") from None

    @classmethod
    def from_onnx(cls, model) -> "Signature":
        """The graph's inputs (initializers excepted) and outputs; integer inputs that feed a
        ``Gather`` on a constant table get that table's size as their range."""
        graph = model.graph
        initializers = {t.name: t for t in graph.initializer}
        bounds = _gather_bounds(graph, initializers)
        inputs = tuple(_tensor(v, bounds.get(v.name)) for v in graph.input if v.name not in initializers)
        outputs = tuple(_tensor(v) for v in graph.output)
        return cls(inputs, outputs)


_MASK_NAMES = ("attention_mask", "input_mask", "padding_mask", "mask")
_TYPE_NAMES = ("token_type_ids", "segment_ids", "type_ids", "token_type")
_POSITION_NAMES = ("position_ids", "positions", "position")


def guess_role(name: str, dtype: str, rank: int) -> str:
    """An input's role from its name (the names Hugging Face and Keras NLP models use) and dtype:
    what an ONNX graph cannot say, since a mask and a token id are both int64 tensors."""
    low = name.lower()
    if dtype in FLOAT_DTYPES:
        return MASK if low.endswith(_MASK_NAMES) else VALUES
    if any(low.endswith(n) for n in _MASK_NAMES) or dtype == "bool" and "mask" in low:
        return MASK
    if any(low.endswith(n) for n in _TYPE_NAMES):
        return TYPE_IDS
    if any(low.endswith(n) for n in _POSITION_NAMES):
        return POSITION_IDS
    return VALUES if dtype == "bool" else TOKEN_IDS


def _tensor(value, int_range=None) -> TensorSpec:
    from onnx import helper

    ttype = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise InputError(f"{value.name!r} is not a tensor ({value.type.WhichOneof('value')}); only tensor inputs "
                         "and outputs are supported")
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type)).name
    except (KeyError, TypeError):
        dtype = str(ttype.elem_type)
    if dtype not in DTYPES:
        raise InputError(f"{value.name!r} is a tensor of {dtype}, which is not supported (supported: {', '.join(DTYPES)})")
    shape: list[int | str] = []
    for i, dim in enumerate(ttype.shape.dim):
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or (BATCH if i == 0 else f"{value.name}_dim{i}"))
    return TensorSpec(value.name, dtype, tuple(shape), int_range)


def _gather_bounds(graph, initializers) -> dict[str, tuple[int, int]]:
    """Graph inputs used (directly or through Cast) as indices of a Gather on a constant table."""
    cast_of = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast"}
    bounds: dict[str, tuple[int, int]] = {}
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in initializers:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        table = initializers[node.input[0]]
        size = int(table.dims[axis]) if len(table.dims) > axis else 0
        source = node.input[1]
        while source in cast_of:
            source = cast_of[source]
        if size:
            lo, hi = bounds.get(source, (0, size))
            bounds[source] = (0, min(hi, size))
    return bounds


def parse_input_shapes(values: Sequence[str] | None) -> dict[str | None, tuple[int, ...]]:
    """``--input-shape`` values -> {input name (None for the plain form): one sample's shape}.

    ``3,32,32`` names no input (a one-input model's); ``image=3,32,32`` names one; ``x`` is accepted
    as a separator (``3x32x32``). A size may name its dynamic axis (``input_ids=sequence:16``): the
    sample uses the example size, :func:`parse_axis_names` reads the names."""
    shapes: dict[str | None, tuple[int, ...]] = {}
    for value in values or ():
        name, sep, dims = str(value).rpartition("=")
        key = name.strip() if sep else None
        try:
            shape = tuple(int(d.rpartition(":")[2]) for d in _shape_tokens(dims))
        except ValueError:
            raise InputError(f"--input-shape {value!r}: sizes must be integers, such as 3,32,32 or image=3,32,32") from None
        if not shape or min(shape) < 1:
            raise InputError(f"--input-shape {value!r}: sizes must be positive, such as 3,32,32")
        if key in shapes:
            raise InputError(f"--input-shape given twice for {key or 'the input'}")
        shapes[key] = shape
    if None in shapes and len(shapes) > 1:
        raise InputError("--input-shape: name every input (name=shape) when giving several")
    return shapes


def _shape_tokens(dims: str) -> list[str]:
    """``3x32x32`` / ``sequence:16,384`` -> its per-axis tokens (``x`` separates only outside a name)."""
    if ":" not in dims:
        dims = dims.replace("x", ",")
    return [d.strip() for d in dims.split(",") if d.strip()]


def parse_axis_names(values: Sequence[str] | None) -> dict[str | None, dict[int, str]]:
    """``--input-shape`` values -> {input name (None for the plain form): {axis: dynamic axis name}}.

    Axis numbers count the batch as 0, as in the file; ``input_ids=sequence:16`` gives
    ``{"input_ids": {1: "sequence"}}``. Inputs giving the same name share that axis."""
    named: dict[str | None, dict[int, str]] = {}
    for value in values or ():
        name, sep, dims = str(value).rpartition("=")
        axes = {}
        for i, token in enumerate(_shape_tokens(dims), 1):
            axis, colon, _ = token.rpartition(":")
            if colon:
                axis = axis.strip()
                if not axis.isidentifier() or axis == BATCH:
                    raise InputError(f"--input-shape {value!r}: an axis name is a word other than {BATCH!r}, "
                                     "such as input_ids=sequence:16")
                axes[i] = axis
        if axes:
            named[name.strip() if sep else None] = axes
    return named


def parse_axis_sizes(values: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """``--axis-sizes NAME=SIZE[,SIZE...]`` values -> {dynamic axis name: the sizes to run it at}."""
    sizes: dict[str, tuple[int, ...]] = {}
    for value in values or ():
        name, sep, rest = str(value).partition("=")
        name = name.strip()
        try:
            numbers = tuple(int(v) for v in rest.split(",") if v.strip())
        except ValueError:
            numbers = ()
        if not sep or not name.isidentifier() or name == BATCH or not numbers or min(numbers) < 1:
            raise InputError(f"--axis-sizes {value!r}: give AXIS=SIZE[,SIZE...] with positive sizes, such as "
                             "sequence=8,64 (the batch axis is run at --batch-size and 1 already)")
        if name in sizes:
            raise InputError(f"--axis-sizes given twice for {name}")
        sizes[name] = tuple(dict.fromkeys(numbers))
    return sizes


def parse_input_roles(values: Sequence[str] | None) -> dict[str, str]:
    """``--input-role NAME=ROLE`` values -> {input name: role}."""
    roles: dict[str, str] = {}
    for value in values or ():
        name, sep, role = str(value).partition("=")
        name, role = name.strip(), role.strip()
        if not sep or not name or role not in ROLES:
            raise InputError(f"--input-role {value!r}: give NAME=ROLE, ROLE one of {', '.join(ROLES)}")
        if name in roles:
            raise InputError(f"--input-role given twice for {name}")
        roles[name] = role
    return roles


def parse_int_range(value: str | None) -> tuple[int, int] | None:
    """``--int-range LOW,HIGH`` -> (low, high): integer inputs are drawn from [low, high)."""
    if value is None:
        return None
    try:
        lo, hi = (int(v) for v in str(value).split(","))
    except ValueError:
        raise InputError(f"--int-range {value!r}: give two integers LOW,HIGH such as 0,1000") from None
    if hi <= lo:
        raise InputError(f"--int-range {value!r}: HIGH must be above LOW")
    return lo, hi
