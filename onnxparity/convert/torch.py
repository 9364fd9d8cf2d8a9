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
import zipfile
from pathlib import Path

import numpy as np

from onnxparity.convert.graph import BATCH, INPUT_NAME, ConversionError, first_line, batch_is_static
from onnxparity.convert.source import Source, sha256_arrays, sha256_path
from onnxparity.errors import InputError
from onnxparity.models.torch_io import load_module

log = logging.getLogger(__name__)


def open_source(model, spec=None, torch_class: str | None = None, trust_pickle: bool = False) -> Source:
    """A :class:`Source` for a module or a file; weights load with ``weights_only=True`` unless trusted."""
    import torch

    architecture = torch_class or (spec.architecture if spec else None)
    declared = None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        sha256 = sha256_path(path)
        if path.suffix.lower() == ".pt2":
            module, declared = _exported_program(path)
        elif _is_torchscript(path):
            module = _torchscript(path)
        else:
            module = load_module(path, architecture, trust_pickle)
    else:
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"cannot convert a {type(model).__name__}; expected a keras.Model, a torch.nn.Module or a path")
        module = model
        sha256 = sha256_arrays(t.detach().cpu().numpy() for t in model.state_dict().values() if hasattr(t, "detach"))
        architecture = architecture or f"{type(model).__module__}:{type(model).__qualname__}"
    name = spec.name if spec else type(module).__name__

    def forward(x: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode(), _eval_mode(module):
            out = module(torch.from_numpy(x))
        return [t.detach().cpu().numpy() for t in _flatten(out)]

    return Source(framework="torch", name=name, forward=forward, export=_exporter(module),
                  framework_version=f"torch {torch.__version__}", converter="torch.onnx",
                  converter_version=torch.__version__, sha256=sha256, input_shape=declared, spec=spec,
                  architecture=architecture)


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


def _flatten(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in out for t in _flatten(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _flatten(item)]
    raise ConversionError(f"the model returned a {type(out).__name__}, not tensors")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives carry compiled code (``<name>/code/...``); ``torch.save`` files do not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _torchscript(path: Path):
    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others
        raise InputError(f"{path}: not a loadable TorchScript file ({first_line(exc)})") from None


def _exported_program(path: Path):
    """An ExportedProgram's module, and its input shape from the example it was exported with.

    A program exported with a fixed batch size has that size baked into its guards and reshapes,
    so it cannot become a file with a dynamic batch axis: refused, saying how to export it.
    """
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: not a loadable ExportedProgram ({first_line(exc)})") from None
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [tuple(n.meta["val"].shape) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in user_inputs and "val" in n.meta]
    if len(shapes) != 1:
        raise InputError(f"{path}: the program takes {len(shapes)} inputs; only one-input models convert")
    batch, *rest = shapes[0]
    if isinstance(batch, int):
        raise InputError(f"{path}: exported with a fixed batch size of {batch}; export it with a dynamic batch, "
                         "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
    declared = tuple(rest) if all(isinstance(d, int) for d in rest) else None
    return program.module(), declared


DYNAMO_MIN_OPSET = 18  # older opsets: torch.onnx's dynamo path converts down, fails noisily, keeps 18


def _exporter(module):
    def export(sample: np.ndarray, input_shape: tuple[int, ...], opset: int, output_names: list[str]):
        import onnx
        import torch

        example = (torch.from_numpy(np.ascontiguousarray(sample[:2] if len(sample) >= 2 else np.repeat(sample, 2, 0))),)
        with _eval_mode(module):
            if isinstance(module, torch.jit.ScriptModule) or opset < DYNAMO_MIN_OPSET:
                reason = ("the model is TorchScript, which torch.export cannot capture" if opset >= DYNAMO_MIN_OPSET
                          else f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} and newer, not {opset}")
                log.info("%s; using the TorchScript exporter", reason)
            else:
                try:
                    proto = _dynamo(module, example, opset, output_names)
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
                    torch.onnx.export(module, example, buffer, dynamo=False, input_names=[INPUT_NAME],
                                      output_names=output_names, opset_version=opset,
                                      dynamic_axes={name: {0: BATCH} for name in [INPUT_NAME, *output_names]})
            except Exception as exc:  # noqa: BLE001
                raise ConversionError(f"torch.onnx could not export the model ({reason}; "
                                      f"TorchScript exporter failed: {first_line(exc)})") from None
            return onnx.load_from_string(buffer.getvalue()), f"torch.onnx TorchScript exporter ({reason})"

    return export


def _dynamo(module, example, opset: int, output_names: list[str]):
    """The dynamo exporter's graph as one in-memory ModelProto (weights inline, no .onnx.data)."""
    import torch

    batch = torch.export.Dim(BATCH, min=1)
    # onnxscript's optimizer logs every pass at INFO; keep that for --verbose at DEBUG level only.
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
    try:
        program = torch.onnx.export(module, example, dynamo=True, input_names=[INPUT_NAME], output_names=output_names,
                                    opset_version=opset, dynamic_shapes=({0: batch},), verbose=False, optimize=True)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    return program.model_proto
