"""The fastest way to run an ONNX file on this CPU, chosen by measuring, never by assumption.

A session option or graph rewrite that pays on one CPU can cost on another (docs/bench.md), so
``serve`` does not take the tuned session on trust: :func:`choose` opens the candidates
(:func:`cpu_candidates`: plain ONNX Runtime, the toolkit's session options, those options with the
exact graph rewrites of :mod:`~onnxparity.runners.cpu_graph`, and OpenVINO where it is installed),
checks each one's outputs against plain ORT on the file as it is, times them side by side at the
batch sizes that matter, in interleaved rounds within a time budget, and keeps the simplest one that
no other beats by at least :data:`MIN_GAIN` (so a rewrite that does not pay here is not applied).
The :class:`Choice` says what was chosen and why, with every figure it was chosen on.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from onnxparity.errors import BackendUnavailable, InputError, first_line

MIN_GAIN = 1.03  # a more elaborate session must be this much faster (median of same-round ratios) to be chosen
MIN_ROUNDS = 3
BUDGET_S = 3.0  # serve's default time for the choice, per model


@dataclass(frozen=True)
class Candidate:
    """One way to run the file: ``open()`` gives a runner (``infer``, ``bind``); the first candidate
    is the baseline every other is checked against and timed against."""

    name: str
    what: str
    open: Callable[[], object]


@dataclass
class Choice:
    chosen: str
    why: str
    runner: object = field(repr=False)
    batch_sizes: tuple[int, ...] = ()
    rounds: int = 0
    candidates: dict = field(default_factory=dict)  # name -> what, images_per_second, vs_baseline, parity or reason

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "why": self.why, "batch_sizes": list(self.batch_sizes), "rounds": self.rounds,
                "candidates": self.candidates}


def cpu_candidates(path, intra_op_threads: int = 0) -> list[Candidate]:
    """Plain ORT (ORT's own defaults, ``intra_op_threads`` aside), the toolkit's session options, the
    same with the exact CPU graph rewrites (only where a rewrite applies to this file), and OpenVINO
    (only where it is installed)."""
    import importlib.util

    from pathlib import Path

    from onnxparity.models import ModelRef
    from onnxparity.runners.onnxruntime import OnnxRuntimeRunner

    ref = ModelRef("onnx", Path(path), None)

    def ort(**options):
        return lambda: OnnxRuntimeRunner(ref, intra_op_threads=intra_op_threads, **options)

    def rewritten():
        runner = ort(tuned=True)()
        if not runner.session.graph_rewrites:
            raise BackendUnavailable("no exact CPU graph rewrite applies to this file here")
        return runner

    threads = f"{intra_op_threads} intra-op threads" if intra_op_threads else "ORT's threads"
    out = [Candidate("plain", f"ONNX Runtime's defaults ({threads})", ort()),
           Candidate("options", "the toolkit's session options (threads, bounded spinning)",
                     ort(tuned=True, rewrites=False)),
           Candidate("rewrites", "the toolkit's options and the exact CPU graph rewrites", rewritten)]
    if importlib.util.find_spec("openvino") is not None:
        from onnxparity.runners.openvino import OpenVinoRunner

        out.append(Candidate("openvino", "OpenVINO's CPU plugin, float32",
                             lambda: OpenVinoRunner(ref, "cpu", threads=intra_op_threads)))
    return out


def choose(candidates: list[Candidate], feeds: dict[int, dict[str, np.ndarray]], budget_s: float = BUDGET_S,
           tolerance=None) -> Choice:
    """Open, check and time ``candidates`` on ``feeds`` (batch size -> one batch by input name).

    A candidate that cannot start, or whose outputs leave ``tolerance`` around the first candidate's
    (the CPU tolerance by default, atol scaled to each output's magnitude), is left out with the
    reason. The rest run in interleaved rounds, the order rotated each round, until ``budget_s`` is
    spent (at least :data:`MIN_ROUNDS`); each gets, per batch size, the median over rounds of its
    speed over the baseline's in the same round, and a score, the geometric mean of those. Going
    down the list, a candidate is chosen over the one chosen so far only when its score is at least
    :data:`MIN_GAIN` times higher.
    """
    from onnxparity.compare import scaled_to, tolerance_for, within
    from onnxparity.compare.metrics import max_abs_diff

    deadline = time.perf_counter() + budget_s
    tolerance = tolerance or tolerance_for("cpu")
    batch_sizes = tuple(sorted(feeds))
    opened, report = {}, {}
    baseline = None
    for c in candidates:
        report[c.name] = {"what": c.what}
        try:
            runner = c.open()
            outputs = {b: runner.infer(f) for b, f in feeds.items()}  # the first calls, untimed
        except (BackendUnavailable, InputError) as exc:
            report[c.name]["reason"] = f"not run: {first_line(exc, with_type=False)}"
            continue
        if getattr(runner, "session", None) is not None and getattr(runner.session, "graph_rewrites", None):
            report[c.name]["what"] += f" ({'; '.join(runner.session.graph_rewrites)})"
        if baseline is None:
            baseline = outputs
        else:
            pairs = [(f"{name} at batch {b}", want, outputs[b][name])
                     for b in feeds for name, want in baseline[b].items()]
            failing = [where for where, want, got in pairs if not within(want, got, scaled_to(tolerance, want))]
            report[c.name]["parity"] = {"passed": not failing,
                                        "max_abs_diff": max(max_abs_diff(want, got) or 0.0 for _, want, got in pairs)}
            if failing:
                report[c.name]["reason"] = f"outputs outside the CPU tolerance of the file's: {', '.join(failing)}"
                continue
        opened[c.name] = {b: runner.bind(f) for b, f in feeds.items()}, runner
    if not opened:
        raise InputError("no candidate session could run the file")
    rates, rounds = _time(opened, batch_sizes, deadline)
    names = list(opened)
    base = names[0]
    scores = {}
    for name in names:
        vs = {b: statistics.median(r / q for r, q in zip(rates[name][b], rates[base][b])) for b in batch_sizes}
        scores[name] = float(np.exp(np.mean(np.log(list(vs.values())))))
        report[name].update({"images_per_second": {b: round(statistics.median(rates[name][b]) * b, 1)
                                                   for b in batch_sizes},
                             "vs_baseline": {b: round(v, 3) for b, v in vs.items()}, "score": round(scores[name], 3)})
    chosen = base
    for name in names[1:]:
        if scores[name] >= scores[chosen] * MIN_GAIN:
            chosen = name
    why = (f"{chosen}, {report[chosen]['what']}. Speed over {base} (median of same-round ratios over {rounds} "
           f"interleaved rounds, geometric mean over batch sizes {', '.join(map(str, batch_sizes))}): "
           + ", ".join(f"{n} {scores[n]:.2f}x" for n in names)
           + f"; a session is chosen over a simpler one only when {MIN_GAIN:.2f}x as fast")
    left_out = [n for n in report if n not in opened]
    if left_out:
        why += "; left out: " + "; ".join(f"{n} ({report[n]['reason']})" for n in left_out)
    return Choice(chosen, why, opened[chosen][1], batch_sizes, rounds, report)


def _time(opened: dict, batch_sizes: tuple[int, ...], deadline: float) -> tuple[dict, int]:
    """Calls per second of each candidate, per batch size, per round: rounds interleaved, the order
    rotated, each turn a slice of the time left (at least one call), until ``deadline`` (at least
    :data:`MIN_ROUNDS` rounds)."""
    names = list(opened)
    turn_s = max(deadline - time.perf_counter(), 0.0) / (MIN_ROUNDS * len(names) * len(batch_sizes))
    rates = {name: {b: [] for b in batch_sizes} for name in names}
    rounds = 0
    while rounds < MIN_ROUNDS or time.perf_counter() < deadline:
        order = names[rounds % len(names):] + names[: rounds % len(names)]
        for b in batch_sizes:
            for name in order:
                call, n = opened[name][0][b], 0
                t0 = time.perf_counter()
                while True:
                    call()
                    n += 1
                    elapsed = time.perf_counter() - t0
                    if elapsed >= turn_s:
                        break
                rates[name][b].append(n / elapsed)
        rounds += 1
    return rates, rounds
