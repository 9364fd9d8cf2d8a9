"""Importing a model class from a ``model.py`` inside a checkpoint folder, safely.

``onnxparity migrate --to torch`` writes the model's code beside its weights, and the spec names it
``"./model.py:Class"``. Importing a file runs it, so only code of the restricted form migrate writes
is imported: imports of torch alone, classes deriving from ``nn.Module`` whose methods call torch's
layers and tensor methods, and nothing that reaches files, the interpreter or other modules
(no other imports, no ``open``/``eval``/``getattr``, no underscore attributes but ``__init__``, no
``torch.load``/``torch.hub``...). Anything else is refused with the line that broke the rule.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from pathlib import Path

from onnxparity.errors import InputError
from onnxparity.trust import FILE_PREFIX

ALLOWED_IMPORTS = {"torch", "torch.nn", "torch.nn.functional"}
# Names a method may use besides its own arguments and locals.
ALLOWED_NAMES = {"self", "torch", "nn", "F", "super", "float", "int", "tuple", "list", "len", "range", "True",
                 "False", "None"}
# The torch API a generated model may touch: module paths rooted at torch / nn / F.
ALLOWED_TORCH = {
    "nn": {"Module", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "ReLU", "Sigmoid", "Tanh", "Hardsigmoid", "Hardswish", "Softmax", "LogSoftmax",
           "Dropout", "Flatten", "Identity"},
    "F": {"pad", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "hardsigmoid", "hardswish", "dropout",
          "max_pool2d", "avg_pool2d"},
    "torch": {"nn", "cat", "flatten", "clamp", "empty", "zeros", "ones", "float32", "relu", "sigmoid", "tanh",
              "mean", "permute", "reshape"},
}
# Attributes of tensors (and of layers' results) a generated forward may use.
TENSOR_METHODS = {"permute", "reshape", "view", "flatten", "contiguous", "mean", "clamp", "transpose", "size",
                  "shape", "float", "unsqueeze", "squeeze"}


def _reject(path: Path, node: ast.AST, why: str) -> None:
    raise InputError(f"{path}:{getattr(node, 'lineno', '?')}: not a model file onnxparity imports ({why})")


def _check_import(path: Path, node: ast.AST) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                _reject(path, node, f"imports {alias.name}")
            bound = alias.asname or alias.name
            if bound not in ("torch", "nn", "F"):
                _reject(path, node, f"binds {bound!r}")
    elif isinstance(node, ast.ImportFrom):
        if node.module not in ALLOWED_IMPORTS or node.level:
            _reject(path, node, f"imports from {node.module}")
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if full not in ALLOWED_IMPORTS or (alias.asname or alias.name) not in ("nn", "F"):
                _reject(path, node, f"imports {full}")


def _attribute_root(node: ast.Attribute) -> tuple[ast.AST, list[str]]:
    chain = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    return node, list(reversed(chain))


FORBIDDEN_NODES = (ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Lambda, ast.Try, ast.With,
                   ast.While, ast.Delete, ast.Yield, ast.YieldFrom, ast.Await, ast.AsyncFunctionDef,
                   ast.ClassDef, ast.FunctionDef, ast.JoinedStr)


def _check_method(path: Path, fn: ast.FunctionDef) -> None:
    if fn.decorator_list:
        _reject(path, fn, "a decorated method")
    if fn.name not in ("__init__", "forward"):
        _reject(path, fn, f"a method {fn.name!r}")
    local = {a.arg for a in fn.args.args}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            local.add(node.id)
    for node in ast.walk(fn):
        if node is fn:
            continue
        if isinstance(node, FORBIDDEN_NODES):
            _reject(path, node, f"a {type(node).__name__} statement")
        if isinstance(node, ast.Name) and node.id not in ALLOWED_NAMES and node.id not in local:
            _reject(path, node, f"the name {node.id!r}")
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and node.attr != "__init__":
                _reject(path, node, f"the attribute {node.attr!r}")
            root, chain = _attribute_root(node)
            if isinstance(root, ast.Name) and root.id in ALLOWED_TORCH:
                allowed = ALLOWED_TORCH[root.id]
                if chain[0] not in allowed or (root.id == "torch" and chain[0] == "nn" and len(chain) > 1
                                               and chain[1] not in ALLOWED_TORCH["nn"]):
                    _reject(path, node, f"{root.id}.{'.'.join(chain)}")
            elif isinstance(root, ast.Name) and root.id == "self":
                if any(attr not in TENSOR_METHODS for attr in chain[1:]):
                    _reject(path, node, f"self.{'.'.join(chain)}")
            elif not (isinstance(root, ast.Call) and chain == ["__init__"]):
                if any(attr not in TENSOR_METHODS for attr in chain):
                    _reject(path, node, f"the attribute {'.'.join(chain)!r}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__":
            if not (isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
                    and node.func.value.func.id == "super"):
                _reject(path, node, "an __init__ call other than super().__init__()")


def check_source(path: Path, text: str) -> None:
    """Raise :class:`InputError` unless ``text`` has the restricted form described above."""
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise InputError(f"{path}: not valid Python ({exc.msg}, line {exc.lineno})") from None
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node.value, "value", None), str):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            _check_import(path, node)
        elif isinstance(node, ast.ClassDef):
            if node.decorator_list or node.keywords:
                _reject(path, node, "a decorated class or one with keywords")
            if len(node.bases) != 1 or ast.unparse(node.bases[0]) not in ("nn.Module", "torch.nn.Module"):
                _reject(path, node, f"class {node.name} does not derive from nn.Module")
            for item in node.body:
                if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant):
                    continue
                if not isinstance(item, ast.FunctionDef):
                    _reject(path, item, "a class body with more than methods")
                _check_method(path, item)
        else:
            _reject(path, node, f"a top-level {type(node).__name__}")


def load_class(folder: Path, architecture: str):
    """The class named by ``"./model.py:Class"``, from ``folder``, after :func:`check_source`."""
    file_part, _, cls_name = architecture.partition(":")
    relative = Path(file_part[len(FILE_PREFIX):])
    if relative.is_absolute() or ".." in relative.parts or len(relative.parts) != 1:
        raise InputError(f"architecture {architecture!r}: the model file must sit beside the weights")
    path = Path(folder) / relative
    if not path.is_file():
        raise InputError(f"{path}: no such file (named by the spec's architecture {architecture!r})")
    text = path.read_text()
    check_source(path, text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    module_name = f"onnxparity_generated_{digest}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise InputError(f"{path}: no class {cls_name!r}")
    return cls
