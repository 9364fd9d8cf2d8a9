"""What convert is given, read once: which framework's model (a path, a live ``keras.Model`` or
``torch.nn.Module``), the spec that describes it, and its inputs and outputs for export (names,
dtypes, sample shapes) from what the model declares and the user's ``--input-shape`` / ``--input-dtype``."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from onnxparity.convert.graph import BATCH, INPUT_NAME
from onnxparity.errors import InputError
from onnxparity.models.spec_inference import output_kind
from onnxparity.signature import TensorSpec
from onnxparity.spec import ModelSpec


def identify(model) -> tuple[str, Any, ModelSpec | None, Path | None]:
    """(framework, what to load, spec if the model describes itself, default output path stem)."""
    if isinstance(model, (str, os.PathLike)):
        from onnxparity.models import resolve

        ref = resolve(model)
        if ref.framework == "onnx":
            raise InputError(f"{ref.path}: already an ONNX file")
        path = Path(model)
        target = path if ref.spec is None else ref.path  # a checkpoint folder -> its weights file
        default = (path / "model") if path.is_dir() else path.with_suffix("")
        return ref.framework, target, ref.spec, default
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch", model, None, None
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras", model, None, None
    raise InputError(f"cannot convert a {type(model).__name__}; expected a path, a keras.Model or a torch.nn.Module")


def shapes_argument(input_shape) -> dict[str | None, tuple[int, ...]]:
    """``input_shape`` in any of its forms -> {input name or None: sample shape}."""
    from onnxparity.signature import parse_input_shapes

    if input_shape is None:
        return {}
    if isinstance(input_shape, Mapping):
        return {k: tuple(int(d) for d in v) for k, v in input_shape.items()}
    if isinstance(input_shape, str):
        return parse_input_shapes([input_shape])
    if isinstance(input_shape, (list, tuple)) and input_shape and all(isinstance(v, str) for v in input_shape):
        return parse_input_shapes(list(input_shape))
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise InputError(f"input shape must be integers such as 1,28,28, not {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise InputError(f"input shape must be positive sizes such as 1,28,28, not {list(shape)}")
    return {None: shape}


def dtypes_argument(input_dtype) -> dict[str | None, str]:
    from onnxparity.signature import DTYPES

    if input_dtype is None:
        return {}
    if isinstance(input_dtype, str):
        input_dtype = [input_dtype]
    pairs = input_dtype.items() if isinstance(input_dtype, Mapping) else \
        [(v.rpartition("=")[0] or None, v.rpartition("=")[2]) for v in input_dtype]
    out = {}
    for name, dtype in pairs:
        if dtype not in DTYPES:
            raise InputError(f"--input-dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        out[name] = dtype
    return out


def axis_names_argument(input_shape, inputs: list[TensorSpec]) -> dict[str, dict[int, str]]:
    """The dynamic axes ``--input-shape`` names (``input_ids=sequence:16``), by the described inputs' names."""
    from onnxparity.signature import parse_axis_names

    values = [input_shape] if isinstance(input_shape, str) else input_shape
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        return {}
    named = parse_axis_names(values)
    if None in named:
        return {inputs[0].name: named[None]} if len(inputs) == 1 else {}
    if len(inputs) == 1 and named:
        return {inputs[0].name: next(iter(named.values()))}  # one input is renamed ``input``
    return named


def describe_inputs(source, spec: ModelSpec | None, shapes: dict, dtypes: dict,
                    int_range: tuple[int, int] | None) -> list[TensorSpec]:
    """The model's inputs for export: names, dtypes and sample shapes, from what the model declares,
    completed by the user's ``--input-shape``/``--input-dtype`` and a checkpoint's spec.

    One input is called ``input``; several keep the model's own names."""
    declared = list(source.inputs or [])
    if spec is not None and spec.signature is not None and not shapes:
        declared = [dataclasses.replace(t, shape=(BATCH, *t.sample_shape)) for t in spec.signature.inputs]
    named = [k for k in list(shapes) + list(dtypes) if k is not None]
    if not declared:
        names = list(dict.fromkeys(named)) or [INPUT_NAME]
        declared = [TensorSpec(n, "float32", (BATCH,)) for n in names]
    if len(declared) > 1 and None in shapes:  # an unnamed --input-dtype is every input's
        raise InputError(f"the model has {len(declared)} inputs ({', '.join(t.name for t in declared)}); "
                         "name each: --input-shape NAME=SHAPE")
    unknown = set(named) - {t.name for t in declared}
    if unknown:
        raise InputError(f"no input called {', '.join(sorted(unknown))} (inputs: {', '.join(t.name for t in declared)})")
    if len(declared) == 1 and spec is not None and not shapes and spec.input_shape:
        shapes = {None: spec.input_shape}
    out = []
    for t in declared:
        key = None if len(declared) == 1 and None in shapes else t.name
        shape = shapes.get(key) or shapes.get(t.name)
        dtype = dtypes.get(t.name) or dtypes.get(None) or t.dtype
        if shape is None:
            if len(t.shape) <= 1 and not source.inputs or any(isinstance(d, str) for d in t.sample_shape):
                raise InputError(f"the {source.framework} model does not say the shape of its input {t.name!r}; pass "
                                 "--input-shape (one sample, no batch axis, such as 1,28,28 or "
                                 f"{t.name}=1,28,28)")
            shape = t.sample_shape
        rng = None
        if dtype not in ("float16", "float32", "float64", "bool"):
            rng = int_range or ((0, source.embedding_rows) if source.embedding_rows else None)
        name = INPUT_NAME if len(declared) == 1 else t.name
        out.append(TensorSpec(name, dtype, (BATCH, *shape), rng))
    return out


def describe_outputs(source, spec: ModelSpec | None, reference: list[np.ndarray]) -> list[str]:
    """Outputs the model names (dict outputs, a SavedModel's signature) keep their names; otherwise
    the first is named after what it holds (``probabilities``...) and the others ``output_1``..."""
    names = list(source.output_names or [])
    if spec is not None and spec.signature is not None and len(spec.signature.outputs) == len(reference):
        names = spec.signature.output_names
    if len(names) == len(reference) and len(set(names)) == len(names) and len(reference) > 1:
        return names
    first = spec.output if spec else output_kind(reference[0])
    return [first] + [f"output_{i}" for i in range(1, len(reference))]
