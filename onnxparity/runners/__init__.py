"""Runners: one per backend, all with the same small interface (after Polygraphy's runners).

A runner is built from a model path, knows the model's :class:`~onnxparity.spec.ModelSpec`, and
``infer(feeds)`` maps inputs by name (one batch, already in the model's layout and dtype) to its
outputs by name, in the signature's order; ``bind(feeds)`` returns the call the bench times, one
batch bound once. ``predict`` feeds raw uint8 digits in batches. Runner ``name`` (``"keras-torch"``)
lives in the module named before its first dash (:mod:`onnxparity.runners.keras`), the package it
runs on, as that module's ``RUNNERS[name]``; a new runtime is one module here. Which backends
exist, and where each runs, is described once in :mod:`onnxparity.backends`. Runners import their
framework when built, never at import time; ONNX Runtime sessions come from :mod:`.sessions`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Callable, Protocol

import numpy as np

from onnxparity.compare import class_output
from onnxparity.errors import BackendUnavailable, InputError  # noqa: F401 (BackendUnavailable: re-exported)
from onnxparity.models import resolve
from onnxparity.spec import ModelSpec

DEFAULT_RUNNER = {"keras": "keras", "torch": "torch", "onnx": "onnxruntime"}


def cuda_unavailable_reason() -> str | None:
    """Why PyTorch cannot use CUDA here, in a few words; None when it can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return f"no CUDA device visible (torch {torch.__version__} built for CUDA {torch.version.cuda}; no NVIDIA driver or GPU)"
    return None


class Runner(Protocol):
    name: str
    spec: ModelSpec | None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch of inputs by name -> the model's outputs by name."""

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        """A zero-argument call that runs this batch once and waits for the result (the bench times it)."""


def open_runner(path: str | os.PathLike, runner: str | None = None, spec: ModelSpec | None = None,
                trust: dict | None = None, **options) -> Runner:
    """Build the runner for ``path``: its framework's own by default, or the named ``runner``.
    ``trust`` (:meth:`onnxparity.trust.Trust.to_dict`): the user's word on rebuilding a PyTorch class.

    ``spec`` stands in where the file has none beside it (a bare ``.keras`` checked against its
    ONNX file, whose metadata carries the spec), and lends its signature to a spec that has none.
    """
    ref = resolve(path)
    if ref.framework != "onnx" and spec is not None:
        from onnxparity.models import ModelRef

        ref = ModelRef(ref.framework, ref.path, merge_specs(ref.spec, spec))
    cls = runner_class(runner or DEFAULT_RUNNER[ref.framework])
    if ref.framework == "torch":
        options["trust"] = trust
    return cls(ref, **options)


def runner_module(name: str) -> str:
    """The package runner ``name`` runs on, which names its module here: ``"keras-torch"`` -> ``"keras"``."""
    return name.split("-", 1)[0]


def runner_class(name: str) -> type:
    """Runner ``name``'s class: ``RUNNERS[name]`` of its module."""
    module = f"{__name__}.{runner_module(name)}"
    found = importlib.util.find_spec(module) if runner_module(name).isidentifier() else None
    runners = getattr(importlib.import_module(module), "RUNNERS", {}) if found else {}
    if name not in runners:
        raise InputError(f"unknown runner {name!r} (no {module} module runs it)")
    return runners[name]


def merge_specs(own: ModelSpec | None, other: ModelSpec | None) -> ModelSpec | None:
    """The original's own spec, completed from another's (its ONNX file's): signature, class kwargs, imports."""
    import dataclasses

    if own is None or other is None:
        return own or other
    changes = {}
    if own.signature is None and other.signature is not None:
        changes["signature"] = other.signature
    if own.torch_kwargs is None and other.torch_kwargs is not None:
        changes["torch_kwargs"] = other.torch_kwargs
    if set(other.imports) - set(own.imports):
        changes["imports"] = tuple(dict.fromkeys([*own.imports, *other.imports]))
    return dataclasses.replace(own, **changes) if changes else own


def match_names(names: list[str], own: list[str] | None) -> dict:
    """How the tensor names a file uses (``names``, the spec's signature) meet the original's own (a
    forward's parameters, a Keras model's inputs, a dict's keys): ``{"by": "name"}`` where the
    original has every one of them, else ``{"by": "order", "pairs": [[file's, own], ...]}``."""
    if own is not None and set(names) <= set(own):
        return {"by": "name"}
    return {"by": "order", "pairs": [[n, o] for n, o in zip(names, own or ())]}


def name_outputs(spec: ModelSpec, out, what: str, convert=np.asarray) -> tuple[dict[str, np.ndarray], dict]:
    """An original's outputs named by the spec's signature, and how they were matched: a dict or a
    dataclass (a Hugging Face ``ModelOutput``) holding every name by its keys, anything else flattened and in order.
    ``convert``: one framework tensor -> numpy."""
    from onnxparity._io import flatten_outputs, output_fields

    names, fields = spec.output_names, output_fields(out)
    if fields is not None and set(names) <= set(fields) and all(len(flatten_outputs(fields[n])) == 1 for n in names):
        return {n: convert(flatten_outputs(fields[n])[0]) for n in names}, {"by": "name"}
    arrays = [convert(t) for t in flatten_outputs(out)]
    if len(names) != len(arrays):
        raise InputError(f"{what} returned {len(arrays)} outputs; its spec names {len(names)} ({', '.join(names)})")
    own = [str(k) for k in fields] if fields is not None and len(fields) == len(names) else None
    return dict(zip(names, arrays)), match_names(names, own)


def ordered_inputs(spec: ModelSpec, feeds: dict[str, np.ndarray], own: list[str] | None = None) -> list[np.ndarray]:
    """Inputs by name -> the original's positional inputs: in ``own`` order (its inputs' names) where
    it names every input, else in the signature's order."""
    if spec.signature is None or len(feeds) == 1 and len(spec.signature.inputs) <= 1:
        return list(feeds.values())
    names = spec.signature.input_names
    if own is not None and match_names(names, own)["by"] == "name":
        names = [n for n in own if n in set(names)]
    try:
        return [feeds[n] for n in names]
    except KeyError as exc:
        raise InputError(f"no data for input {exc.args[0]!r} (given: {', '.join(feeds)})") from None


def typed_feeds(signature, feeds: dict[str, np.ndarray], where) -> dict[str, np.ndarray]:
    """Inputs by name, each cast to the dtype the ONNX graph declares (a runtime on the file takes them so),
    and refused where a size differs from one the graph fixes: ONNX Runtime says so itself, but
    OpenVINO answers such a feed with empty outputs."""
    dtypes = {t.name: np.dtype(t.dtype) for t in signature.inputs}
    missing = [n for n in dtypes if n not in feeds]
    if missing:
        raise InputError(f"{where}: no data for input {', '.join(missing)} (given: {', '.join(feeds)})")
    for t in signature.inputs:
        shape = np.shape(feeds[t.name])
        wrong = [(i, d, s) for i, (d, s) in enumerate(zip(t.shape, shape)) if isinstance(d, int) and d != s]
        if wrong or len(shape) != len(t.shape):
            i, d, s = (wrong or [(len(t.shape), len(t.shape), len(shape))])[0]
            raise InputError(f"{where}: input {t.name} has shape {list(shape)}, but the file takes "
                             f"[{', '.join(map(str, t.shape))}]" + (f" (axis {i} fixed at {d})" if wrong else ""))
    return {n: np.asarray(feeds[n]).astype(dt, copy=False) for n, dt in dtypes.items()}


def _class_scores(spec: ModelSpec, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The output :func:`~onnxparity.compare.class_output` names (else the first)."""
    return outputs[class_output(outputs, spec.class_outputs) or next(iter(outputs))]


def predict(runner: Runner, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Raw uint8 images (N, H, W[, C]) -> the runner's class output, fed in batches."""
    x = runner.spec.preprocess(images)
    if len(x) == 0:
        raise InputError("no images to run")
    name = runner.spec.input_name or "input"
    return np.concatenate([np.asarray(_class_scores(runner.spec, runner.infer({name: x[i : i + batch_size]})))
                           for i in range(0, len(x), batch_size)])
