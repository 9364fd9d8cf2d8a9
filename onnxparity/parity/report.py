"""The console view of a :class:`~onnxparity.parity.result.ParityResult` (the HTML page is
:mod:`onnxparity.parity.page`)."""

from __future__ import annotations

from onnxparity.parity.result import ParityResult
from onnxparity.views import cosine_snr, num, text_table


def table(result: ParityResult) -> str:
    """One row per comparison with its verdict, then the backends that did not run and why."""
    header = ("model", "output", "candidate (vs reference)", "n", "max abs", "max rel", "p99 abs",
              "cosine low/median, SNR", "top-1", "near ties", "accuracy", "vs float64", "verdict")
    rows = []
    acc = {(b.model, b.label): b.accuracy for b in result.backends}
    for c in by_output(result.comparisons):
        agree = "-" if c.top1_agreement is None else f"{c.top1_agreement:.2%}"
        verdict = ("PASS" if c.passed else "FAIL") + (" (probes)" if c.probes else "")
        rows.append((c.model, c.output or "-", f"{c.candidate} (vs {c.reference})" + (" on probes" if c.probes else ""),
                     str(c.n), num(c.max_abs_diff), num(c.max_rel_diff), num(c.p99_abs_diff),
                     cosine_snr(c.cosine_min, c.cosine_median, c.snr_db), agree, str(len(c.near_ties)) if c.n else "-",
                     num(acc.get((c.model, c.candidate)), "{:.4f}"), float64_cell(c), verdict))
    lines = text_table(header, rows)
    for b in result.backends:
        if b.role == "reference":
            lines.append(f"reference {b.model}: {b.label} ({b.status}"
                         + (f", accuracy {b.accuracy:.4f} on {b.n_labelled} labelled inputs" if b.accuracy is not None else "")
                         + (f": {b.reason}" if b.reason else "") + ")")
    for b in result.backends:
        how = matched_line((b.details or {}).get("matched"))
        if b.role == "reference" and how:
            lines.append(f"matched  {b.model}: {b.label}'s {how}")
    for b in result.backends:
        if b.status == "unavailable":
            lines.append(f"not run  {b.model}: {b.label}: {b.reason}")
        elif b.status == "failed":
            lines.append(f"FAILED   {b.model}: {b.label}: {b.reason}")
    for c in result.comparisons:
        if not c.passed:
            lines.append(f"why      {c.model}: {c.candidate}: {'; '.join(c.reasons)}")
    for line in getattr(result, "unmet", ()):
        lines.append(f"REQUIRED {line}")
    judged_by = {(c.model, c.checks["variant"]["judged_by"]): None  # how variants were judged, once each
                 for c in result.comparisons if "variant" in (c.checks or {})}
    lines += [f"variant  {model}: {how}" for model, how in judged_by]
    lines += tolerance_lines(result.comparisons)
    lines.append(f"inputs: {inputs_line(result.inputs)}; parity {'PASSED' if result.passed else 'FAILED'} "
                 f"in {result.seconds:.1f} s")
    return "\n".join(lines)


def matched_line(matched: dict | None) -> str | None:
    """How an original's tensors met the file's names, in words ("inputs by name; outputs by order
    (hidden = last_hidden_state, ...)"); None where there was one input and one output to match."""
    parts = []
    for side in ("inputs", "outputs"):
        m = (matched or {}).get(side)
        if not m:
            continue
        pairs = [f"{mine} = {theirs}" for mine, theirs in m.get("pairs") or () if mine != theirs]
        if m["by"] == "name" or pairs:
            parts.append(f"{side} by {m['by']}" + (f" ({', '.join(pairs)})" if pairs else ""))
    return "; ".join(parts) or None


def float64_cell(c) -> str:
    """"1.3x" (the candidate's error against float64 over the reference's own), "-" without a truth."""
    f = c.float64 or {}
    if not f:
        return "-"
    return "exact" if f.get("ratio") is None and not f.get("candidate_error") else \
        "inf" if f.get("ratio") is None else f"{f['ratio']:.2g}x"


def tolerance_lines(comparisons) -> list[str]:
    """Where each verdict's tolerance came from: the float64 calibration (K, the errors), or why a fixed one."""
    lines, fixed = [], {}
    for c in comparisons:
        f = c.float64 or {}
        if c.tolerance_source.startswith("float64") and f:
            ratio = "an exact reference" if f["ratio"] is None else f"{f['ratio']:.3g}x as far"
            lines.append(f"float64  {c.model}: {c.candidate} [{c.output}]{' on probes' if c.probes else ''}: "
                         f"{ratio} from float64 as {c.reference} "
                         f"({f['candidate_error']:.3g} vs {f['reference_error']:.3g}; allowed {f['allowance']:.3g} "
                         f"= {f['k']:g}x + floor {f['floor']:.2g}); would pass with atol {num(c.smallest_atol)} "
                         f"or rtol {num(c.smallest_rtol)}")
        elif c.tolerance_source.startswith("fixed"):
            fixed.setdefault(c.tolerance_source, []).append(c)
    for source, cs in fixed.items():
        lines.append(f"tolerance {source} ({len(cs)} comparison{'s' if len(cs) > 1 else ''} of "
                     f"{', '.join(sorted({c.model for c in cs}))})")
    return lines


def by_output(comparisons):
    """Comparisons grouped by model and output, in the order they were made within each group."""
    order = {}
    for c in comparisons:
        order.setdefault((c.model, c.output), len(order))
    return sorted(comparisons, key=lambda c: order[c.model, c.output])


def inputs_line(s: dict) -> str:
    """What the inputs were, in words: "500 digits from ... + 9 synthetic edge cases"."""
    if s.get("n_digits"):
        return f"{s['n_digits']} real images from {s['source']} + {s['n_synthetic']} synthetic edge cases"
    return f"{s['n']} samples from {s['source']} ({s['n_synthetic']} synthesized)"
