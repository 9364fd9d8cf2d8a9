"""Live models (a ``torch.nn.Module`` or ``keras.Model`` in the caller's process) handed to worker processes.

Every command runs originals in workers of their own (:mod:`onnxparity._process`), which load them
from files. So the Python API saves a live model once, to a temporary folder: a Keras model as
``.keras``, a PyTorch module as an ExportedProgram (``torch.export``, on an example batch made from
the ONNX file's signature, its dynamic axes kept dynamic), which loads without its class, so a class
defined in the caller's script works too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from onnxparity.errors import InputError, first_line
from onnxparity.signature import Signature


def live_framework(model) -> str | None:
    """``"torch"`` or ``"keras"`` for a live model, None for anything else (a path)."""
    if isinstance(model, (str, os.PathLike)) or model is None:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    raise InputError(f"cannot run a {type(model).__name__}; expected a path, a keras.Model or a torch.nn.Module")


def save_live(model, folder: str | Path, signature: Signature | None) -> Path:
    """``model`` saved in ``folder`` for the workers; a path is returned as it is."""
    framework = live_framework(model)
    if framework is None:
        return Path(model)
    folder = Path(folder)
    if framework == "keras":
        path = folder / f"{model.name or 'model'}.keras"
        model.save(path)
        return path
    if signature is None:
        raise InputError("a live PyTorch module needs an ONNX file beside it, whose signature says what it takes")
    return _exported(model, folder / f"{type(model).__name__}.pt2", signature)


def _exported(module, path: Path, signature: Signature) -> Path:
    import torch

    from onnxparity.inputs import synthesize

    sizes = {t.name: t.concrete(None, {d: 3 for d in t.dynamic_axes}) for t in signature.inputs}
    example = synthesize(signature, 2, input_shapes=sizes, edge_cases=False).arrays
    dims: dict[str, object] = {}

    def dynamic(t) -> dict:
        named = {i: d for i, d in enumerate(t.shape) if isinstance(d, str)}
        return {i: dims.setdefault(d, torch.export.Dim(d.replace(".", "_"), min=1)) for i, d in named.items()}

    args = tuple(torch.from_numpy(example[t.name]) for t in signature.inputs)
    was_training = module.training
    module.eval()
    try:
        program = torch.export.export(module, args, dynamic_shapes=tuple(dynamic(t) for t in signature.inputs))
    except Exception as exc:  # noqa: BLE001 - whatever torch.export cannot trace
        raise InputError(f"cannot hand the live {type(module).__name__} to the worker processes (torch.export: "
                         f"{first_line(exc)}); save its state dict and pass the file with torch_class=") from None
    finally:
        module.train(was_training)
    torch.export.save(program, str(path))
    return path
