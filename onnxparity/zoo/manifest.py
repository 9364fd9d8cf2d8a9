"""The zoo's manifest: the models to check, in TOML or YAML, each with ``check``'s options.

    [defaults]                        # every model's, unless it says otherwise
    providers = "cpu"
    timeout = 600

    [[model]]
    name = "keras_cnn"
    original = "runs/keras"           # omit for an ONNX file checked against saved outputs
    onnx = "runs/keras/model.onnx"
    data = "../data/mnist-t10k"       # or inputs = "x.npz", or reference = "test_data_set_0/"
    atol = 1e-4
    tags = ["vision"]

YAML takes the same keys (a ``defaults`` mapping and a ``model`` list). Paths are relative to the
manifest's folder. Besides ``name``, ``original``, ``onnx``, ``reference``, ``tags`` and
``resources`` (Ray resources the model's task needs, such as ``{gpu_node = 1}``), every key is one
of ``check``'s options under its own name, its value written as on check's command line; the
caller's ``parse_options`` turns them into :func:`onnxparity.parity.check`'s arguments (the CLI
parses them with check's own parser). Every error names the file, the entry's line and the model.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from onnxparity.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_KEYS = ("name", "original", "onnx", "reference", "tags", "resources")
PATH_KEYS = ("original", "onnx", "reference", "data", "inputs")
NAMED_DATA = ("mnist",)  # --data values that name a dataset rather than a path


@dataclass(frozen=True)
class Entry:
    """One model of the zoo: what :func:`onnxparity.parity.check` takes, plus its name, tags and
    where the manifest defines it."""

    name: str
    onnx: str
    original: str | None = None
    reference: str | None = None
    options: dict = field(default_factory=dict)  # check's keyword arguments (tolerances, inputs, providers, timeout...)
    tags: tuple[str, ...] = ()
    resources: dict = field(default_factory=dict)  # Ray resources its task needs besides a CPU
    where: str = ""  # "zoo.toml:12": the manifest's file and the entry's line


def load(path: str | Path, parse_options: Callable[[dict], dict]) -> list[Entry]:
    """The entries of the manifest at ``path``; ``parse_options`` turns an entry's other keys into
    check's keyword arguments, raising :class:`InputError` for a bad one."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    document, lines = _read_yaml(text, path) if yaml_file else _read_toml(text, path)
    if not isinstance(document, dict):
        raise InputError(f"{path}: a manifest holds `defaults` and a list of `model` entries")
    unknown = sorted(set(document) - {"defaults", "model"})
    if unknown:
        raise InputError(f"{path}: unknown top-level key {unknown[0]!r} (a manifest holds `defaults` and `model`)")
    defaults = document.get("defaults") or {}
    models = document.get("model")
    if not isinstance(defaults, dict):
        raise InputError(f"{path}: `defaults` must be a table of check's options")
    if not isinstance(models, list) or not models:
        raise InputError(f"{path}: no models (add a [[model]] table per model)" if not yaml_file else
                         f"{path}: no models (add a `model:` list)")
    entries, names = [], {}
    for i, fields in enumerate(models):
        where = f"{path}:{lines[i]}" if i < len(lines) else f"{path}: model {i + 1}"
        if not isinstance(fields, dict):
            raise InputError(f"{where}: a model entry must be a table of keys")
        entry = _entry({**defaults, **fields}, where, path.parent, parse_options)
        if entry.name in names:
            raise InputError(f"{where}: model {entry.name!r}: the name is taken by the entry at {names[entry.name]}")
        names[entry.name] = where
        entries.append(entry)
    return entries


def _entry(fields: dict, where: str, folder: Path, parse_options) -> Entry:
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{where}: every model needs a `name`")
    prefix = f"{where}: model {name!r}"
    fields = {k: _resolved(k, v, folder) for k, v in fields.items()}
    for key in ("onnx", "original", "reference"):
        if key in fields and not isinstance(fields[key], str):
            raise InputError(f"{prefix}: `{key}` must be a path")
    if "onnx" not in fields:
        raise InputError(f"{prefix}: no `onnx` file to check")
    tags = fields.get("tags", [])
    tags = [tags] if isinstance(tags, str) else tags
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InputError(f"{prefix}: `tags` must be a list of words")
    resources = fields.get("resources", {})
    if not isinstance(resources, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in resources.values()):
        raise InputError(f"{prefix}: `resources` must map Ray resource names to amounts, such as {{gpu_node = 1}}")
    try:
        options = parse_options({k: v for k, v in fields.items() if k not in ENTRY_KEYS})
    except InputError as exc:
        raise InputError(f"{prefix}: {exc}") from None
    return Entry(name=name, onnx=fields["onnx"], original=fields.get("original"), reference=fields.get("reference"),
                 options=options, tags=tuple(tags), resources={str(k): float(v) for k, v in resources.items()},
                 where=where)


def _resolved(key: str, value, folder: Path):
    """A path relative to the manifest's folder (``~`` expanded); other values as they are."""
    if key not in PATH_KEYS or not isinstance(value, str) or (key == "data" and value in NAMED_DATA):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else folder / path)


def _read_toml(text: str, path: Path) -> tuple[dict, list[int]]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    # tomllib keeps no positions: the k-th [[model]] header is the k-th entry.
    lines = [n for n, line in enumerate(text.splitlines(), 1)
             if line.strip().replace(" ", "").startswith("[[model]]")]
    return document, lines


def _read_yaml(text: str, path: Path) -> tuple[dict, list[int]]:
    import yaml

    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    lines = []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "model" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return document, lines
