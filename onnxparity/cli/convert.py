"""Convert a Keras or PyTorch model to a checked ONNX file that says what it is.

MODEL is a checkpoint folder written by `onnxparity train` (nothing else needed), a .keras/.h5
file or SavedModel folder, or a PyTorch .pth state dict (with --torch-class and --input-shape, or
a spec.json beside it), TorchScript .pt or ExportedProgram .pt2.
"""

from __future__ import annotations

import argparse
import json

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint folder, .keras/.h5, SavedModel folder, .pth, .pt or .pt2")
    p.add_argument("-o", "--out", type=_args.out_file, help="ONNX file to write (default: beside the model, model.onnx); an existing file is "
                        "replaced, atomically and only once the new one has passed its check")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18; refused if ONNX Runtime is older)")
    p.add_argument("--embed-preprocessing", action="store_true",
                   help="the graph takes raw uint8 images [batch, 28, 28] and scales/normalizes them itself")
    p.add_argument("--input-shape", action="append", metavar="[NAME=]SHAPE",
                   help="one sample's shape without the batch axis, such as 1,28,28; repeat as NAME=SHAPE for "
                        "a model with several inputs (image=3,32,32 --input-shape meta=8); AXIS:SIZE makes an axis "
                        "dynamic, named AXIS, with SIZE as the example (input_ids=sequence:16; inputs giving the "
                        "same AXIS share it)")
    p.add_argument("--input-dtype", action="append", metavar="[NAME=]DTYPE",
                   help="an input's dtype where the model does not say it (PyTorch): int64, int32, float32...; "
                        "unnamed, every input's")
    p.add_argument("--int-range", metavar="LOW,HIGH",
                   help="integer inputs of the check are drawn from [LOW, HIGH) (default: the embedding table size)")
    _args.add_model_class_arguments(p, spec=True)
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow a pickled whole PyTorch model (runs code from the file: only for files you trust)")
    p.add_argument("--class-output", action="append", metavar="NAME",
                   help="an output that holds class scores, judged by top-1 agreement (repeatable; outputs a Softmax "
                        "computes, or named logits/probabilities, need none)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    from onnxparity.convert import convert
    from onnxparity.signature import parse_input_shapes, parse_int_range

    parse_input_shapes(args.input_shape)  # a malformed value fails here, before anything loads

    result = convert(args.model, args.out, opset=args.opset, embed_preprocessing=args.embed_preprocessing,
                     input_shape=args.input_shape or None, input_dtype=args.input_dtype,
                     torch_class=args.torch_class, torch_kwargs=args.torch_kwargs,
                     trust_recorded=args.trust_recorded, int_range=parse_int_range(args.int_range),
                     trust_pickle=args.trust_pickle, spec=args.spec, class_outputs=args.class_output)
    print(json.dumps(result.to_dict()) if args.json else result.summary())
    return 0
