"""What a bench measured, as numbers: one row per (model, backend, device, batch size), and the
per-round ratios of ONNX Runtime (the toolkit's path) to every other backend beside it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from onnxparity.bench.models import BenchModel

ORT_BACKEND = "onnxruntime"  # the bench row every other is compared with: the toolkit's own session


@dataclass
class Cell:
    """One (model, backend, device): where it runs and what it measured per batch size."""

    model: BenchModel
    backend: str
    device: str
    worker: str
    key: str
    opened: dict
    prepared: dict = field(default_factory=dict)  # batch -> prepare() answer
    calls: dict = field(default_factory=dict)  # batch -> calls per round
    rounds: dict = field(default_factory=dict)  # batch -> [per-call seconds of each round]
    error: str | None = None
    path: str = ""  # the file it runs


def per_round_ips(cell: Cell, batch: int) -> list[float]:
    return [batch * len(lat) / sum(lat) for lat in cell.rounds.get(batch, []) if lat and sum(lat) > 0]


def rows(cell: Cell, config) -> list[dict]:
    """One row per batch size that ``cell`` finished every round of (``config``: the bench's)."""
    out = []
    for batch in config.batch_sizes:
        rounds = cell.rounds.get(batch) or []
        if not rounds or (cell.error and len(rounds) < config.rounds):
            continue
        lat = np.concatenate([np.asarray(r) for r in rounds])
        ips = per_round_ips(cell, batch)
        prep = cell.prepared[batch]
        row = {
            "model": cell.model.name, "framework": cell.model.framework, "backend": cell.backend,
            "device": cell.device, "batch_size": batch,
            "images_per_second": round(float(np.median(ips)), 1),
            "images_per_second_min": round(float(min(ips)), 1),
            "images_per_second_max": round(float(max(ips)), 1),
            "images_per_second_rounds": [round(v, 1) for v in ips],
            "latency_ms_median": round(float(np.median(lat)) * 1e3, 4),
            "latency_ms_p90": round(float(np.percentile(lat, 90)) * 1e3, 4),
            "rounds": len(rounds), "calls_per_round": cell.calls[batch],
            "first_call_ms": round(prep["first_call_s"] * 1e3, 3),
            "load_s": round(cell.opened["load_s"], 4),
        }
        if cell.opened.get("compiles"):
            row["compile_s"] = round(max(0.0, prep["first_call_s"] - prep["warm_call_s"]), 3)
        if cell.model.mflop_per_image:
            row["gflops"] = round(row["images_per_second"] * cell.model.mflop_per_image / 1e3, 2)
        out.append(row)
    return out


def ratios(cells: list[Cell], config) -> list[dict]:
    """ORT (the toolkit's path) / each other backend, per interleaved round, median over rounds."""
    out = []
    for ort in (c for c in cells if c.backend == ORT_BACKEND):
        for other in cells:
            if other is ort or other.device != ort.device:
                continue
            for batch in config.batch_sizes:
                a, b = per_round_ips(ort, batch), per_round_ips(other, batch)
                n = min(len(a), len(b))
                if n < config.rounds:  # one side failed before this batch size's rounds were done
                    continue
                per_round = [a[i] / b[i] for i in range(n)]
                out.append({"model": ort.model.name, "device": ort.device, "batch_size": batch,
                            "backend": ORT_BACKEND, "versus": other.backend,
                            "ratio": round(float(np.median(per_round)), 3),
                            "ratio_min": round(min(per_round), 3), "ratio_max": round(max(per_round), 3)})
    return out
