"""Train both reference models natively (or reuse them), convert both, and run the parity matrix.

Writes into --out: keras/ and torch/ (checkpoints, reused when present), keras.onnx, torch.onnx,
parity.json and parity.html. Exit status as for `check`.
"""

from __future__ import annotations

import argparse

from onnxparity.cli import _args
from onnxparity.cli.check import add_parity_arguments, finish, parity_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/latest", type=_args.out_dir, help="output folder (default: runs/latest)")
    p.add_argument("--epochs", type=_args.positive_int,
                   help="epochs for both models (default: each model's preset: Keras 10, PyTorch 40)")
    add_parity_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onnxparity.parity import Target, check_many
    from onnxparity.parity.pipeline import train_and_convert

    out = Path(args.out)
    train_and_convert(out, data=args.data, epochs=args.epochs)
    targets = [Target(str(out / fw), str(out / f"{fw}.onnx")) for fw in ("keras", "torch")]
    result = check_many(targets, json_path=out / "parity.json", html_path=out / "parity.html", **parity_options(args))
    print(f"reports: {out / 'parity.json'}, {out / 'parity.html'}")
    return finish(result)
