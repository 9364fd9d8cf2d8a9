"""Name the first layer where an ONNX file departs from the Keras or PyTorch model it came from.

Both run layer by layer on the same inputs: cumulative (end to end) and isolated (each ONNX layer
fed the original's own inputs to it). Also node by node: an int8 or fp16 variant against the fp32
file it came from (`locate model.onnx model.int8.onnx`), or one file on another execution provider
against its CPU run (`locate model.onnx --provider cuda`). Exit status 0 when no layer departs beyond tolerance, 1 when
one does, 2 for bad input.
"""

from __future__ import annotations

import argparse

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    from onnxparity.cli.check import add_input_arguments

    p.add_argument("original", help="the original: checkpoint folder, .keras/.h5, a PyTorch file (model.pth beside "
                                    "spec.json or with --torch-class, .pt2, TorchScript); or an ONNX file, node by node "
                                    "against its int8/fp16 variant; or the ONNX file alone with --provider")
    p.add_argument("onnx", nargs="?", help="its ONNX file (any exporter's)")
    p.add_argument("--provider", metavar="PROVIDER",
                   help="run the ONNX file on this ONNX Runtime execution provider (cuda, tensorrt...) against its "
                        "own CPU run, node by node")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="FILE", help="preprocessed inputs: .npy, or .npz with one array per input "
                                                         "name")
    source.add_argument("--data", help="digits (an IDX folder or mnist.npz; default: the bundled held-out digits)")
    p.add_argument("--n", type=int, help="only the first N inputs (default 64)")
    p.add_argument("--batch-size", type=int, help="inputs per batch (default 32, fewer where one batch of every "
                                                 "layer's output would pass 1 GiB); memory holds one batch")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance, times max(1, the layer's peak |value|)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance")
    p.add_argument("--max-memory", type=_args.memory_size, metavar="SIZE",
                   help="resident memory the original's worker may hold, such as 4G (default: no limit)")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    p.add_argument("--html", metavar="PATH", help="write an HTML report with a per-layer error chart")
    add_input_arguments(p)
    _args.add_model_class_arguments(p, spec=True)


def run(args: argparse.Namespace) -> int:
    from onnxparity.locate import locate
    from onnxparity.locate.report import table
    from onnxparity.signature import parse_input_roles, parse_input_shapes, parse_int_range

    original, onnx = _args.original_and_onnx(args, "--provider", "PROVIDER")
    result = locate(original, onnx, inputs=args.inputs, data=args.data, n=args.n,
                    batch_size=args.batch_size, atol=args.atol, rtol=args.rtol, json_path=args.json,
                    html_path=args.html, torch_class=args.torch_class, torch_kwargs=args.torch_kwargs,
                    trust_recorded=args.trust_recorded, spec=args.spec, provider=args.provider,
                    input_shapes=parse_input_shapes(args.input_shape), int_range=parse_int_range(args.int_range),
                    input_roles=parse_input_roles(args.input_role), max_memory=args.max_memory)
    print(table(result))
    return 0 if result.passed else 1
