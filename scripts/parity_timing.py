"""Time the parity matrix for both reference models, the way `onnxparity run` runs it, minus training.

    python scripts/parity_timing.py --dir runs/latest --data ../shared/data/mnist-t10k [--repeat 3]

Needs the checkpoints and ONNX files that `onnxparity run --out DIR` leaves in DIR. Each repeat is a
fresh matrix: new worker processes (framework imports and model loading included), inputs loaded
and prepared, every CPU backend run and compared, reports written. Prints the wall time, the CPU
seconds all processes used (which hardly depend on what else the machine is doing) and the load
average, so that numbers from a shared machine can be read for what they are.
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
