"""The zoo's results as plain data, saved as ``results.json``, and the regressions against a
previous run's (``--baseline``).

Each model keeps its own :class:`~onnxparity.parity.result.ParityResult` whole; the zoo adds its
verdict (passed, failed, error: it could not be checked, cancelled), where it ran, how long it took,
and why it is a regression. Every report in the zoo's folder is a view of a :class:`ZooResult`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from onnxparity import views
from onnxparity._io import write_text
from onnxparity.errors import InputError
from onnxparity.parity.result import ParityResult

SCHEMA = "onnxparity.zoo/1"
REGRESSION_FACTOR = 10.0
# Errors below this share of their tolerance count as that much when growth is measured: a
# bit-exact backend that moves by a float32 rounding has not grown "infinitely".
NOISE_SHARE = 0.01
STATUSES = ("passed", "failed", "error", "cancelled")


@dataclass
class ModelRun:
    """One model of the zoo: its verdict and its parity result."""

    name: str
    status: str  # one of STATUSES; "error": it could not be checked (a bad file, a lost task)
    where: str = ""  # the manifest's file and line
    tags: list[str] = field(default_factory=list)
    reason: str | None = None  # the first failure, or the error
    result: ParityResult | None = None
    report: str | None = None  # its HTML page, relative to the zoo's folder
    node: str | None = None  # the Ray node its matrix ran on
    seconds: float | None = None  # its task's wall time
    peak_rss_mb: float | None = None  # of the process that ran its matrix (Ray reuses it: the peak so far)
    regressions: list[str] = field(default_factory=list)  # against the baseline

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["result"] = self.result.to_dict() if self.result else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelRun":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("result"):
            d["result"] = ParityResult.from_dict(d["result"])
        return cls(**d)


@dataclass
class ZooResult:
    passed: bool  # every model passed
    models: list[ModelRun]
    seconds: float = 0.0
    cluster: dict = field(default_factory=dict)  # the nodes and their resources
    workers: list[dict] = field(default_factory=list)  # the warm workers: kind, node, models, peak memory
    driver: dict = field(default_factory=dict)  # the driver's peak memory; its seconds: validate, ray (start or join), models
    baseline: str | None = None
    factor: float = REGRESSION_FACTOR
    created: str = ""
    schema: str = SCHEMA

    def counts(self) -> dict[str, int]:
        return {s: sum(m.status == s for m in self.models) for s in STATUSES}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["models"] = [m.to_dict() for m in self.models]
        return d

    def save(self, path: str | Path) -> Path:
        write_text(path, views.to_json(self.to_dict()))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "ZooResult":
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a zoo result ({exc})") from None
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise InputError(f"{path}: not a zoo result (schema {d.get('schema') if isinstance(d, dict) else None!r}, "
                             f"expected {SCHEMA!r}: the results.json of `onnxparity zoo`)")
        try:
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{**{k: v for k, v in d.items() if k in known},
                          "models": [ModelRun.from_dict(m) for m in d["models"]]})
        except (KeyError, TypeError, InputError) as exc:
            raise InputError(f"{path}: not a zoo result ({exc})") from None


def regressions(now: ModelRun, before: ModelRun | None, factor: float = REGRESSION_FACTOR) -> list[str]:
    """Why ``now`` is a regression against the same model's ``before``: it passed and no longer
    does, or a comparison's max abs error grew more than ``factor`` times (errors below
    :data:`NOISE_SHARE` of their tolerance counted as that much)."""
    if before is None:
        return []
    found = []
    if before.status == "passed" and now.status != "passed":
        found.append(f"passed in the baseline, {now.status} now")
    if now.result is None or before.result is None:
        return found
    old = {(c.candidate, c.output): c for c in before.result.comparisons if not c.probes}
    for c in now.result.comparisons:
        b = old.get((c.candidate, c.output))
        if c.probes or b is None or c.max_abs_diff is None or b.max_abs_diff is None:
            continue
        if c.max_abs_diff > factor * max(b.max_abs_diff, NOISE_SHARE * c.atol):
            found.append(f"{c.candidate}" + (f" [{c.output}]" if c.output else "")
                         + f": max abs error {views.num(b.max_abs_diff)} -> {views.num(c.max_abs_diff)}, "
                           f"more than {factor:g}x")
    return found
