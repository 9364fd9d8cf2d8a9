"""The parity run's results as plain data: saved and loaded as JSON (the schema in docs/parity.md).

``ParityResult`` is what every report is a view of. Raw outputs are not in it (they are large);
``save_outputs`` / ``load_outputs`` keep them in an ``.npz`` beside their own result, so that
``onnxparity compare`` can compare two machines' runs later.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from onnxparity import views
from onnxparity._io import atomic_path, write_text
from onnxparity.compare import HIST_EDGES, Comparison
from onnxparity.errors import InputError

SCHEMA = "onnxparity.parity/2"  # 2: one comparison per (candidate, output); backends' ``outputs``


@dataclass
class BackendRun:
    """One backend on one model: what ran where, how it went, and its accuracy on the labelled digits."""

    model: str
    label: str  # e.g. "keras-tf:cpu", "onnxruntime:cuda", "onnxruntime:cpu:b1"
    role: str  # "reference" or "candidate"
    runner: str  # onnxparity.runners backend name
    device: str  # "cpu" or "cuda"
    path: str  # the file it ran
    batch_size: int
    status: str  # "ok", "unavailable" (with reason) or "failed" (crashed, timed out, raised)
    reason: str | None = None
    gone: bool = False  # failed without finishing (crashed, killed, timed out), not by raising
    error_tail: str | None = None  # end of the worker's error output when it failed
    n: int = 0  # inputs it ran
    accuracy: float | None = None
    correct: int | None = None
    n_labelled: int | None = None
    outputs: dict = field(default_factory=dict)  # output name -> {"shape": [...], "dtype": "float32"}
    seconds: dict = field(default_factory=dict)  # start (imports + load), infer, cpu, wall (as the parent saw it),
    # began (when it was handed to its worker, after the matrix started)
    worker: str | None = None  # the worker process it ran in; backends that shared one name the same
    details: dict = field(default_factory=dict)  # versions, device name, ORT providers in the session
    placement: dict | None = None  # ORT: graph nodes per execution provider, from ORT's profiler
    float64: dict | None = None  # the reference's float64 run: {"status": "ok", "seconds"} or {"status", "reason"}


@dataclass
class ParityResult:
    passed: bool
    comparisons: list[Comparison]
    backends: list[BackendRun]
    models: list[dict]  # name, framework, original, onnx, reference, spec, signature, precision, inputs
    inputs: dict  # the (first) model's inputs: source, n, n_digits, n_synthetic, kinds, fingerprint
    environment: dict
    tolerances: dict  # device -> {atol, rtol, min_agreement} as used
    disagreements: list[dict] = field(default_factory=list)  # inputs where any backend's top-1 differs
    seconds: float = 0.0  # wall time of the whole parity run (worker start-up included)
    unmet: list[str] = field(default_factory=list)  # required devices (--require-devices) that did not run
    schema: str = SCHEMA
    created: str = ""

    # -- views --------------------------------------------------------------------------
    def failed(self) -> list[str]:
        """One line per failure: comparisons beyond tolerance (probes last, only where nothing else
        failed: they decide only under --strict-probes), backends that crashed."""
        failing = [c for c in self.comparisons if not c.passed and not c.probes] or \
            [c for c in self.comparisons if not c.passed]
        lines = [f"{c.model}: {c.candidate} vs {c.reference}" + (f" [{c.output}]" if c.output else "")
                 + (" on probes" if c.probes else "") + f": {'; '.join(c.reasons)}"
                 for c in failing]
        lines += [f"{b.model}: {b.label} failed: {b.reason}" for b in self.backends if b.status == "failed"]
        lines += list(self.unmet)
        return lines

    @property
    def incomplete(self) -> bool:
        """Whether it failed only because backends did not finish: every comparison that failed has a
        backend that crashed, was killed or timed out on one side."""
        gone = {(b.model, b.label) for b in self.backends if b.status == "failed" and b.gone}
        failing = [c for c in self.comparisons if not c.passed]
        return bool(gone) and not self.unmet and all(
            (c.model, c.candidate) in gone or (c.model, c.reference) in gone for c in failing)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["histogram_edges_log10"] = [e if np.isfinite(e) else None for e in HIST_EDGES]
        return d

    def to_json(self) -> str:
        return views.to_json(self.to_dict())

    def save(self, path: str | Path) -> Path:
        write_text(path, self.to_json())
        return Path(path)

    @classmethod
    def from_dict(cls, d: dict) -> "ParityResult":
        if d.get("schema") != SCHEMA:
            raise InputError(f"not an onnxparity parity result (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["comparisons"] = [Comparison(**c) for c in d["comparisons"]]
        d["backends"] = [BackendRun(**b) for b in d["backends"]]
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "ParityResult":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a parity result ({exc})") from None


# -- raw outputs ------------------------------------------------------------------------------
def save_outputs(path: str | Path, result: ParityResult, outputs: dict, inputs) -> Path:
    """Raw outputs of every backend that ran, the inputs and the result, in one ``.npz``.

    ``outputs``: ``(model, label) -> {"outputs": {name: array}, "indices": array}``.
    """
    arrays = {"labels": inputs.labels, "kinds": np.asarray(inputs.kinds)}
    if inputs.images is not None:
        arrays["images"] = np.asarray(inputs.images, np.float32)
    input_names = sorted(inputs.arrays or {})
    for i, name in enumerate(input_names):
        arrays[f"in{i}"] = inputs.arrays[name]
    index = []
    for i, ((model, label), run) in enumerate(sorted(outputs.items())):
        arrays[f"idx{i}"] = run["indices"]
        names = list(run["outputs"])
        for j, name in enumerate(names):
            arrays[f"out{i}_{j}"] = run["outputs"][name]
        truth = [name for name in names if name in run.get("truth", {})]  # the float64 run, where there is one
        for j, name in enumerate(names):
            if name in truth:
                arrays[f"truth{i}_{j}"] = run["truth"][name]
        index.append({"model": model, "label": label, "key": i, "outputs": names, "truth": truth})
    arrays["meta"] = np.asarray(json.dumps({"result": result.to_dict(), "outputs": index, "source": inputs.source,
                                            "input_names": input_names}))
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return Path(path)


def load_outputs(path: str | Path):
    """-> (ParityResult, outputs as for :func:`save_outputs`, Inputs)."""
    from onnxparity.inputs import Inputs

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            outputs = {(o["model"], o["label"]): {
                "outputs": {name: data[f"out{o['key']}_{j}"] for j, name in enumerate(o["outputs"])},
                "indices": data[f"idx{o['key']}"], "label": o["label"],
                **({"truth": {name: data[f"truth{o['key']}_{j}"] for j, name in enumerate(o["outputs"])
                              if name in o["truth"]}} if o.get("truth") else {})} for o in meta["outputs"]}
            kinds = tuple(str(k) for k in data["kinds"])
            images = data["images"] if "images" in data.files else None
            named = {name: data[f"in{i}"] for i, name in enumerate(meta.get("input_names", []))}
            inputs = Inputs(data["labels"], kinds, meta["source"], images=images,
                            arrays=named if images is None else None)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a file written by --save-outputs ({exc})") from None
    return ParityResult.from_dict(meta["result"]), outputs, inputs
