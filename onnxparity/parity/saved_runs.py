"""Comparing two saved runs (``--save-outputs``), e.g. a GPU machine's against a CPU laptop's."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

from onnxparity.compare import compare, tolerance_for
from onnxparity.environment import fingerprint
from onnxparity.errors import InputError
from onnxparity.parity.judging import fixed_because, marked_outputs, on_accelerator
from onnxparity.parity.result import ParityResult, load_outputs


def compare_runs(a: str | Path, b: str | Path, *, reference: str | None = None, atol: float | None = None,
                 rtol: float | None = None, min_agreement: float | None = None) -> ParityResult:
    """Compare two saved runs (``--save-outputs`` files): every backend of ``b`` against ``a``'s reference.

    ``reference`` picks another backend label of ``a`` (default: ``a``'s reference of each model).
    The runs must have been made on the same inputs (their fingerprints agree).
    """
    started = time.perf_counter()
    res_a, out_a, inputs_a = load_outputs(a)
    res_b, out_b, inputs_b = load_outputs(b)
    if inputs_a.fingerprint() != inputs_b.fingerprint():
        raise InputError(f"{a} and {b} were run on different inputs ({inputs_a.source} vs {inputs_b.source}); "
                         "use the same --data and --n")
    runs_a = {(r.model, r.label): r for r in res_a.backends}
    runs_b = {(r.model, r.label): r for r in res_b.backends}
    models = [m for m in res_a.models if any(k[0] == m["name"] for k in out_b)]
    if not models:
        raise InputError(f"{a} and {b} share no model")
    comparisons, backends, tolerances = [], [], {}
    for model in models:
        name = model["name"]
        marked = marked_outputs(model)
        ref_label = reference or next(r.label for r in res_a.backends if r.model == name and r.role == "reference")
        if (name, ref_label) not in out_a:
            raise InputError(f"{a}: no outputs of {ref_label} for {name}")
        ref = dict(out_a[name, ref_label], label=f"A:{ref_label}")
        truths = ref.get("truth") or {}  # A's float64 run judges B's backends as it judged A's
        fixed_why = fixed_because(atol, rtol, runs_a[name, ref_label]) or (
            None if truths else "the saved run holds no float64 outputs")
        backends.append(dataclasses.replace(runs_a[name, ref_label], label=f"A:{ref_label}", role="reference"))
        for (m, label), cand in sorted(out_b.items()):
            if m != name:
                continue
            run = runs_b[m, label]
            tol_class = "cpu" if run.device == "cpu" else "cuda"
            tol = tolerance_for(tol_class, atol, rtol, min_agreement)
            tolerances[tol_class] = tol.__dict__
            backends.append(dataclasses.replace(run, label=f"B:{label}", role="candidate"))
            for out_name, ref_array in ref["outputs"].items():
                if out_name not in cand["outputs"]:
                    continue
                comparisons.append(compare(
                    name, {"outputs": ref_array, "indices": ref["indices"], "output_name": out_name, "label": ref["label"]},
                    {"outputs": cand["outputs"][out_name], "indices": cand["indices"], "output_name": out_name,
                     "label": f"B:{label}"}, tol, run.device, output=out_name, truth=truths.get(out_name),
                    fixed_why=fixed_why or on_accelerator(tol_class), classes=True if out_name in marked else None))
    return ParityResult(
        passed=all(c.passed for c in comparisons), comparisons=comparisons, backends=backends, models=models,
        inputs={**inputs_a.summary(), "runs": [str(a), str(b)]},
        environment={"A": res_a.environment, "B": res_b.environment, "here": fingerprint()},
        tolerances=tolerances, seconds=round(time.perf_counter() - started, 2),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
