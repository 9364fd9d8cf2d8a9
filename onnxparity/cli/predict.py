"""Predict the digit in image files (PNG/JPEG, any size), as the article's model.predict(gray).

The digit is found as MNIST was made: upright (EXIF), ink on any paper or transparent canvas,
uneven light evened out, specks, frames and desk edges left out, fitted into 20x20 and centred
by mass in 28x28. A file that cannot be read, or holds no digit, is reported on its own line; the
others are still predicted, and the exit status is then 2.
"""

from __future__ import annotations

import argparse
import sys

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint folder, .keras/.h5, model.pth (beside spec.json) or .onnx")
    p.add_argument("images", nargs="+", help="image files")
    _args.add_model_class_arguments(p)


def run(args: argparse.Namespace) -> int:
    from onnxparity.data.images import load_images
    from onnxparity.runners import open_runner, predict

    paths, digits, errors = load_images(args.images)
    if paths:
        runner = open_runner(args.model, trust=_args.trust(args).to_dict())
        probabilities = runner.spec.probabilities(predict(runner, digits))
        for path, p in zip(paths, probabilities):
            best = int(p.argmax())
            print(f"{path}: {runner.spec.labels[best]} (probability {p[best]:.3f})", flush=True)
    for error in errors:
        print(f"onnxparity: error: {error}", file=sys.stderr)
    return 2 if errors else 0
