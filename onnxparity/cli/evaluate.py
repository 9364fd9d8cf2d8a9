"""Loss and accuracy of a model (Keras file, PyTorch checkpoint or ONNX file) on a dataset's test split."""

from __future__ import annotations

import argparse
import json

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint folder, .keras/.h5, model.pth (beside spec.json) or .onnx")
    p.add_argument("--data", help="dataset (default: the bundled held-out digits)")
    p.add_argument("--n", type=_args.positive_int, help="only the first N digits")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _args.add_model_class_arguments(p)


def run(args: argparse.Namespace) -> int:
    from onnxparity.data import load_digits
    from onnxparity.evaluation import evaluate
    from onnxparity.runners import open_runner

    digits = load_digits(args.data, "test").head(args.n)
    result = evaluate(open_runner(args.model, trust=_args.trust(args).to_dict()), digits)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model}: accuracy {result['accuracy']:.4f} ({result['correct']}/{result['n']}), "
              f"loss {result['loss']:.4f} on {digits.source}")
    return 0
