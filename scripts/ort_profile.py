"""Where an ONNX model's time goes in the toolkit's CPU session, and what cpu_graph's rewrites buy.

    python scripts/ort_profile.py runs/latest/torch.onnx --batch-sizes 1,64,1024 [--rounds 20]

For each batch size: the share of time per node from ORT's profiler (the session that
``make_session`` makes), then images/s of the same tuned session with and without the
:mod:`onnxparity.runners.cpu_graph` rewrites, timed in interleaved rounds (A B, B A, ...), with
the median and range of the per-round ratio. The numbers quoted in docs/bench.md come from here.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from onnxparity.runners.sessions import make_session, tune_options


def node_profile(path: str, x: np.ndarray, calls: int) -> list[tuple[float, float, str, str]]:
    """(share of kernel time, microseconds per call, op type, node name), largest first."""
    with tempfile.TemporaryDirectory() as tmp:
        session = make_session(path, tuned=True, profile_prefix=str(Path(tmp) / "ort"))
        name = session.get_inputs()[0].name
        for _ in range(calls):
            session.run(None, {name: x})
        trace = json.loads(Path(session.end_profiling()).read_text())
    spent: collections.Counter = collections.Counter()
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[(event["args"].get("op_name", "?"), event["name"].removesuffix("_kernel_time"))] += event["dur"]
    total = sum(spent.values()) or 1
    return [(us / total, us / calls, op, node) for (op, node), us in spent.most_common()]


def rewrites_ab(path: str, x: np.ndarray, rounds: int) -> tuple[float, float, list[float]]:
    """images/s without and with the rewrites (medians) and the per-round ratios with/without."""
    plain = make_session(path, sess_options=tune_options(), tuned=False)  # the same options, no rewrites
    rewritten = make_session(path, tuned=True)
    name = plain.get_inputs()[0].name
    calls = max(1, 768 // len(x))
    times: dict[str, list[float]] = {"plain": [], "rewritten": []}
    for session in (plain, rewritten):
        session.run(None, {name: x})
    for r in range(rounds):
        order = [("plain", plain), ("rewritten", rewritten)]
        for label, session in order if r % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            for _ in range(calls):
                session.run(None, {name: x})
            times[label].append((time.perf_counter() - started) / calls)
    ratios = sorted(p / w for p, w in zip(times["plain"], times["rewritten"]))
    speed = {k: len(x) / statistics.median(v) for k, v in times.items()}
    return speed["plain"], speed["rewritten"], ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="an .onnx file")
    parser.add_argument("--batch-sizes", default="1,64,1024")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--top", type=int, default=8, help="nodes listed per batch size")
    args = parser.parse_args()
    probe = make_session(args.model, tuned=True)
    print("rewrites:", "; ".join(probe.graph_rewrites) or "none apply")
    shape = [d if isinstance(d, int) else 1 for d in probe.get_inputs()[0].shape[1:]]
    rng = np.random.default_rng(0)
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        x = rng.random((batch, *shape), dtype=np.float32)
        print(f"\nbatch {batch}: time per node (ORT profiler, toolkit session)")
        for share, us, op, node in node_profile(args.model, x, calls=max(20, 2000 // batch))[:args.top]:
            print(f"  {share:6.1%} {us:10.1f} us  {op:<14} {node}")
        if probe.graph_rewrites:
            plain, rewritten, ratios = rewrites_ab(args.model, x, args.rounds)
            print(f"  images/s without rewrites {plain:,.0f}, with {rewritten:,.0f}; per-round ratio median "
                  f"{statistics.median(ratios):.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f}, {len(ratios)} rounds)")


if __name__ == "__main__":
    main()
