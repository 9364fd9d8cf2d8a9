"""How to feed a model that came without a ``spec.json``: what ``onnxparity convert`` infers.

Convert, and every command that runs a bare file (``evaluate``, ``predict``, parity's Keras runner),
infer its spec here, so they treat it alike. An image input (one float32 input of three axes) gets
the framework's layout (Keras NHWC, PyTorch NCHW) and pixels scaled to 0..1; the output kind
(probabilities, log-probabilities, logits) is read off the model's answers to probe inputs: real
digits for a digit model, random pixels for other image models, seeded samples from the signature
for anything else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from onnxparity.errors import InputError
from onnxparity.signature import BATCH, Signature, TensorSpec
from onnxparity.spec import DIGITS, ModelSpec

CHECK_SAMPLES = 7  # the probe batch: convert checks the file against the original on it (and batch 1 beside it)


def keras_spec(model, path: str | Path) -> ModelSpec:
    """The spec convert would give ``model`` (a loaded Keras model or keras_cnn.SavedModel)."""
    shape = getattr(model, "sample_shape", None)
    if shape is None:
        inputs = getattr(model, "inputs", None) or []
        if len(inputs) != 1:
            raise InputError(f"{path}: a model with {len(inputs)} inputs; only one-input models run here")
        shape = tuple(inputs[0].shape[1:])
    if not shape or not all(isinstance(d, int) for d in shape):
        raise InputError(f"{path}: the model does not say its input shape ({list(shape)}); write a spec.json "
                         "beside it or convert it with --input-shape and use the ONNX file")
    source = SimpleNamespace(name=getattr(model, "name", Path(path).stem), framework="keras", architecture=None,
                             torch_kwargs=None)
    return infer_spec(source, [TensorSpec("input", "float32", (BATCH, *shape))],
                      lambda xs: [np.asarray(model.predict_on_batch(xs[0]))])


def infer_spec(source, inputs: list[TensorSpec], run) -> ModelSpec:
    """The spec convert gives a model that came without one (``source``: its name, framework,
    architecture and torch_kwargs; ``run``: one batch per input -> its outputs)."""
    probe = probe_spec(None, source, inputs)
    _, xs = probe_inputs(probe, inputs)
    return final_spec(None, probe, source, inputs, run(xs))


def probe_spec(given: ModelSpec | None, source, inputs: list[TensorSpec]) -> ModelSpec:
    """The spec that says how to make the probe inputs: the given one, or the framework's defaults."""
    first = inputs[0]
    if given is not None:
        return dataclasses.replace(given, input_shape=first.sample_shape, input_dtype="float32")
    image = len(inputs) == 1 and first.dtype == "float32" and len(first.sample_shape) == 3
    layout = ("NHWC" if source.framework == "keras" else "NCHW") if image else None
    spec = ModelSpec(name=source.name, framework=source.framework, input_shape=first.sample_shape, layout=layout,
                     architecture=source.architecture, torch_kwargs=source.torch_kwargs)
    return spec if spec.image_size is not None else dataclasses.replace(spec, layout=None)


def probe_inputs(spec: ModelSpec, inputs: list[TensorSpec]) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """(raw images or None, one batch per input): :func:`onnxparity.inputs.default_inputs` without
    edge cases: real digits for a digit model, random pixels for other image models, seeded samples
    from the signature for anything else."""
    from onnxparity.inputs import default_inputs

    samples = default_inputs(spec, Signature(tuple(inputs), ()), CHECK_SAMPLES, edge_cases=False, seed=0)
    if samples.images is not None:
        return samples.images, [spec.preprocess(samples.images)]
    return None, [samples.arrays[t.name] for t in inputs]


def final_spec(given: ModelSpec | None, probe: ModelSpec, source, inputs: list[TensorSpec],
               reference: list[np.ndarray]) -> ModelSpec:
    """The probe spec completed: a given spec keeps its outputs and labels; an inferred one takes
    its output kind and labels from the model's answers (``reference``) to the probe inputs."""
    # An image input's dtype is the preprocessed float32; any other first input keeps its own (ids...).
    input_dtype = "float32" if probe.layout is not None else inputs[0].dtype
    if given is not None:
        kwargs = source.torch_kwargs if source.torch_kwargs is not None else probe.torch_kwargs
        return dataclasses.replace(probe, torch_kwargs=kwargs, architecture=probe.architecture or source.architecture,
                                   input_dtype=input_dtype)
    first = reference[0]
    classes = first.shape[-1] if first.ndim >= 2 else 1
    labels = DIGITS if classes == 10 else tuple(str(i) for i in range(classes))
    return dataclasses.replace(probe, output=output_kind(first), labels=labels,
                               input_dtype=input_dtype)


def output_kind(output: np.ndarray) -> str:
    """Probabilities (rows >= 0 summing to 1), log-probabilities (exp of rows sums to 1) or logits."""
    out = np.asarray(output, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] < 2:
        return "logits"
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1, atol=1e-3):
        return "probabilities"
    if (out <= 0).all() and np.allclose(np.exp(out).sum(axis=1), 1, atol=1e-3):
        return "log_probabilities"
    return "logits"


def spec_from_signature(name: str, framework: str, signature: Signature, *, architecture: str | None = None,
                        torch_kwargs=None, input_shapes=None, softmax: tuple[str, ...] = ()) -> ModelSpec:
    """The spec of an original whose ONNX file came from another exporter (no onnxparity metadata):
    read off the file's own signature. One float input of three fixed axes, one of them 1, 3 or 4
    channels, is an image in the layout those channels say (first: NCHW, last: NHWC) with pixels
    scaled to 0..1; any other input is fed as the signature says. The first output is probabilities
    where a Softmax computes it (``softmax``), else logits. ``input_shapes`` (``--input-shape``) sizes
    the first input's dynamic axes."""
    first = signature.inputs[0]
    sizes = dict(input_shapes or {})
    given = sizes.get(first.name) or (sizes.get(None) if len(signature.inputs) == 1 else None)
    shape = tuple(given) if given else tuple(d if isinstance(d, int) else 1 for d in first.sample_shape)
    layout = None
    if len(signature.inputs) == 1 and first.is_float and len(shape) == 3:
        layout = "NCHW" if shape[0] in (1, 3, 4) else "NHWC" if shape[-1] in (1, 3, 4) else None
    out = signature.outputs[0] if signature.outputs else None
    classes = out.shape[-1] if out is not None and len(out.shape) == 2 and isinstance(out.shape[-1], int) else 0
    labels = DIGITS if classes == 10 else tuple(str(i) for i in range(classes)) or DIGITS
    return ModelSpec(name=name, framework=framework, input_shape=shape, layout=layout,
                     output="probabilities" if out is not None and out.name in softmax else "logits",
                     labels=labels, architecture=architecture, torch_kwargs=torch_kwargs,
                     input_dtype="float32" if layout else first.dtype, signature=signature)
