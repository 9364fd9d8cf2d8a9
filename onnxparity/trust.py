"""What the toolkit imports or calls on a file's word: nothing, unless the user said so.

A model may need modules imported before it loads (``--import``: a Keras model's custom layers, an
ExportedProgram's output classes); convert records them (``imports``), and a later command imports a
recorded module only when the user names it again, it is a trusted package's (:data:`TRUSTED_IMPORTS`), or
``--trust-recorded`` is given (:meth:`Trust.admit_imports`).

A PyTorch state dict needs its class to become a model, and spec.json or an ONNX file's metadata
records it (``architecture``, ``torch_kwargs``). A recorded name is code: ``"subprocess:run"`` with
``{"args": [...]}`` would run a command. So a recorded class is imported and called only when
one of these holds (checked before anything is imported):

- the user names a class on this command line (``--torch-class``; its ``--torch-kwargs`` then
  replace the recorded ones), or the same in the Python API (``torch_class=``);
- it is one of the toolkit's own reference classes (:data:`REFERENCE_CLASSES`), or a
  ``./model.py:Class`` beside the weights that ``onnxparity migrate`` wrote
  (:mod:`onnxparity.models.generated` checks its source before importing it);
- it is a model builder of a trusted zoo (:data:`TRUSTED_ZOOS`);
- the user passes ``--trust-recorded`` (``trust_recorded=True``), as ``--trust-pickle`` does for pickles.

Whatever is allowed, a class must be a ``torch.nn.Module`` subclass before it is instantiated, and a
factory's result is checked after the call (:func:`onnxparity.models.torch_io.build_module`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

from onnxparity.errors import InputError

FILE_PREFIX = "./"  # "./model.py:Class": a file beside the weights
# The toolkit's own classes: their code ships with it.
REFERENCE_CLASSES = frozenset({"onnxparity.models.torch_net:Net"})

# Model zoos whose builders a recorded name may call, and why each is safe: the module is an
# installed, widely used library, and only its registered model builders (or nn.Module classes)
# are called; their keyword arguments configure layers and never name files or code.
TRUSTED_ZOOS = {
    "torchvision.models": "torchvision's registered model builders (torchvision.models.list_models())",
    "torchvision.models.detection": "the same, detection models",
    "torchvision.models.segmentation": "the same, segmentation models",
    "torchvision.models.video": "the same, video models",
    "torchvision.models.quantization": "the same, quantizable models",
    "torchvision.models.optical_flow": "the same, optical-flow models",
}


# Packages a file may make us import on its word (``imports`` in spec.json or the ONNX metadata): installed,
# widely used libraries whose import registers classes (layers, pytree output classes) and runs nothing else.
TRUSTED_IMPORTS = {
    "torchvision": "torchvision's models and ops",
    "transformers": "Hugging Face models: registers their ModelOutput classes with torch's pytree",
    "timm": "timm's models",
}


def is_file_architecture(architecture: str) -> bool:
    """True for ``"./model.py:Class"``: a class in a file beside the weights (checked before import)."""
    return architecture.startswith(FILE_PREFIX) and architecture.partition(":")[0].endswith(".py")


def zoo_of(architecture: str) -> str | None:
    """The trusted zoo module of ``"module:builder"``, or None (a public name only, no dotted attribute)."""
    module, _, name = architecture.partition(":")
    if module in TRUSTED_ZOOS and name.isidentifier() and not name.startswith("_"):
        return module
    return None


@dataclass(frozen=True)
class Trust:
    """The user's word on this command line: a class to rebuild state dicts with, its arguments, and
    whether classes recorded in files may be used as they are (``--trust-recorded``)."""

    torch_class: str | None = None
    torch_kwargs: Mapping | None = None
    recorded: bool = False

    def allows(self, architecture: str) -> bool:
        return (self.recorded or architecture == self.torch_class or architecture in REFERENCE_CLASSES
                or is_file_architecture(architecture) or zoo_of(architecture) is not None)

    def resolve(self, architecture: str | None, kwargs: Mapping | None, where: str) -> tuple[str | None, dict | None]:
        """The class and arguments to build with: the user's where given, else the recorded ones,
        which must be allowed; a one-line :class:`InputError` otherwise, before anything is imported."""
        if self.torch_class:
            if self.torch_class != architecture:
                kwargs = None  # recorded for another class
            architecture = self.torch_class
        if self.torch_kwargs is not None:
            kwargs = self.torch_kwargs
        if architecture and not self.allows(architecture):
            args = json.dumps(dict(kwargs)) if kwargs else ""
            raise InputError(f"{where} asks to build {architecture}({args}), code that onnxparity does not run "
                             f"on a file's word; pass --torch-class {architecture} if you trust it "
                             "(or --trust-recorded)")
        return architecture, (dict(kwargs) if kwargs is not None else None)

    def admit_imports(self, modules, where: str) -> None:
        """Have the modules a file records imported before its model loads (``--import`` given when it was
        converted), where allowed: named again with ``--import``, a trusted package's
        (:data:`TRUSTED_IMPORTS`), or any with ``--trust-recorded``; else a one-line :class:`InputError`."""
        from onnxparity._process import request_imports, requested_imports

        named = set(requested_imports())
        refused = [m for m in modules or () if m not in named and not self.recorded
                   and m.split(".")[0] not in TRUSTED_IMPORTS]
        if refused:
            raise InputError(f"{where} asks to import {', '.join(refused)}, code that onnxparity does not run on a "
                             f"file's word; pass {' '.join(f'--import {m}' for m in refused)} if you trust it "
                             "(or --trust-recorded)")
        request_imports(modules)

    def to_dict(self) -> dict:
        """For a worker process: the user's word travels with the job, never in a file."""
        return {"torch_class": self.torch_class, "torch_kwargs": dict(self.torch_kwargs) if self.torch_kwargs else
                None, "recorded": self.recorded}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "Trust":
        return cls(**d) if d else cls()


def check_zoo_member(module, name: str, obj, architecture: str) -> None:
    """After a trusted zoo's module is imported: ``obj`` must be a registered builder or a model class."""
    import torch

    if isinstance(obj, type):
        return  # classes are checked to be nn.Module subclasses before instantiation
    try:
        from torchvision.models import get_model_builder, list_models

        builders = {get_model_builder(n) for n in list_models(module)}
    except Exception:  # noqa: BLE001 - an old torchvision without the registry
        builders = set()
    if obj not in builders and not isinstance(obj, torch.nn.Module):
        raise InputError(f"{architecture}: not a model builder of {module.__name__} (the trusted zoo runs only "
                         "those); pass --torch-class if you mean it")
