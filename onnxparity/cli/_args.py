"""Argument checks shared by the commands: argparse ``type=`` functions, so a bad value is refused
while parsing, before any work, with one line (``onnxparity: error: argument --atol: ...``, exit 2).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path


def _number(text: str, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, not {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def finite_nonneg(text: str) -> float:
    """A tolerance: finite and >= 0 (NaN would make every comparison pass)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def fraction(text: str) -> float:
    """A share such as --min-agreement: 0..1."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in 0..1, not {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def memory_size(text: str) -> int:
    """A size in bytes: 4G, 512M, 2GiB, 1e9 (K, M, G, T: powers of 1024)."""
    import re

    found = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    try:
        value = float(found.group(1)) * 1024 ** " KMGT".index(found.group(2).upper() or " ") if found else None
    except ValueError:
        value = None
    if value is None or not value >= 1024 ** 2 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a size of at least 1M, such as 4G or 512M, not {text!r}")
    return int(value)


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def nonneg_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _writable_folder(folder: Path) -> None:
    """The nearest existing folder at or above ``folder`` must take a new file (tried, not guessed:
    permissions say nothing about /proc or a read-only mount)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".onnxparity-probe-", dir=existing)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write in {existing} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def out_file(text: str) -> str:
    """A file to write: not a folder, somewhere writable (it is written only at the end of a run)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file's path")
    _writable_folder(path.parent)
    return text


def out_dir(text: str) -> str:
    """A folder to write into: not an existing file, somewhere writable."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    _writable_folder(path)
    return text


def providers(text: str) -> str:
    """ONNX Runtime execution providers, comma-separated: each must be one ORT knows (in any build).

    A provider this build lacks (CUDA on a CPU wheel) is allowed: the parity table lists it as
    unavailable. A name no ORT has is a typo and is refused.
    """
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one provider, or 'all'")
    if names == ["all"]:
        return text
    import onnxruntime as ort

    from onnxparity.runners.sessions import PROVIDER_ALIASES, provider_name

    known = ort.get_all_providers()
    unknown = [p for p in names if provider_name(p) not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"no such ONNX Runtime provider: {', '.join(unknown)} "
                                         f"(known: all, {', '.join(PROVIDER_ALIASES)} or full names)")
    return text


def torch_kwargs(text: str) -> dict:
    """--torch-kwargs: a JSON object of keyword arguments."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, such as '{\"num_classes\": 10}'")
    return value


def add_model_class_arguments(p: argparse.ArgumentParser, spec: bool = False) -> None:
    """How a PyTorch state dict becomes a model, and what a file may ask for (every command that rebuilds one);
    ``spec``: also --spec, how to feed a model that nothing beside it describes (convert, check)."""
    if spec:
        p.add_argument("--spec", metavar="SPEC.json",
                       help="spec.json saying how to feed the model (layout, scale, mean, std, output), where no "
                            "checkpoint folder or onnxparity metadata says it")
    p.add_argument("--torch-class", metavar="PKG.MODULE:CALLABLE",
                   help="the class or factory function that builds the module a .pth state dict belongs to, "
                        "such as torchvision.models:mobilenet_v3_small (replaces the one a file records)")
    p.add_argument("--torch-kwargs", metavar="JSON", type=torch_kwargs,
                   help="keyword arguments for the class, a JSON object such as '{\"num_classes\": 10}'")
    p.add_argument("--trust-recorded", action="store_true",
                   help="build the class a spec.json or ONNX file records even when it is not the toolkit's, a "
                        "migrated model.py or a trusted zoo's (imports and runs code a file names: only for files you trust)")


def trust(args: argparse.Namespace):
    """The user's word from :func:`add_model_class_arguments`."""
    from onnxparity.trust import Trust

    return Trust(args.torch_class, args.torch_kwargs, args.trust_recorded)


def original_and_onnx(args: argparse.Namespace, alone: str, what: str) -> tuple[str | None, str]:
    """(original, onnx) of a command taking ``ORIGINAL [ONNX]``: one file alone is the ONNX file, and needs
    the option ``alone`` (``--reference``, ``--provider``) that stands in for the original."""
    from onnxparity.errors import InputError

    if args.onnx is not None:
        return args.original, args.onnx
    if getattr(args, alone.lstrip("-").replace("-", "_")) is None:
        raise InputError(f"give the original and its ONNX file, or an ONNX file with {alone} {what}")
    return None, args.original
