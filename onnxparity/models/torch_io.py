"""Loading PyTorch files safely: the one place that calls ``torch.load`` (and loads TorchScript and
ExportedPrograms). The modules the user named with ``--import`` are imported first.

State dicts load with ``weights_only=True`` (no pickled code runs); a pickled whole model loads
only when the caller says the file is trusted. A state dict becomes a module through its class,
named ``"package.module:Class"`` or ``"package.module:factory"`` (a spec's ``architecture`` or
``--torch-class``) and called with keyword arguments (``torch_kwargs``, ``--torch-kwargs``), or
``"./model.py:Class"`` for a checked model file beside the weights (see ``models.generated``).
A name recorded in a file is imported only as :class:`onnxparity.trust.Trust` allows.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from onnxparity._process import import_requested
from onnxparity.errors import InputError, first_line
from onnxparity.models.generated import load_class
from onnxparity.trust import Trust, check_zoo_member, is_file_architecture, zoo_of


def import_class(path: str):
    """``"package.module:Class"`` -> the class, with a one-line error when it does not import.
    Only for names the caller has allowed (:class:`onnxparity.trust.Trust`): importing runs code."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InputError(f"cannot import model class {path!r} ({exc})") from None
    if zoo_of(path):
        check_zoo_member(module, name, obj, path)
    return obj


def _load_weights_only(path: str | Path):
    """``torch.load`` with ``weights_only=True``: what the file holds, or the loader's exception.

    A missing file is an :class:`InputError`; any other failure is returned to the caller, which
    knows what the file should have held."""
    import torch

    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), None
    except Exception as exc:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError...
        return None, exc


def load_state(path: str | Path) -> dict:
    """A state dict (model or optimizer) loaded without running pickled code."""
    state, error = _load_weights_only(path)
    if error is not None:
        raise InputError(f"{path}: not a loadable PyTorch state dict ({first_line(error)})")
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def build_module(architecture: str, kwargs=None, folder: Path | None = None, trust: Trust | None = None,
                 where: str = "the model's spec"):
    """``architecture(**kwargs)``: a class or a factory function that returns an ``nn.Module``;
    ``"./model.py:Class"`` is the checked file in ``folder`` that ``onnxparity migrate`` wrote.
    ``architecture`` and ``kwargs`` are the recorded ones; ``trust`` (the user's word) may replace
    them and decides whether a recorded name may be imported at all."""
    import torch

    architecture, kwargs = (trust or Trust()).resolve(architecture, kwargs, where)
    if is_file_architecture(architecture):
        if folder is None:
            raise InputError(f"{architecture}: a model file needs the folder it lies in")
        cls = load_class(folder, architecture)
    else:
        cls = import_class(architecture)
    if isinstance(cls, type) and not issubclass(cls, torch.nn.Module):
        raise InputError(f"{architecture}: a {cls.__name__} class, not a torch.nn.Module; not instantiated")
    try:
        module = cls(**dict(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - whatever the user's constructor raises
        args = ", ".join(f"{k}={v!r}" for k, v in dict(kwargs or {}).items())
        raise InputError(f"cannot build {architecture}({args}) ({first_line(exc)}); "
                         "pass its arguments with --torch-kwargs '{...}'") from None
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{architecture}(...) returned a {type(module).__name__}, not a torch.nn.Module")
    return module


def load_module(path: str | Path, architecture: str | None, trust_pickle: bool = False, kwargs=None,
                trust: Trust | None = None):
    """A state dict rebuilt with ``architecture(**kwargs)`` (as ``trust`` allows and overrides) or,
    only when trusted, a pickled whole model."""
    import torch

    import_requested()
    obj, error = _load_weights_only(path)
    if error is not None:
        # Only a pickled class or function ("Unsupported global") may load when trusted; any other
        # failure is a broken file, whatever torch's message suggests about weights_only.
        if "Unsupported global" not in str(error):
            raise InputError(f"{path}: not a loadable PyTorch file ({first_line(error)})")
        if not trust_pickle:
            raise InputError(f"{path}: holds pickled Python objects (a whole model?), and loading them runs code "
                             "from the file; save a state dict, or pass --trust-pickle if you trust it") from None
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:  # noqa: BLE001
            raise InputError(f"{path}: not a loadable PyTorch file ({first_line(exc2)})") from None
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, neither a state dict nor a model")
    trust = trust or Trust()
    if not (architecture or trust.torch_class):
        raise InputError(f"{path}: a state dict; name its model class with --torch-class package.module:Class "
                         "(or put a spec.json beside it)")
    where = f"the spec recorded for {path} (spec.json or ONNX metadata)"
    architecture, kwargs = trust.resolve(architecture, kwargs, where)  # the user's class and arguments, or allowed ones
    module = build_module(architecture, kwargs, folder=Path(path).parent, trust=trust)
    try:
        module.load_state_dict(obj)
    except Exception as exc:  # noqa: BLE001 - RuntimeError for missing/unexpected keys, size mismatch
        hint = "" if kwargs else "; if the class takes arguments, pass them with --torch-kwargs '{...}'"
        raise InputError(f"{path}: weights do not fit {architecture} ({first_line(exc)}){hint}") from None
    return module


def load_torch_file(path: str | Path, architecture: str | None = None, trust_pickle: bool = False, kwargs=None,
                    trust: Trust | None = None, submodules: bool = False):
    """Any PyTorch model file as a module: an ExportedProgram (``.pt2``), a TorchScript archive, or a
    state dict rebuilt with its class (:func:`load_module`). ``submodules``: an ExportedProgram with its
    module hierarchy restored (``torch.export.unflatten``), so each submodule's call can be hooked (locate)."""
    path = Path(path)
    if path.suffix.lower() == ".pt2":
        import torch

        program = load_program(path, trust_pickle)
        return torch.export.unflatten(program) if submodules else program.module()
    if is_torchscript(path):
        import torch

        import_requested()
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and others
            raise InputError(f"{path}: not a loadable TorchScript file ({first_line(exc)})") from None
    return load_module(path, architecture, trust_pickle, kwargs=kwargs, trust=trust)


def needs_class(path: str | Path) -> bool:
    """Whether a PyTorch file is weights that need their model class (not a program or an archive)."""
    return Path(path).suffix.lower() != ".pt2" and not is_torchscript(path)


def is_torchscript(path: str | Path) -> bool:
    """TorchScript archives carry compiled code (``<name>/code/...``); ``torch.save`` files do not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_program(path: str | Path, trust_pickle: bool = False):
    """An ExportedProgram (``torch.export.load``), after the ``--import`` modules that register the
    classes its inputs and outputs are made of (a Hugging Face model's outputs: ``--import transformers``).
    A program holding pickled objects is refused unless ``trust_pickle`` (:func:`pickled_member`)."""
    import logging

    import torch

    import_requested()
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    member = None if trust_pickle else pickled_member(path)
    if member is not None:
        raise InputError(f"{path}: {member} holds pickled Python objects, and loading them runs code from the "
                         "file; export the program with plain tensors, or convert it with --trust-pickle if you "
                         "trust it")
    logger, heard = logging.getLogger("torch.export"), []  # torch logs the real cause, then raises a vague error
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: heard.append(str(record.exc_info[1]) if record.exc_info else record.getMessage())
    handlers, propagate = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [handler], False
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        why = next((h for h in reversed(heard) if "registered" in h), None) or first_line(exc)
        hint = ("; pass --import MODULE, the module that registers that class (transformers for a Hugging Face "
                "model's outputs)" if "registered" in why else "")
        raise InputError(f"{path}: not a loadable ExportedProgram ({why.strip()}){hint}") from None
    finally:
        logger.handlers, logger.propagate = handlers, propagate


def pickled_member(path: str | Path) -> str | None:
    """What in a ``.pt2`` ``torch.export.load`` would unpickle with the full unpickler, which runs code
    from the file: a payload its archive marks ``use_pickle`` (tensor subclasses, custom and opaque
    objects), or a ``.pt`` member that ``weights_only`` loading refuses (torch then falls back to the full
    one). None when everything in it is plain tensors (or it is no zip: ``torch.export.load`` says why)."""
    import io
    import json

    import torch

    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith("_config.json") and "/data/" in name:
                    try:
                        config = json.loads(z.read(name)).get("config", {})
                    except (ValueError, AttributeError):
                        return name
                    pickled = [fqn for fqn, meta in config.items() if not isinstance(meta, dict) or meta.get("use_pickle")]
                    if pickled:
                        return f"{name} ({pickled[0]})"
                elif name.endswith(".pt"):
                    try:
                        torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=True)
                    except Exception:  # noqa: BLE001 - whatever refuses it, torch would retry without weights_only
                        return name
    except (zipfile.BadZipFile, OSError):
        return None
    return None
