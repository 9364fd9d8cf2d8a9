"""Rebuild a Keras model in PyTorch or a PyTorch model in Keras, through ONNX, with parity on every leg."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a checkpoint folder, a Keras or PyTorch file (anything `convert` takes) or an ONNX file")
    p.add_argument("--to", required=True, choices=["torch", "keras"], help="the framework to rebuild the model in")
    p.add_argument("-o", "--out", required=True, help="the folder to write (replaced only when every leg passes)")
    p.add_argument("--check-data", help="digits to check the legs on (an IDX folder, mnist.npz...; default: the "
                                        "bundled held-out digits); models that do not take digits get seeded inputs")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from onnxparity.migrate import migrate

    result = migrate(args.source, args.to, args.out, check_data=args.check_data)
    print(json.dumps(result.to_dict()) if args.json else result.summary())
    return 0
