"""Time the parity matrix for both reference models, the way `onnxparity run` runs it, minus training.

    python scripts/parity_timing.py --dir runs/latest --data ../shared/data/mnist-t10k [--repeat 3]

Needs the checkpoints and ONNX files that `onnxparity run --out DIR` leaves in DIR. Each repeat is a
fresh matrix: new worker processes (framework imports and model loading included), inputs loaded
and prepared, every CPU backend run and compared, reports written. Prints the wall time, the CPU
seconds all processes used (which hardly depend on what else the machine is doing) and the load
average, so that numbers from a shared machine can be read for what they are; then where the
seconds went: each worker process with the backends it ran in turn (when it was handed each one,
seconds after the matrix started; start: opening the runner, its framework's import included for
a worker's first; infer; the reference's float64 run; the CPU seconds of the worker's threads), the
worker that finished last being the critical path, and the parent's own CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's onnxparity, not an installed one


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="runs/latest", help="folder written by `onnxparity run` (default runs/latest)")
    p.add_argument("--data", default=None, help="digits (default: the bundled held-out 500)")
    p.add_argument("--n", type=int, help="only the first N digits")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--jobs", type=int, help="workers at once (default: all)")
    p.add_argument("--batch-size", type=int, help="the large batch (default: check's)")
    p.add_argument("--json", action="store_true", help="one JSON line per repeat")
    args = p.parse_args()

    from onnxparity.parity import Target, check_many

    d = Path(args.dir)
    targets = [Target(str(d / fw), str(d / f"{fw}.onnx")) for fw in ("keras", "torch")]
    for t in targets:
        if not Path(t.onnx).is_file():
            sys.exit(f"{t.onnx} is missing: run `onnxparity run --out {d}` first")
    for i in range(args.repeat):
        load = os.getloadavg()[0]
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = check_many(targets, data=args.data, n=args.n, gpu=False, jobs=args.jobs,
                                **({"batch_size": args.batch_size} if args.batch_size else {}),
                                json_path=Path(tmp) / "parity.json", html_path=Path(tmp) / "parity.html")
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        ran = [f"{b.model}/{b.label}" for b in result.backends if b.status == "ok"]
        line = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "passed": result.passed,
                "inputs": result.inputs["n"], "backends": len(ran), "load_before": round(load, 2),
                "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
                "max_abs": {f"{c.model}/{c.candidate}": c.max_abs_diff for c in result.comparisons},
                "backend_seconds": {f"{b.model}/{b.label}": b.seconds for b in result.backends if b.status == "ok"}}
        if args.json:
            print(json.dumps(line))
        else:
            print(f"repeat {i + 1}: parity of both models on {line['inputs']} inputs, {len(ran)} CPU backends: "
                  f"{wall:.1f} s wall, {cpu:.1f} CPU-s on {os.cpu_count()} cores (load average {load:.1f} before, "
                  f"{line['load_after']:.1f} after); {'passed' if result.passed else 'FAILED'}")
            print(where_the_seconds_go(result, cpu))
    return 0


def where_the_seconds_go(result, cpu_total: float) -> str:
    """One line per worker process and its backends, in the order they started; the last to end marked."""
    workers: dict[str, list] = {}
    for b in result.backends:
        if b.status != "unavailable" and b.seconds:
            workers.setdefault(b.worker or f"{b.model}/{b.label}", []).append(b)
    ends = {w: max((b.seconds.get("began") or 0) + b.seconds.get("wall", 0) for b in bs) for w, bs in workers.items()}
    last = max(ends, key=ends.get) if ends else None
    lines = [f"  {'worker':30} {'ends':>6} {'CPU-s':>6}  backends: began + start + infer (+ float64), CPU-s"]
    for w, bs in sorted(workers.items(), key=lambda wb: min(b.seconds.get("began") or 0 for b in wb[1])):
        parts = []
        for b in bs:
            s = b.seconds
            f64 = f" + {b.float64['seconds']:.1f}" if b.float64 and b.float64.get("seconds") else ""
            same = f" (= {b.details['same_run_as']})" if (b.details or {}).get("same_run_as") else ""
            parts.append(f"{b.model}/{b.label}{same} {s.get('began') or 0:.1f} + {s.get('start', 0):.1f} + "
                         f"{s.get('infer', 0):.1f}{f64}, {s.get('cpu', float('nan')):.1f}")
        cpu = sum(b.seconds.get("cpu", 0) for b in bs)
        mark = " <- last" if w == last else ""
        lines.append(f"  {w:30} {ends[w]:6.1f} {cpu:6.1f}  " + "; ".join(parts) + mark)
    workers_cpu = sum(b.seconds.get("cpu", 0) for bs in workers.values() for b in bs)
    if workers_cpu:
        lines.append(f"  the rest (the parent: inputs, comparisons, reports; the workers' exits): "
                     f"{cpu_total - workers_cpu:.1f} CPU-s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
