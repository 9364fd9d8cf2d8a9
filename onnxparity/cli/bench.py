"""Throughput and latency of every backend (the originals and the runtimes on the ONNX file) per batch size and device."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from onnxparity.cli import _args


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="checkpoint folders (converted to ONNX for the bench unless model.onnx sits beside), "
                        "folders of them (runs/latest) or .onnx files (default: runs/latest, else runs/keras runs/torch)")
    p.add_argument("--batch-sizes", type=_ints, default=(1, 64, 1024), metavar="N,N", help="default: 1,64,1024")
    p.add_argument("--devices", type=_names, default=("cpu",), metavar="cpu,cuda", help="default: cpu")
    from onnxparity.bench.run import bench_names

    p.add_argument("--backends", type=_names, metavar="NAME,...",
                   help=f"only these ({', '.join(bench_names())}; a prefix such as 'keras' takes its group)")
    p.add_argument("--rounds", type=_args.positive_int, default=10, help="interleaved rounds per batch size (default 10)")
    p.add_argument("--round-time", type=_args.positive_float, default=0.15, metavar="S",
                   help="seconds of calls per backend per round (default 0.15)")
    p.add_argument("--warmup", type=_args.finite_nonneg, default=0.5, metavar="S",
                   help="warm-up seconds per backend and batch size (default 0.5)")
    p.add_argument("--timeout", type=_args.positive_float, default=900, metavar="S",
                   help="seconds any one worker call may take (a load, a compile, one round's turn) before that "
                        "backend is stopped and reported (default 900)")
    p.add_argument("--peak-gflops", type=float, metavar="G",
                   help="the machine's peak FP32 GFLOP/s, to print ONNX Runtime's share of it")
    from onnxparity.cli.check import add_input_arguments

    add_input_arguments(p)
    p.add_argument("--json", metavar="PATH", type=_args.out_file,
                   help="write the full report (results, ratios, environment) as JSON")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    _args.add_model_class_arguments(p)


def _default_models() -> list[str]:
    if Path("runs/latest").is_dir():
        return ["runs/latest"]
    found = [p for p in ("runs/keras", "runs/torch") if Path(p).is_dir()]
    if not found:
        from onnxparity.errors import InputError

        raise InputError("no models given and no runs/latest, runs/keras or runs/torch here; "
                         "name checkpoint folders or .onnx files (onnxparity train makes them)")
    return found


def run(args: argparse.Namespace) -> int:
    from onnxparity._io import write_text
    from onnxparity.bench import BenchConfig, bench
    from onnxparity.bench.report import render
    from onnxparity.views import to_json

    from onnxparity.signature import parse_input_roles, parse_input_shapes, parse_int_range

    config = BenchConfig(batch_sizes=args.batch_sizes, devices=args.devices, backends=args.backends,
                         input_shapes=parse_input_shapes(args.input_shape) or None,
                         int_range=parse_int_range(args.int_range), input_roles=parse_input_roles(args.input_role),
                         rounds=args.rounds, round_s=args.round_time, warmup_s=args.warmup, timeout_s=args.timeout,
                         trust=_args.trust(args).to_dict())
    progress = (lambda message: print(f"  {message}", file=sys.stderr, flush=True)) if args.verbose else None
    report = bench(args.models or _default_models(), config, progress=progress).to_dict()
    report["config"]["peak_gflops"] = args.peak_gflops
    if args.json:
        write_text(args.json, to_json(report, indent=1))
    print(render(report, markdown=args.markdown, peak_gflops=args.peak_gflops))
    if args.json:
        print(f"\nwrote {args.json}")
    return 0
