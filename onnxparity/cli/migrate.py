"""Rebuild a Keras model in PyTorch or a PyTorch model in Keras, through ONNX, with parity on every leg."""

from __future__ import annotations

import argparse
import json

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a checkpoint folder, a Keras or PyTorch file (anything `convert` takes) or an ONNX file")
    p.add_argument("--to", required=True, choices=["torch", "keras"], help="the framework to rebuild the model in")
    p.add_argument("-o", "--out", required=True, help="the folder to write (replaced only when every leg passes)")
    p.add_argument("--check-data", help="digits to check the legs on (an IDX folder, mnist.npz...; default: the "
                                        "bundled held-out digits); models that do not take digits get seeded inputs")
    p.add_argument("--input-shape", help="as for convert: one sample's shape, such as 3,64,64")
    _args.add_model_class_arguments(p)
    p.add_argument("--spec", help="as for convert: a spec.json saying how to feed a model without one")
    p.add_argument("--trust-pickle", action="store_true", help="as for convert: load a pickled whole PyTorch model")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from onnxparity.migrate import migrate

    options = {k: v for k, v in (("input_shape", args.input_shape), ("torch_class", args.torch_class),
                                 ("torch_kwargs", args.torch_kwargs), ("trust_recorded", args.trust_recorded),
                                 ("spec", args.spec), ("trust_pickle", args.trust_pickle)) if v}
    result = migrate(args.source, args.to, args.out, check_data=args.check_data, **options)
    print(json.dumps(result.to_dict()) if args.json else result.summary())
    return 0
