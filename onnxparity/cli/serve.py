"""Serve every ONNX model in a folder over the V2 inference protocol (Triton/KServe clients work), with a drawing page.

Binds to 127.0.0.1 by default; --port 0 picks a free port (the address is printed). Routes:
/v2/... (health, metadata, infer, binary tensor data), POST /predict (an image file -> each
model's digit), / (draw a digit), /metrics (Prometheus). --grpc-port adds the same V2 API over
gRPC (what tritonclient.grpc speaks), on the same models and batchers. Each model's queue is
bounded (--max-queue, --request-timeout): past it a request is refused at once with 503 and
Retry-After (gRPC: UNAVAILABLE). SIGTERM or Ctrl-C drains: not ready at once, new requests refused,
those in flight finish (--drain-seconds), exit 0.
"""

from __future__ import annotations

import argparse
import os

from onnxparity.cli import _args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="folder of .onnx files (e.g. the `onnxparity run` output), or one .onnx file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 = any free port)")
    p.add_argument("--grpc-port", type=int, default=None,
                   help="also serve the V2 gRPC API (inference.GRPCInferenceService) on this port of the same host "
                        "(Triton's default is 8001; 0 = any free port; default: no gRPC)")
    p.add_argument("--providers", help="comma-separated ONNX Runtime providers in order, short (cuda, cpu) or full "
                   "names (default: CUDAExecutionProvider where available, then CPUExecutionProvider)")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads per ONNX Runtime run (default: 1; 0 = one per physical core)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads running ONNX Runtime concurrently (default: CPU count, at most 4)")
    p.add_argument("--no-batching", dest="batching", action="store_false",
                   help="run each request on its own instead of combining concurrent ones")
    p.add_argument("--max-batch-size", type=int, default=64, help="largest batch, in rows (default: 64)")
    p.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="how long a request may wait for others to batch with, in microseconds (default: 0: "
                        "batch only what queued up while the model was busy)")
    p.add_argument("--inline-below-us", type=int, default=1000,
                   help="a batch its model's last run says will take less than this runs on the event loop, not "
                        "in a worker thread, whose round trip costs as much (default: 1000; 0 = always a thread)")
    p.add_argument("--instances", type=int, default=1,
                   help="batches of one model that may run at once, on its one session (default: 1)")
    p.add_argument("--max-request-mb", type=float, default=8.0, help="largest request body in MiB (default: 8)")
    p.add_argument("--choose-s", type=float, default=None,
                   help="seconds per model, at start-up on the CPU, to time the candidate sessions (plain ONNX "
                        "Runtime, the toolkit's options, its exact graph rewrites, OpenVINO) at batch 1 and "
                        "--max-batch-size, and serve with the fastest that matches the file (default: 3; "
                        "0 = the toolkit's tuned ONNX Runtime session, unmeasured)")
    p.add_argument("--max-queue", type=_args.positive_int, default=256,
                   help="requests that may wait per model; more are refused at once with 503 (default: 256)")
    p.add_argument("--request-timeout", type=_args.finite_nonneg, default=5.0, metavar="SECONDS",
                   help="the longest a request may wait in its model's queue: one expected to wait longer is "
                        "refused at once with 503, one that did is refused without running (default: 5; 0 = no "
                        "limit)")
    p.add_argument("--drain-seconds", type=_args.finite_nonneg, default=20.0,
                   help="after SIGTERM or Ctrl-C, how long requests in flight may take to finish while new ones "
                        "are refused (default: 20)")


def run(args: argparse.Namespace) -> int:
    from onnxparity.errors import InputError
    from onnxparity.runners.fastest import BUDGET_S
    from onnxparity.serve import load_models
    from onnxparity.serve.app import ServeConfig
    from onnxparity.serve.lifecycle import serve

    for name in ("threads", "max_queue_delay_us", "inline_below_us"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be 0 or more")
    for name in ("workers", "max_batch_size", "instances"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("port", "grpc_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            raise InputError(f"--{name.replace('_', '-')} must be 0..65535, not {value}")
    if args.max_request_mb <= 0:
        raise InputError("--max-request-mb must be positive")
    choose_s = BUDGET_S if args.choose_s is None else args.choose_s
    if choose_s < 0:
        raise InputError("--choose-s must be 0 or more")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()] if args.providers else None
    models = load_models(args.folder, providers, intra_op_threads=args.threads, choose_s=choose_s,
                         batch_sizes=tuple(sorted({1, args.max_batch_size})))
    for name, model in models.items():
        if model.choice:
            print(f"onnxparity serve: {name} runs in {model.choice['why']}", flush=True)
    config = ServeConfig(host=args.host, port=args.port, grpc_port=args.grpc_port, workers=args.workers,
                         providers=list(dict.fromkeys(p for m in models.values() for p in m.providers)),
                         batching=args.batching, max_batch_size=args.max_batch_size,
                         max_queue_delay_us=args.max_queue_delay_us, instances=args.instances,
                         inline_below_us=args.inline_below_us,
                         max_request_bytes=int(args.max_request_mb * 1024 * 1024), max_queue=args.max_queue,
                         request_timeout_s=args.request_timeout or None, drain_seconds=args.drain_seconds)
    serve(models, config)
    return 0
