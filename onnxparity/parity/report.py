"""Views of a :class:`~onnxparity.parity.result.ParityResult`: the console table and one HTML page
(:mod:`onnxparity.parity.page`)."""

from __future__ import annotations

from pathlib import Path

from onnxparity._io import write_text
from onnxparity.parity.result import ParityResult


def _num(x, fmt="{:.1e}") -> str:
    return "-" if x is None else fmt.format(x)


def table(result: ParityResult) -> str:
    """One row per comparison with its verdict, then the backends that did not run and why."""
    rows = [("model", "output", "candidate (vs reference)", "n", "max abs", "max rel", "p99 abs", "top-1",
             "near ties", "accuracy", "verdict")]
    acc = {(b.model, b.label): b.accuracy for b in result.backends}
    for c in by_output(result.comparisons):
        agree = "-" if c.top1_agreement is None else f"{c.top1_agreement:.2%}"
        verdict = "PASS" if c.passed else "FAIL"
        rows.append((c.model, c.output or "-", f"{c.candidate} (vs {c.reference})", str(c.n), _num(c.max_abs_diff),
                     _num(c.max_rel_diff), _num(c.p99_abs_diff), agree, str(len(c.near_ties)) if c.n else "-",
                     _num(acc.get((c.model, c.candidate)), "{:.4f}"), verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for b in result.backends:
        if b.role == "reference":
            lines.append(f"reference {b.model}: {b.label} ({b.status}"
                         + (f", accuracy {b.accuracy:.4f} on {b.n_labelled} labelled inputs" if b.accuracy is not None else "")
                         + (f": {b.reason}" if b.reason else "") + ")")
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
    lines += [f"variant  {c.model}: {c.candidate}: {c.checks['variant']['judged_by']}"  # how variants were judged
              for c in result.comparisons if "variant" in (c.checks or {})]
    lines.append(f"inputs: {inputs_line(result.inputs)}; parity {'PASSED' if result.passed else 'FAILED'} "
                 f"in {result.seconds:.1f} s")
    return "\n".join(lines)


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


def html_page(result: ParityResult, inputs=None, outputs=None, locate=None) -> str:
    """The HTML page: see :mod:`onnxparity.parity.page`."""
    from onnxparity.parity.page import html_page as page

    return page(result, inputs, outputs, locate)


def write_html(path: str | Path, result: ParityResult, inputs=None, outputs=None, locate=None) -> Path:
    write_text(path, html_page(result, inputs, outputs, locate))
    return Path(path)
