"""Predict the digit in image files (PNG/JPEG, any size), as the article's model.predict(gray)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint folder, .keras/.h5, model.pth (beside spec.json) or .onnx")
    p.add_argument("images", nargs="+", help="image files")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from onnxparity.data.images import load_image
    from onnxparity.runners import open_runner, predict

    digits = np.stack([load_image(path) for path in args.images])
    runner = open_runner(args.model)
    probabilities = runner.spec.probabilities(predict(runner, digits))
    for path, p in zip(args.images, probabilities):
        best = int(p.argmax())
        print(f"{path}: {runner.spec.labels[best]} (probability {p[best]:.3f})")
    return 0
