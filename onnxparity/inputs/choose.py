"""Which inputs a model gets: saved test data, the user's files, real digits, or synthesized samples.

Every command decides here: ``check`` (:func:`choose`), convert's check and the bench
(:func:`default_inputs`, :func:`fixed_batch`), locate (:func:`model_batch`; :func:`single_batch` for one float input). A digit model
(:attr:`~onnxparity.spec.ModelSpec.takes_digits`) gets real digits; any other, samples
synthesized from its signature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnxparity.errors import InputError
from onnxparity.inputs.digits import load_digits_inputs
from onnxparity.inputs.feeding import feeds
from onnxparity.inputs.files import check_arrays, load_arrays, load_given
from onnxparity.inputs.samples import Inputs
from onnxparity.inputs.synthetic import DEFAULT_SAMPLES, SYNTHETIC_SEED, seeded_normal, synthesize
from onnxparity.inputs.testdata import load_reference
from onnxparity.signature import BATCH, Signature, TensorSpec
from onnxparity.spec import ModelSpec


def choose(signature: Signature | None, spec: ModelSpec | None, *, what: str, reference: str | Path | None = None,
           given: str | Path | None = None, data: str | None = None, n: int | None = None, synthetic: bool = True,
           input_shapes=None, int_range=None, samples: int | None = None,
           input_roles=None) -> tuple[Inputs, dict | None]:
    """A model's inputs (and saved reference outputs, with ``reference``), by precedence: saved test
    data; ``given`` (an .npz/.npy of arrays or a folder of images); real digits for a digit model
    (``data``, bundled by default); else synthesized from the signature. ``what`` names the model."""
    if reference is not None:
        return load_reference(reference, signature)
    if given is not None:
        return load_given(given, signature, spec), None
    if data is not None and not (spec is not None and spec.takes_digits):
        takes = f"takes {list(spec.input_shape)}" if spec is not None else "has no image input"
        raise InputError(f"--data {data}: a dataset of 28x28 digits, but the model {takes}; "
                         "give its inputs with --inputs FILE.npz (or a folder of images)")
    if signature is None and not (spec is not None and spec.takes_digits):
        raise InputError(f"{what}: nothing says its inputs' names and shapes; convert it "
                         "(`onnxparity convert`) or give its inputs (--inputs FILE.npz)")
    return default_inputs(spec, signature, n, samples=samples, data=data, edge_cases=synthetic,
                          input_shapes=input_shapes, int_range=int_range, input_roles=input_roles), None


def default_inputs(spec: ModelSpec | None, signature: Signature | None, n: int | None = None, *,
                   samples: int | None = None, data: str | None = None, edge_cases: bool = True,
                   input_shapes=None, int_range=None, seed: int = SYNTHETIC_SEED, input_roles=None) -> Inputs:
    """What a model is fed when nobody gives inputs: the first ``n`` real digits of ``data`` (all
    of them by default) for a digit model; else ``samples`` (or ``n``, or 64) synthesized from its
    signature. ``edge_cases`` adds the seeded edge cases to either."""
    if spec is not None and spec.takes_digits:
        return load_digits_inputs(data, n, edge_cases)
    return synthesize(signature, samples or n or DEFAULT_SAMPLES, input_shapes=input_shapes, int_range=int_range,
                      seed=seed, edge_cases=edge_cases, spec=spec, input_roles=input_roles)


def fixed_batch(spec: ModelSpec | None, signature: Signature | None, batch_size: int, *, input_shapes=None,
                int_range=None, seed: int = 0, input_roles=None) -> dict[str, np.ndarray]:
    """The same batch in every process, inputs by name: held-out digits in a seeded order, tiled
    to ``batch_size``, for a digit model; seeded samples synthesized from the signature for any
    other (one whole feed when the model takes a fixed batch)."""
    if spec is not None and spec.takes_digits:
        digits = load_digits_inputs(synthetic=False)
        picked = np.resize(np.random.default_rng(seed).permutation(len(digits)), batch_size)
        return feeds(digits.take(picked), spec, signature)
    if signature is None:
        raise ValueError("a model without a spec needs its signature")
    arrays = feeds(default_inputs(spec, signature, batch_size if signature.batched else 1, edge_cases=False,
                                  input_shapes=input_shapes, int_range=int_range, seed=seed,
                                  input_roles=input_roles), spec, signature)
    return arrays if signature.batched else {k: v[0] for k, v in arrays.items()}


def single_batch(spec: ModelSpec, *, data: str | None = None, n: int | None = None,
                 given: str | Path | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """(float32 batch of ``spec``'s input shape, where it came from), for a one-input model.

    ``given``: a ``.npy`` file, or a ``.npz`` holding one array (or one named ``input``), already
    preprocessed. Otherwise digits (``data``; the bundled held-out digits by default) for a digit
    model, and seeded standard-normal tensors for others; ``n`` of them (64 by default).
    """
    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    if given is not None and data is not None:
        raise InputError("give --inputs or --data, not both")
    shape = tuple(spec.input_shape)
    if given is not None:
        arrays = load_arrays(given, None).arrays
        if len(arrays) != 1 and "input" not in arrays:
            raise InputError(f"{given}: holds {list(arrays)}; give one array, or one named 'input'")
        one = Signature((TensorSpec("input", "float32", (BATCH, *shape)),), ())
        x = check_arrays({"input": arrays.get("input", next(iter(arrays.values())))}, one, str(given))["input"]
        x = x[:n] if n else x
        return x, f"{given} ({len(x)} inputs)"
    if spec.takes_digits:
        digits = load_digits_inputs(data, n or DEFAULT_SAMPLES, synthetic=False)
        return spec.preprocess(digits.images), f"{len(digits)} digits from {digits.source}"
    if data is not None:
        raise InputError(f"--data holds 28x28 digits; this model takes {list(shape)}: pass --inputs FILE.npy")
    count = n or DEFAULT_SAMPLES
    return seeded_normal(shape, count, seed), f"{count} seeded standard-normal inputs (seed {seed})"


def model_batch(spec: ModelSpec | None, signature: Signature | None, *, data: str | None = None, n: int | None = None,
                given: str | Path | None = None, seed: int = 0, input_shapes=None, int_range=None,
                input_roles=None) -> tuple[dict[str, np.ndarray], str]:
    """(inputs by name, where they came from) for a model of any inputs: a one-input float model
    as :func:`single_batch` gives it; any other the given arrays (an .npz by input name), or ``n``
    seeded samples (64 by default) in each input's domain: token ids inside their table, masks of
    real sequences, no edge cases."""
    if signature is None or len(signature.inputs) == 1 and signature.inputs[0].is_float:
        x, source = single_batch(spec, data=data, n=n, given=given, seed=seed)
        return {signature.inputs[0].name if signature else "input": x}, source
    if data is not None:
        raise InputError(f"--data holds 28x28 digits; this model takes {', '.join(signature.input_names)}: "
                         "pass --inputs FILE.npz")
    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    if given is not None:
        arrays = load_given(given, signature, spec).arrays
        arrays = {k: v[:n] if n else v for k, v in arrays.items()}
        return arrays, f"{given} ({len(next(iter(arrays.values())))} inputs)"
    samples = synthesize(signature, n or DEFAULT_SAMPLES, seed=seed, edge_cases=False, spec=spec,
                         input_shapes=input_shapes, int_range=int_range, input_roles=input_roles)
    return feeds(samples, spec, signature), samples.source
