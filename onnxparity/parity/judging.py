"""Judging the parity matrix's outputs: each candidate's against its model's reference.

:func:`compare_all` gives one :class:`~onnxparity.compare.Comparison` per (candidate, output),
with the judge :mod:`onnxparity.compare` has for it (a quantized variant by its gate, any other
output by its tolerance class; class scores where the spec or the graph marks them, or their name says so); :func:`disagreements` lists the inputs where any backend's top-1
differs from the reference's, with every backend's pick.
"""

from __future__ import annotations

import functools

import numpy as np

from onnxparity.compare import Comparison, Tolerance, class_output, compare, judge_variant, tolerance_for
from onnxparity.inputs.synthetic import PROBE_KINDS
from onnxparity.onnx_model import OnnxModel


def marked_outputs(model: dict) -> set[str]:
    """The outputs a model's entry marks as class scores: its spec's and its ONNX graph's (``class_outputs``)."""
    return set(model.get("class_outputs") or ()) | set((model.get("spec") or {}).get("class_outputs") or ())


def reference_label(model: str, runs: dict) -> str | None:
    return next((label for (m, label), r in runs.items() if m == model and r.role == "reference"), None)


def compare_all(models, planned, runs, outputs, model_inputs, atol, rtol, min_agreement):
    """One comparison per (candidate, output) of each model, against that model's reference, on
    the inputs in the model's domain; one more, marked ``probes``, on the out-of-domain probes
    (:data:`~onnxparity.inputs.synthetic.PROBE_KINDS`) where there are any; and the tolerances
    used, by tolerance class."""
    comparisons, tolerances = [], {}
    variants: dict[str, dict | None] = {}  # each ONNX file parsed once, however many runtimes ran it
    for model in models:
        name = model["name"]
        ref_label = reference_label(name, runs)
        if ref_label is None:
            continue
        ref_out = outputs.get((name, ref_label))
        truths, fixed_why = (ref_out or {}).get("truth") or {}, fixed_because(atol, rtol, runs[name, ref_label])
        marked = marked_outputs(model)
        for job in planned:
            if job.model != name or job.role == "reference":
                continue
            tol = tolerance_for(job.backend.tolerance, atol, rtol, min_agreement)
            tolerances[job.backend.tolerance] = tol.__dict__
            cand_out = outputs.get((name, job.label))
            if ref_out is None or cand_out is None:
                if job.unavailable or runs[name, job.label].status == "unavailable":
                    continue
                comparisons.append(not_compared(name, ref_label, job, tol, runs))
                continue
            if job.backend.framework == "onnx" and job.path not in variants:
                variants[job.path] = OnnxModel(job.path).variant
            variant = variants.get(job.path) if job.backend.framework == "onnx" else None
            judge = functools.partial(judge_variant, variant=variant, min_agreement=min_agreement) if variant else None
            single = len(ref_out["outputs"]) == 1 == len(cand_out["outputs"])  # one output each: matched as such
            for out_name, ref_array in ref_out["outputs"].items():
                ref = {"outputs": ref_array, "indices": ref_out["indices"], "output_name": out_name, "label": ref_label}
                if single and out_name not in cand_out["outputs"]:
                    cand_out = dict(cand_out, outputs={out_name: next(iter(cand_out["outputs"].values()))})
                if out_name not in cand_out["outputs"]:
                    comparisons.append(Comparison(
                        model=name, reference=ref_label, candidate=job.label, device=job.device, passed=False,
                        reasons=[f"no output {out_name!r} (it has {', '.join(cand_out['outputs'])})"], n=0,
                        atol=tol.atol, rtol=tol.rtol, min_agreement=tol.min_agreement, output=out_name))
                    continue
                cand = {"outputs": cand_out["outputs"][out_name], "indices": cand_out["indices"],
                        "output_name": out_name, "label": job.label}
                classes = True if out_name in marked else None
                truth = truths.get(out_name)
                why = fixed_why or on_accelerator(job.backend.tolerance) or (
                    None if truth is not None else "the float64 run gave no such output")
                probe = np.isin(np.asarray(model_inputs[name].kinds, dtype=object), PROBE_KINDS)
                for is_probe in (False, True) if probe.any() else (False,):
                    chosen = probe if is_probe else ~probe
                    r, c = _subset(ref, chosen), _subset(cand, chosen)
                    if is_probe and not len(r["indices"]):
                        continue
                    t = None if truth is None else np.asarray(truth)[chosen[np.asarray(ref["indices"])]]
                    judged = (judge(name, r, c, model_inputs[name].labels, tol, job.device, classes=classes) if judge
                              else compare(name, r, c, tol, job.device, output=out_name, classes=classes, truth=t,
                                           fixed_why=why))
                    judged.probes = is_probe
                    comparisons.append(judged)
    return comparisons, tolerances


def _subset(side: dict, chosen: np.ndarray) -> dict:
    """One side's outputs on the chosen inputs only (``chosen``: a mask over all the model's inputs)."""
    indices = np.asarray(side["indices"])
    keep = chosen[indices]
    return dict(side, outputs=np.asarray(side["outputs"])[keep], indices=indices[keep])


def decides(comparison: Comparison, strict_probes: bool = False) -> bool:
    """Whether a comparison counts in the verdict: probes only when ``--strict-probes`` asks."""
    return strict_probes or not comparison.probes


def fixed_because(atol, rtol, reference_run) -> str | None:
    """Why the fixed tolerance decides for this model (None: the float64-calibrated rule does)."""
    if atol is not None or rtol is not None:
        return "--atol/--rtol given"
    f64 = reference_run.float64
    if f64 is None:
        what = "saved outputs" if reference_run.runner == "saved" else "an ONNX file" if \
            reference_run.runner in ("onnxruntime", "openvino") else "not run in float64"
        return f"the reference {reference_run.label} has no float64 run ({what})"
    if f64.get("status") != "ok":
        return f"no float64 run: {f64.get('reason')}"
    return None


def on_accelerator(tolerance_class: str) -> str | None:
    """Accelerators keep their fixed tolerance (their ratios against float64 are reported, not yet measured
    widely enough to set a K for them: TF32 and other kernels sit far from CPU float32)."""
    return None if tolerance_class == "cpu" else "an accelerator keeps the GPU tolerance"


def not_compared(model: str, ref_label: str, job, tol: Tolerance, runs: dict) -> Comparison:
    """A failed comparison saying which side did not run, and why."""
    ref_run, cand_run = runs[model, ref_label], runs[model, job.label]
    why = (f"reference {ref_label} {ref_run.status}: {ref_run.reason}" if ref_run.status != "ok"
           else f"{job.label} {cand_run.status}: {cand_run.reason}")
    return Comparison(model=model, reference=ref_label, candidate=job.label, device=job.device, passed=False,
                      reasons=[why], n=0, atol=tol.atol, rtol=tol.rtol, min_agreement=tol.min_agreement)


def disagreements(models: list[dict], runs: dict, outputs: dict, model_inputs: dict) -> list[dict]:
    """Inputs where any backend's top-1 differs from its model's reference, with every backend's pick."""
    found = []
    for model in models:
        name = model["name"]
        inputs = model_inputs[name]
        ref_label = reference_label(name, runs)
        if (name, ref_label) not in outputs:
            continue
        reference = outputs[name, ref_label]["outputs"]
        out_name = class_output(reference, marked_outputs(model))
        if out_name is None or reference[out_name].ndim != 2:
            continue
        picks = {}
        for label in [label for (m, label) in outputs if m == name]:
            o = outputs[name, label]
            if out_name not in o["outputs"] or np.shape(o["outputs"][out_name]) != \
                    (len(o["indices"]), *np.shape(reference[out_name])[1:]):
                continue
            full = np.full(len(inputs), -1, np.int64)
            full[o["indices"]] = np.asarray(o["outputs"][out_name]).argmax(axis=1)
            picks[label] = full
        ref = picks.get(ref_label)
        if ref is None:
            continue
        differ = np.zeros(len(inputs), bool)
        for label, p in picks.items():
            differ |= (p >= 0) & (p != ref)
        for i in np.flatnonzero(differ):
            found.append({"model": name, "output": out_name, "index": int(i), "kind": inputs.kinds[i],
                          "label": int(inputs.labels[i]),
                          "predictions": {label: int(p[i]) for label, p in picks.items() if p[i] >= 0}})
    return found
