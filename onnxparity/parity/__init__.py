"""Parity: the originals and their ONNX files, on every backend and device here, compared on the same inputs.

The reference is the original on CPU in its own framework (Keras on TensorFlow, PyTorch eager), or
outputs saved elsewhere for an ONNX file alone; the candidates are the original on GPU, the Keras
file under Keras 3's torch backend, and the ONNX file in ONNX Runtime per execution provider, tuned
and at batch size 1 (:mod:`onnxparity.backends`). Each framework runs in a worker process of its own
(:mod:`onnxparity.parity.matrix`); each output is judged against the reference's by the plain
functions of :mod:`onnxparity.compare` (:mod:`onnxparity.parity.judging`), and two saved runs can
be judged again later (:mod:`onnxparity.parity.saved_runs`); results are plain data saved as JSON
(:mod:`onnxparity.parity.result`); the console table and the HTML page are views of them
(:mod:`onnxparity.parity.report`).

    from onnxparity.parity import check
    result = check("runs/latest/torch", "runs/latest/torch.onnx", n=500)
    result.passed, [(c.candidate, c.output, c.max_abs_diff) for c in result.comparisons]
"""

from __future__ import annotations

from pathlib import Path

from onnxparity.compare import DEFAULT_TOLERANCES, Comparison, Tolerance
from onnxparity.inputs import Inputs
from onnxparity.parity.matrix import Target, describe, run
from onnxparity.parity.result import BackendRun, ParityResult, load_outputs, save_outputs
from onnxparity.parity.saved_runs import compare_runs

__all__ = ["check", "check_many", "runs_of", "target", "at_other_sizes", "compare_runs", "choose_inputs", "write_reports", "Target", "ParityResult",
           "Comparison", "BackendRun", "Tolerance", "DEFAULT_TOLERANCES", "Inputs", "run", "save_outputs",
           "load_outputs"]


def choose_inputs(target: Target, *, data: str | None = None, n: int | None = None, synthetic: bool = True,
                  inputs: str | Path | None = None, input_shapes=None, int_range=None, input_roles=None,
                  samples: int | None = None) -> tuple[Inputs, dict | None]:
    """A model's inputs (and saved reference outputs, with ``target.reference``), as
    :func:`onnxparity.inputs.choose` picks them."""
    from onnxparity.inputs import choose

    d = describe(target)
    return choose(d.signature, d.spec, what=str(target.original), reference=target.reference, given=inputs, data=data,
                  n=n, synthetic=synthetic, input_shapes=input_shapes, int_range=int_range, samples=samples,
                  input_roles=input_roles)


def runs_of(targets: list[Target], *, data: str | None = None, n: int | None = None, synthetic: bool = True,
            inputs: str | Path | None = None, input_shapes=None, int_range=None, samples: int | None = None,
            input_roles=None, axis_sizes=None) -> tuple[list[Target], list[Inputs], list[dict | None]]:
    """What :func:`check_many` runs: each target on its inputs (with its saved outputs, or None), then
    each model with named dynamic axes beyond the batch once more with them at another size
    (``axis_sizes``, {axis: sizes}; by default twice the example's): :func:`at_other_sizes`."""
    chosen = [choose_inputs(t, data=data, n=n, synthetic=synthetic, inputs=inputs, input_shapes=input_shapes,
                            int_range=int_range, samples=samples, input_roles=input_roles) for t in targets]
    saved = [c[1] for c in chosen]
    per_target = [c[0] for c in chosen]
    for target, (target_inputs, reference) in zip(list(targets), chosen):
        if reference is None:  # saved outputs exist at their own sizes only
            for other, other_inputs in at_other_sizes(target, target_inputs, axis_sizes or {},
                                                      int_range=int_range, input_roles=input_roles):
                targets, per_target, saved = [*targets, other], [*per_target, other_inputs], [*saved, None]
    return targets, per_target, saved


def check_many(targets: list[Target], *, data: str | None = None, n: int | None = None, synthetic: bool = True,
               inputs: str | Path | None = None, input_shapes=None, int_range=None, samples: int | None = None,
               input_roles=None, axis_sizes=None,
               json_path: str | Path | None = None, html_path: str | Path | None = None,
               save_outputs_path: str | Path | None = None, require_devices=None, **options) -> ParityResult:
    """Parity for several models in one matrix, each on its own inputs (:func:`runs_of`); writes the
    reports asked for.

    ``options`` go to :func:`onnxparity.parity.matrix.run` (providers, gpu, atol, rtol,
    min_agreement, batch_size, batch1_limit, jobs, timeout, max_memory, workers). ``require_devices`` ("cuda"): a
    device where a model's original or ONNX file did not run fails the check
    (:mod:`onnxparity.parity.require`).
    """
    from onnxparity.parity import require

    require.parse(require_devices)  # a bad name is an input error before anything runs
    targets, per_target, saved = runs_of(targets, data=data, n=n, synthetic=synthetic, inputs=inputs,
                                         input_shapes=input_shapes, int_range=int_range, samples=samples,
                                         input_roles=input_roles, axis_sizes=axis_sizes)
    result, outputs = run(targets, per_target, saved=saved, **options)
    require.apply(result, require_devices)
    write_reports(result, per_target[0], outputs, json_path=json_path, html_path=html_path,
                  save_outputs_path=save_outputs_path)
    return result


def at_other_sizes(target: Target, inputs: Inputs, axis_sizes: dict, *, int_range=None,
                   input_roles=None) -> list[tuple[Target, Inputs]]:
    """The target again at each other size of its named dynamic axes, with samples at that size
    (:mod:`onnxparity.inputs.axes`); none for a model without such axes or fed images."""
    import dataclasses

    from onnxparity.inputs.axes import at_sizes, example_sizes, other_sizes

    signature = describe(target).signature
    if signature is None:
        return []
    runs = other_sizes(example_sizes(signature, inputs), axis_sizes)
    return [(dataclasses.replace(target, axes=tuple(sizes.items())),
             at_sizes(signature, sizes, int_range=int_range, input_roles=input_roles)) for sizes in runs]


def check(original, onnx: str | Path, *, reference: str | Path | None = None,
          torch_class: str | None = None, torch_kwargs: dict | None = None, trust_recorded: bool = False,
          axis_names: dict | None = None, spec=None, **options) -> ParityResult:
    """Parity for one model: ``original`` (checkpoint folder, .keras, model.pth, or a live ``keras.Model``
    or ``torch.nn.Module``, :mod:`onnxparity.models.live`) against ``onnx``, an ONNX file from
    ``onnxparity convert`` or any other exporter; or, with ``original=None``, the ONNX file against saved
    outputs (``reference``); the model's arguments as :func:`target` takes them, ``options`` as
    :func:`check_many` does."""
    from onnxparity.models.live import live_framework, save_live

    if live_framework(original):  # a live keras.Model / torch.nn.Module: saved once for the workers
        import tempfile

        from onnxparity.onnx_model import OnnxModel

        with tempfile.TemporaryDirectory(prefix="onnxparity-live-") as tmp:
            saved = save_live(original, tmp, OnnxModel(onnx).signature)
            return check(saved, onnx, reference=reference, torch_class=torch_class, torch_kwargs=torch_kwargs,
                         trust_recorded=trust_recorded, axis_names=axis_names, spec=spec, **options)
    return check_many([target(original, onnx, reference=reference, torch_class=torch_class, torch_kwargs=torch_kwargs,
                              trust_recorded=trust_recorded, axis_names=axis_names, spec=spec,
                              input_shapes=options.get("input_shapes"))], **options)


def target(original: str | Path | None, onnx: str | Path, *, reference: str | Path | None = None,
           torch_class: str | None = None, torch_kwargs: dict | None = None, trust_recorded: bool = False,
           axis_names: dict | None = None, spec=None, input_shapes=None) -> Target:
    """The :class:`Target` :func:`check` checks. A state dict is rebuilt with
    ``torch_class(**torch_kwargs)`` where given; a class recorded in a file only as
    :mod:`onnxparity.trust` allows (``trust_recorded=True``: any recorded class). ``axis_names``
    ({input: {axis: name}}, as ``--input-shape NAME=AXIS:SIZE`` gives them) names input axes dynamic
    where nothing recorded says so: a file that fixed them fails at the other size. ``spec`` (a
    ModelSpec, dict or spec.json path) says how to feed an original that has none beside it, and
    ``input_shapes`` (``--input-shape``) sizes the dynamic axes of a file from another exporter."""
    from onnxparity.spec import as_spec
    from onnxparity.trust import Trust

    trust = Trust(torch_class, torch_kwargs, trust_recorded)
    names = tuple((name, axis, axis_name) for name, axes in (axis_names or {}).items() for axis, axis_name in axes.items())
    return Target(None if original is None else str(original), str(onnx), None if reference is None else str(reference),
                  trust, axis_names=names, spec=None if spec is None else as_spec(spec), input_shapes=input_shapes)


def write_reports(result: ParityResult, inputs: Inputs, outputs: dict, *, json_path=None, html_path=None,
                  save_outputs_path=None) -> None:
    if json_path:
        result.save(json_path)
    if html_path:
        from onnxparity.parity.page import write_html

        write_html(html_path, result, inputs, outputs)
    if save_outputs_path:
        save_outputs(save_outputs_path, result, outputs, inputs)
