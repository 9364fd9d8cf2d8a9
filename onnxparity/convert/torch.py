"""PyTorch models (a state dict plus its class, TorchScript ``.pt``, ExportedProgram ``.pt2`` or a
live ``nn.Module``) to ONNX with ``torch.onnx.export``.

The dynamo exporter goes first, with the batch axis declared dynamic and an example batch of 2
(an example of 1 lets it specialize the axis). When it fails, or freezes the batch axis anyway,
the TorchScript exporter runs instead and the reason is logged and kept in the result.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from onnxparity._io import flatten_outputs, output_fields, sha256_arrays, sha256_path
from onnxparity.convert.graph import BATCH, ConversionError, batch_is_static
from onnxparity.convert.source import Source
from onnxparity.errors import InputError, first_line
from onnxparity.models.torch_io import load_program, load_torch_file, needs_class
from onnxparity.signature import TensorSpec
from onnxparity.trust import Trust

log = logging.getLogger(__name__)


def open_source(model, spec=None, trust: Trust | None = None, trust_pickle: bool = False) -> Source:
    """A :class:`Source` for a module or a file; weights load with ``weights_only=True`` unless trusted,
    a state dict's class as ``trust`` (the user's word) names or allows."""
    import torch

    trust = trust or Trust()
    recorded = (spec.architecture, spec.torch_kwargs) if spec is not None else (None, None)
    architecture, torch_kwargs = trust.resolve(*recorded, where="the model's spec.json")
    declared = None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        sha256 = sha256_path(path)
        if path.suffix.lower() == ".pt2":
            module, declared = _exported_program(path, trust_pickle)
        else:
            module = load_torch_file(path, recorded[0], trust_pickle, kwargs=recorded[1], trust=trust)
    else:
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"cannot convert a {type(model).__name__}; expected a keras.Model, a torch.nn.Module or a path")
        module = model
        sha256 = sha256_arrays(t.detach().cpu().numpy() for t in model.state_dict().values() if hasattr(t, "detach"))
        architecture = architecture or f"{type(model).__module__}:{type(model).__qualname__}"
    program = isinstance(model, (str, os.PathLike)) and not needs_class(model)  # named after its file, not GraphModule
    name = spec.name if spec else Path(model).stem if program else type(module).__name__
    source: Source

    def forward(xs: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode(), _eval_mode(module):
            out = module(*(torch.from_numpy(np.ascontiguousarray(x)) for x in xs))
        fields = output_fields(out)
        if fields is not None:
            source.output_names = [str(k) for k in fields]
        return _arrays(out)

    rows = [m.num_embeddings for m in module.modules() if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))] \
        if isinstance(module, torch.nn.Module) else []
    source = Source(framework="torch", name=name, forward=forward, export=_exporter(module),
                    framework_version=f"torch {torch.__version__}", converter="torch.onnx",
                    converter_version=torch.__version__, sha256=sha256, inputs=declared or _forward_inputs(module),
                    embedding_rows=min(rows) if rows else None, spec=spec, architecture=architecture,
                    torch_kwargs=torch_kwargs)
    return source


def _forward_inputs(module) -> list[TensorSpec] | None:
    """Input names from ``forward``'s parameters (dtypes and shapes unknown: float32, no shape)."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return None
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
             and p.default is inspect.Parameter.empty]
    if not names or any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return [TensorSpec(n, "float32", (BATCH,)) for n in names]


@contextlib.contextmanager
def _eval_mode(module):
    """Eval mode (dropout off) for a run or an export, the caller's mode restored afterwards."""
    was_training = getattr(module, "training", False)
    _set_mode(module, False)
    try:
        yield
    finally:
        if was_training:
            _set_mode(module, True)


def _set_mode(module, training: bool) -> None:
    """``train()``/``eval()``; an ExportedProgram's module refuses both and has its mode baked in.

    For such a module only the ``training`` flag is set, so that torch.onnx does not warn that it
    exports "in training mode": the graph already is what ``torch.export`` captured.
    """
    try:
        module.train(training)
    except NotImplementedError:
        module.training = training
    except (RuntimeError, AttributeError):
        pass


def _arrays(out) -> list[np.ndarray]:
    """A module's outputs (tensors, or dicts, tuples and lists of them) as numpy arrays, in order."""
    import torch

    tensors = flatten_outputs(out)
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise ConversionError(f"the model returned a {type(t).__name__}, not tensors")
    return [t.detach().cpu().numpy() for t in tensors]


def _exported_program(path: Path, trust_pickle: bool = False):
    """An ExportedProgram's module, and its input shape from the example it was exported with.

    A program exported with a fixed batch size has that size baked into its guards and reshapes,
    so it cannot become a file with a dynamic batch axis: refused, saying how to export it.
    """
    program = load_program(path, trust_pickle)
    user_inputs = set(program.graph_signature.user_inputs)
    values = [(n.name, n.meta["val"]) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in user_inputs and "val" in n.meta]
    if not values:
        raise InputError(f"{path}: the program takes no tensor inputs")
    declared = []
    for name, val in values:
        batch, *rest = tuple(val.shape)
        if isinstance(batch, int):
            raise InputError(f"{path}: exported with a fixed batch size of {batch}; export it with a dynamic batch, "
                             "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
        dims = [BATCH] + [d if isinstance(d, int) else f"{name}_dim{i}" for i, d in enumerate(rest, 1)]
        declared.append(TensorSpec(name, str(val.dtype).removeprefix("torch."), tuple(dims)))
    return program.module(), declared


DYNAMO_MIN_OPSET = 18  # older opsets: torch.onnx's dynamo path converts down, fails noisily, keeps 18


def _exporter(module):
    def export(samples: list[np.ndarray], inputs: list[TensorSpec], opset: int, output_names: list[str],
               dynamic_axes: dict[str, dict[int, str]] | None = None):
        import onnx
        import torch

        example = tuple(torch.from_numpy(np.ascontiguousarray(x[:2] if len(x) >= 2 else np.repeat(x, 2, 0)))
                        for x in samples)
        names = [t.name for t in inputs]
        axes = [{0: BATCH, **(dynamic_axes or {}).get(name, {})} for name in names]
        with _eval_mode(module):
            if isinstance(module, torch.jit.ScriptModule) or opset < DYNAMO_MIN_OPSET:
                reason = ("the model is TorchScript, which torch.export cannot capture" if opset >= DYNAMO_MIN_OPSET
                          else f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} and newer, not {opset}")
                log.info("%s; using the TorchScript exporter", reason)
            else:
                try:
                    proto = _dynamo(module, example, opset, names, output_names, axes)
                    if batch_is_static(proto):
                        raise ConversionError("it froze the batch axis to the example's size")
                    return proto, f"torch.onnx dynamo exporter (torch {torch.__version__})"
                except Exception as exc:  # noqa: BLE001 - any dynamo failure: fall back, say why
                    reason = f"dynamo exporter failed: {first_line(exc.__cause__ or exc)}"  # the wrapped real cause
                    log.warning("%s; falling back to the TorchScript exporter", reason)
            buffer = io.BytesIO()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its deprecation notices; the fallback is logged above
                    torch.onnx.export(module, example, buffer, dynamo=False, input_names=names,
                                      output_names=output_names, opset_version=opset,
                                      dynamic_axes={**{name: {0: BATCH} for name in output_names},
                                                    **dict(zip(names, axes))})
            except Exception as exc:  # noqa: BLE001
                raise ConversionError(f"torch.onnx could not export the model ({reason}; "
                                      f"TorchScript exporter failed: {first_line(exc)})") from None
            return onnx.load_from_string(buffer.getvalue()), f"torch.onnx TorchScript exporter ({reason})"

    return export


def _dynamo(module, example, opset: int, input_names: list[str], output_names: list[str],
            axes: list[dict[int, str]]):
    """The dynamo exporter's graph as one in-memory ModelProto (weights inline, no .onnx.data).

    ``axes`` names each input's dynamic axes; one ``Dim`` per name, so inputs naming the same axis share it."""
    import torch

    dims = {name: torch.export.Dim(name, min=1) for name in {n for a in axes for n in a.values()}}
    # onnxscript's optimizer logs every pass at INFO; keep that for --verbose at DEBUG level only.
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    try:
        program = torch.onnx.export(module, example, dynamo=True, input_names=input_names, output_names=output_names,
                                    opset_version=opset, dynamic_shapes=tuple({i: dims[n] for i, n in a.items()} for a in axes),
                                    verbose=False, optimize=True)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return program.model_proto
