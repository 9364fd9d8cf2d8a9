"""The same model fed at other sizes of its named dynamic axes (a sequence length, an image side).

A file whose axis froze at export runs only at the example's size, and a file can depart from its
original at another size only (a position table cut short, a reshape that baked the length in).
So ``check`` runs each named axis at a second size too, on samples synthesized in each input's
domain (:func:`onnxparity.inputs.synthetic.synthesize`) at that size.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from onnxparity.errors import InputError
from onnxparity.inputs.samples import Inputs
from onnxparity.inputs.synthetic import synthesize
from onnxparity.signature import Signature

OTHER_SIZE_SAMPLES = 16  # samples at each other size: a frozen or departing axis shows on every one


def example_sizes(signature: Signature, inputs: Inputs) -> dict[str, int]:
    """The size each named axis has in ``inputs`` (read off the arrays; none for images)."""
    if inputs.arrays is None:
        return {}
    sizes: dict[str, int] = {}
    for axis, places in signature.named_axes().items():
        for name, i in places:
            array = inputs.arrays.get(name)
            at = i if signature.input(name).batched else i + 1  # arrays lead with the samples axis
            if array is not None and array.ndim > at:
                sizes.setdefault(axis, int(array.shape[at]))
    return sizes


def other_sizes(example: Mapping[str, int], requested: Mapping[str, tuple[int, ...]]) -> list[dict[str, int]]:
    """The runs beyond the example's: each size ``--axis-sizes`` asks of an axis (the others at the
    example's), or by default every axis at twice its example size."""
    unknown = sorted(set(requested) - set(example))
    if unknown:
        known = ", ".join(sorted(example)) or "none"
        raise InputError(f"--axis-sizes names no dynamic axis of the model's inputs: {', '.join(unknown)} "
                         f"(named axes: {known})")
    if not requested:
        return [{axis: 2 * size for axis, size in example.items()}] if example else []
    return [{**example, axis: size} for axis, sizes in requested.items() for size in sizes if size != example[axis]]


def at_sizes(signature: Signature, sizes: Mapping[str, int], *, n: int = OTHER_SIZE_SAMPLES, int_range=None,
             input_roles=None) -> Inputs:
    """Seeded samples with the named axes at ``sizes``, each input in its role's domain."""
    shapes = {t.name: t.concrete(None, sizes) for t in signature.inputs if t.dynamic_axes}
    inputs = synthesize(signature, n, input_shapes=shapes, int_range=int_range, input_roles=input_roles)
    where = ", ".join(f"{axis}={size}" for axis, size in sizes.items())
    return dataclasses.replace(inputs, source=f"{inputs.source} at {where}")
