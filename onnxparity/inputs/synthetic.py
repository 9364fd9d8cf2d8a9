"""Samples made up from a model's signature, for a model nobody gives inputs for.

Seeded, so two runs see the same: standard-normal floats, integer ids inside the embedding table
they index, random pixels for an image input; plus edge cases per dtype (:data:`TENSOR_CASES`)
and in pixel space (:data:`PIXEL_CASES`).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from onnxparity.errors import InputError
from onnxparity.inputs.samples import RANDOM, Inputs, row_blocks, rows_array, unlabelled
from onnxparity.signature import (
    BATCH,
    DEFAULT_TYPE_VOCAB,
    MASK,
    POSITION_IDS,
    TYPE_IDS,
    Signature,
    TensorSpec,
)
from onnxparity.spec import ModelSpec

# Pixel edge cases for image models: kind -> how many; seeded (SYNTHETIC_SEED), so two runs see the same.
PIXEL_CASES = {"zeros": 1, "maximum": 1, "noise": 4, "over-range": 2, "negative": 1}
SYNTHETIC_SEED = 20240531
# Edge cases for synthesized tensors, one sample each (every input of the sample takes the same kind).
TENSOR_CASES = ("zeros", "minimum", "maximum", "far-out")
DEFAULT_SAMPLES = 64
# Integer inputs that nothing bounds are drawn from [0, 10): small enough for any index or count.
DEFAULT_INT_RANGE = (0, 10)
FLOAT_EXTREME = 3.0  # the edges of a standard normal sample
FAR_OUT = 100.0  # "far outside the usual range": a hundred standard deviations
# Samples outside the domain the model takes: reported apart, judged only under --strict-probes.
PROBE_KINDS = ("far-out",)


def pixel_cases(images: np.ndarray, seed: int = SYNTHETIC_SEED, shape=(28, 28)) -> tuple[np.ndarray, list[str]]:
    """Edge cases in pixel space: all zeros, all at maximum, uniform noise, and values out of the
    training range (real images brightened four times past 255, and a negated image)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    out, kinds = [], []
    out += [np.zeros(shape, np.float32)] * PIXEL_CASES["zeros"]
    out += [np.full(shape, 255.0, np.float32)] * PIXEL_CASES["maximum"]
    out += list(rng.uniform(0, 255, size=(PIXEL_CASES["noise"], *shape)).astype(np.float32))
    base = images[: PIXEL_CASES["over-range"]].astype(np.float32) if len(images) else np.zeros((0, *shape), np.float32)
    out += list(base * 4.0)
    out += list(-images[: PIXEL_CASES["negative"]].astype(np.float32))
    for kind, count in PIXEL_CASES.items():
        if kind in ("over-range", "negative"):
            count = min(count, len(images))
        kinds += [kind] * count
    return np.stack(out).astype(np.float32), kinds


def sample_shapes(signature: Signature, input_shapes: Mapping[str | None, tuple[int, ...]] | None = None,
                  ) -> dict[str, tuple[int, ...]]:
    """Each input's concrete sample shape: fixed axes from the graph, dynamic ones from ``--input-shape``."""
    input_shapes = dict(input_shapes or {})
    if None in input_shapes:
        if len(signature.inputs) != 1:
            raise InputError(f"the model has {len(signature.inputs)} inputs; name each: --input-shape NAME=SHAPE "
                             f"(inputs: {', '.join(signature.input_names)})")
        input_shapes[signature.inputs[0].name] = input_shapes.pop(None)
    unknown = set(input_shapes) - set(signature.input_names)
    if unknown:
        raise InputError(f"--input-shape names no input of the model: {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(signature.input_names)})")
    shapes = {}
    for t in signature.inputs:
        declared = t.sample_shape
        given = input_shapes.get(t.name)
        if given is None:
            shapes[t.name] = t.concrete(None)  # raises, naming the flag, for a dynamic axis
            continue
        if len(given) != len(declared) or any(isinstance(d, int) and d != g for d, g in zip(declared, given)):
            raise InputError(f"--input-shape {t.name}={','.join(map(str, given))} does not fit the input's "
                             f"sample shape [{', '.join(map(str, declared))}]")
        shapes[t.name] = tuple(given)
    return shapes


def synthesize(signature: Signature, n: int = DEFAULT_SAMPLES, *, input_shapes=None,
               int_range: tuple[int, int] | None = None, seed: int = SYNTHETIC_SEED, edge_cases: bool = True,
               spec: ModelSpec | None = None, input_roles=None) -> Inputs:
    """``n`` seeded samples for every input plus one sample per edge case (:data:`TENSOR_CASES`).

    Floats are standard normal; edge cases are zeros, -3 and +3 everywhere, and samples a hundred
    times larger. An image input (a spec that describes one) is instead drawn in pixel space and
    preprocessed, with pixel edge cases. Integers stay in their range: ``int_range`` (``--int-range``),
    else the embedding table the graph indexes with them, else [0, 10).
    """
    if n < 1:
        raise InputError("the number of samples must be at least 1")
    if spec is not None and spec.image_size is not None and len(signature.inputs) == 1:
        h, w, c = spec.image_size
        rng = np.random.default_rng(seed)
        pixels = rows_array((n + (sum(PIXEL_CASES.values()) if edge_cases else 0), h, w, c), np.float32)
        for rows in row_blocks(n, 8 * h * w * c, release=(pixels,)):  # drawn as int64, a block at a time
            pixels[rows] = rng.integers(0, 256, (rows.stop - rows.start, h, w, c))
        kinds = [RANDOM] * n
        if edge_cases:
            extra, extra_kinds = pixel_cases(pixels[:2].astype(np.uint8), seed, (h, w, c))
            pixels[n:n + len(extra)] = extra
            kinds += extra_kinds
        pixels = pixels[:len(kinds)]
        if c == 1:
            pixels = pixels[..., 0]
        return Inputs(unlabelled(len(pixels)), tuple(kinds), f"synthesized ({n} random images)",
                      images=pixels)
    signature = signature.with_roles(input_roles)
    shapes = sample_shapes(signature, input_shapes)
    rng = np.random.default_rng(seed)
    kinds = [RANDOM] * n + (list(TENSOR_CASES) if edge_cases else [])
    arrays = {}
    for t in signature.inputs:  # an unbatched input (a fixed first axis): each sample is one whole feed
        arrays[t.name] = _draw(t, shapes[t.name], n, rng, int_range, edge_cases)
    return Inputs(unlabelled(len(kinds)), tuple(kinds), f"synthesized ({n} samples, seed {seed})",
                  arrays=arrays)


def _draw(t: TensorSpec, shape, n: int, rng, int_range, edge_cases: bool) -> np.ndarray:
    """``n`` samples of one input (then its edge cases), drawn a block at a time into
    :func:`~onnxparity.inputs.samples.rows_array`: the values do not depend on the block size."""
    random, edges = _sampler(t, shape, rng, int_range)
    out = rows_array((n + (len(TENSOR_CASES) if edge_cases else 0), *shape), np.dtype(t.dtype))
    for rows in row_blocks(n, 8 * math.prod(shape), release=(out,)):  # drawn as 8-byte values
        out[rows] = random(rows.stop - rows.start)
    if edge_cases:
        out[n:] = np.stack(edges())
    return out


def _sampler(t: TensorSpec, shape, rng, int_range):
    """(draw ``count`` samples, the edge cases) of one input in its domain; the edge cases are
    asked for after every sample, so that the generator's stream is the same for any block size."""
    dtype = np.dtype(t.dtype)
    role = t.input_role
    if role == MASK:
        return _masks(shape, rng)
    if role == POSITION_IDS:
        ascending = np.broadcast_to(np.arange(shape[-1]), shape) if shape else np.zeros((), np.int64)
        return (lambda count: np.broadcast_to(ascending, (count, *shape))), lambda: [ascending] * len(TENSOR_CASES)
    if t.dtype == "bool":
        return (lambda count: rng.integers(0, 2, (count, *shape)).astype(bool)), lambda: [
            np.zeros(shape, bool), np.zeros(shape, bool), np.ones(shape, bool), np.ones(shape, bool)]
    if t.is_float:
        return (lambda count: rng.standard_normal((count, *shape))), lambda: [
            np.zeros(shape), np.full(shape, -FLOAT_EXTREME), np.full(shape, FLOAT_EXTREME),
            FAR_OUT * rng.standard_normal(shape)]
    default = (0, DEFAULT_TYPE_VOCAB) if role == TYPE_IDS else DEFAULT_INT_RANGE
    lo, hi = (int_range if role != TYPE_IDS else None) or t.int_range or default
    info = np.iinfo(dtype)
    lo, hi = max(lo, int(info.min)), min(hi, int(info.max) + 1)
    if hi <= lo:
        raise InputError(f"input {t.name!r}: the integer range [{lo}, {hi}) is empty for {t.dtype}")
    zero = 0 if lo <= 0 < hi else lo
    return (lambda count: rng.integers(lo, hi, (count, *shape))), lambda: [
        np.full(shape, zero), np.full(shape, lo), np.full(shape, hi - 1), rng.integers(lo, hi, shape)]


def _masks(shape, rng):
    """Attention masks as real sequences have them: ones for the tokens, then zeros for the
    padding, along the last axis, with at least the first token (an all-zero mask is undefined).
    A mask without a sequence axis (one value per sample) holds its one token."""
    full = np.ones(shape, bool)
    if not shape:
        return (lambda count: np.ones((count,), bool)), lambda: [full] * len(TENSOR_CASES)
    length, lead = shape[-1], shape[:-1]
    one = (np.arange(length) < 1) * full
    return (lambda count: np.stack([np.arange(length) < rng.integers(1, length + 1, (*lead, 1))
                                    for _ in range(count)])), \
        lambda: [one, one, full, np.arange(length) < rng.integers(1, length + 1, (*lead, 1))]


def seeded_normal(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """``n`` standard-normal float32 samples of one shape: for a one-input model known only by its
    input shape (locate, migrate)."""
    signature = Signature((TensorSpec("input", "float32", (BATCH, *shape)),), ())
    return synthesize(signature, n, seed=seed, edge_cases=False).arrays["input"]
