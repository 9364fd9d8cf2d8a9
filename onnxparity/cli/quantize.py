"""Make an int8 or fp16 variant of an ONNX file, written only when it still predicts what the fp32 file does.

int8: static QDQ, per channel, calibrated on real data (the training split of --data, the bundled
digits by default; --inputs for other models); fp16: half-precision weights and compute with float32
inputs and outputs, for GPU serving. The variant is compared with the fp32 file on held-out data
(the test split, or the held-out part of --inputs), both are timed at batch 1 and 64, and it is
written (atomically) only when top-1 agreement and accuracy hold (class scores) and cosine and SNR hold
(other float outputs: embeddings, hidden states, regressions), by the gate `check` judges variants with. Exit 0 written, 1 refused by the
gate (nothing written; the --json report still is), 2 bad input.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from onnxparity.quantize.int8 import METHODS
    from onnxparity.quantize.pipeline import MAX_ACCURACY_DROP, MAX_EXCLUDE, MIN_AGREEMENT

    p.add_argument("model", help="the fp32 ONNX file (written by `onnxparity convert`, or any ONNX file with --inputs)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--int8", dest="precision", action="store_const", const="int8",
                       help="static int8, QDQ, per channel, calibrated on real data")
    which.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help="half-precision weights and compute, float32 inputs and outputs kept")
    p.add_argument("-o", "--out", help="the variant's file (default: MODEL.int8.onnx or MODEL.fp16.onnx beside it)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", help="digits for the reference models: the training split calibrates, the test "
                                       "split judges (default: the bundled digits)")
    source.add_argument("--inputs", nargs="+", metavar="FILE.npz",
                        help="one array per input name (plus optional 'labels'); one file is split, seeded, "
                             "into calibration and held-out parts; two are used as calibration, held out")
    p.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT,
                   help=f"least top-1 agreement with fp32 on held-out data, 0..1 (default {MIN_AGREEMENT})")
    p.add_argument("--max-accuracy-drop", type=float, default=MAX_ACCURACY_DROP,
                   help=f"largest accuracy drop where there are labels, 0..1 (default {MAX_ACCURACY_DROP})")
    p.add_argument("--calibration-method", default="minmax", choices=METHODS, help="int8 calibration (default minmax)")
    p.add_argument("--calibration-size", type=int, default=1000, help="calibration samples, seeded (default 1000)")
    p.add_argument("--max-exclude", type=int, default=MAX_EXCLUDE,
                   help=f"layers int8 may keep in float when the gate refuses (default {MAX_EXCLUDE}; 0: none)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    p.add_argument("--json", metavar="PATH", help="write the report as JSON (written even when the gate refuses)")


def run(args: argparse.Namespace) -> int:
    from onnxparity.errors import ParityFailure
    from onnxparity.quantize import quantize

    report = quantize(args.model, args.precision, args.out, data=args.data, inputs=args.inputs,
                      min_agreement=args.min_agreement, max_accuracy_drop=args.max_accuracy_drop,
                      calibration_method=args.calibration_method, calibration_size=args.calibration_size,
                      max_exclude=args.max_exclude, json_path=args.json, rounds=args.rounds)
    print(report.summary())
    if not report.written:
        raise ParityFailure(f"{args.precision} variant not written: "
                            + "; ".join(n.removeprefix("refused: ") for n in report.notes if n.startswith("refused")))
    return 0
