"""Predict the class of image files (PNG/JPEG, any size), as the article's model.predict(gray).

For a digit model the digit is found as MNIST was made: upright (EXIF), ink on any paper or
transparent canvas, uneven light evened out, specks, frames and desk edges left out, fitted into
20x20 and centred by mass in 28x28. Any other image model (Fashion-MNIST's clothes, RGB
classifiers) gets the image resized as it is, and answers with its own class names. A file that
cannot be read, or holds no digit, is reported on its own line; the others are still predicted,
and the exit status is then 2.
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
    from onnxparity.data.images import load_images, load_resized
    from onnxparity.errors import InputError
    from onnxparity.runners import open_runner, predict

    runner = open_runner(args.model, trust=_args.trust(args).to_dict())
    if runner.spec.image_size is None:
        raise InputError(f"{args.model}: its first input {list(runner.spec.input_shape)} is no image")
    if runner.spec.reads_digits:
        paths, digits, errors = load_images(args.images)
    else:
        paths, digits, errors = load_resized(args.images, runner.spec.image_size)
    if paths:
        probabilities = runner.spec.probabilities(predict(runner, digits))
        for path, p in zip(paths, probabilities):
            best = int(p.argmax())
            print(f"{path}: {runner.spec.labels[best]} (probability {p[best]:.3f})", flush=True)
    for error in errors:
        print(f"onnxparity: error: {error}", file=sys.stderr)
    return 2 if errors else 0
