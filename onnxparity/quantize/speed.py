"""Images per second of the fp32 file and its variant, side by side in one run.

Every session is open at once and they take turns (interleaved rounds, each a fixed slice of
time per session and batch size), so a neighbour's load on a shared machine hits them alike; the
figure per session is the median of its rounds. CPU: the toolkit's tuned session (what ``serve``
and ``bench`` run) and plain ORT on the file; CUDA for fp16 where a GPU is here.
"""

from __future__ import annotations

import time

import numpy as np

BATCH_SIZES = (1, 64)
ROUNDS = 7
ROUND_S = 0.2
WARMUP_S = 0.3


def tile(feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """A batch of ``batch`` samples cycled from ``feed``."""
    n = len(next(iter(feed.values())))
    idx = np.arange(batch) % n
    return {k: np.ascontiguousarray(v[idx]) for k, v in feed.items()}


def _rate(session, feed, batch: int, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while True:
        session.run(None, feed)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * batch / elapsed


def cuda_unavailable() -> str | None:
    """Why ORT cannot run on CUDA here, or None when it can (the registry's ``onnxruntime:cuda``)."""
    from onnxparity.backends import named

    return named("onnxruntime:cuda", ["cuda"]).unavailable()


def sessions_for(files: dict[str, str], device: str) -> dict[str, object]:
    """``{kind: {label: session}}``: on CPU the tuned and the plain session, on CUDA one."""
    from onnxparity.runners.sessions import check_started, make_session, resolve_providers

    if device == "cpu":
        return {"cpu": {label: make_session(path, tuned=True) for label, path in files.items()},
                "cpu-plain": {label: make_session(path, tuned=False) for label, path in files.items()}}
    providers = resolve_providers([device])
    made = {}
    for label, path in files.items():
        made[label] = make_session(path, providers, tuned=True)
        check_started(made[label], providers)
    return {device: made}


def measure(files: dict[str, str], feed: dict[str, np.ndarray], devices=("cpu",), *, batch_sizes=BATCH_SIZES,
            rounds: int = ROUNDS, round_s: float = ROUND_S, warmup_s: float = WARMUP_S) -> dict:
    """``{kind: {batch: {label: images/s}}}`` for ``files`` (label -> path), medians of interleaved rounds."""
    kinds: dict[str, dict] = {}
    for device in devices:
        kinds.update(sessions_for(files, device))
    batches = {b: tile(feed, b) for b in batch_sizes}
    samples: dict[tuple, list[float]] = {}
    for kind, sessions in kinds.items():
        for b in batch_sizes:
            for session in sessions.values():
                _rate(session, batches[b], b, warmup_s / len(batch_sizes))
    for _ in range(max(1, rounds)):
        for b in batch_sizes:
            for kind, sessions in kinds.items():
                for label, session in sessions.items():
                    samples.setdefault((kind, b, label), []).append(_rate(session, batches[b], b, round_s))
    return {kind: {str(b): {label: round(float(np.median(samples[kind, b, label])), 1) for label in sessions}
                   for b in batch_sizes} for kind, sessions in kinds.items()}
