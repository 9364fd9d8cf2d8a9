"""Views of a :class:`~onnxparity.parity.result.ParityResult`: the console table and one HTML page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from onnxparity._io import write_text
from onnxparity.parity.metrics import HIST_EDGES
from onnxparity.parity.result import ParityResult

MAX_IMAGES = 60


def _num(x, fmt="{:.1e}") -> str:
    return "-" if x is None else fmt.format(x)


def table(result: ParityResult) -> str:
    """One row per comparison with its verdict, then the backends that did not run and why."""
    rows = [("model", "candidate (vs reference)", "n", "max abs", "max rel", "p99 abs", "top-1", "near ties",
             "accuracy", "verdict")]
    acc = {(b.model, b.label): b.accuracy for b in result.backends}
    for c in result.comparisons:
        agree = "-" if c.top1_agreement is None else f"{c.top1_agreement:.2%}"
        verdict = "PASS" if c.passed else "FAIL"
        rows.append((c.model, f"{c.candidate} (vs {c.reference})", str(c.n), _num(c.max_abs_diff),
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
    s = result.inputs
    lines.append(f"inputs: {s['n_digits']} real images from {s['source']} + {s['n_synthetic']} synthetic edge cases; "
                 f"parity {'PASSED' if result.passed else 'FAILED'} in {result.seconds:.1f} s")
    return "\n".join(lines)


def _png(image: np.ndarray, scale: int = 3) -> str:
    from PIL import Image

    img = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
    im = Image.fromarray(img).resize((img.shape[1] * scale, img.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histogram_svg(counts: list[int], width: int = 260, height: int = 70) -> str:
    if not counts or not sum(counts):
        return ""
    n = len(counts)
    bar = width / n
    top = max(counts)
    names = ["0"] + [f"1e{int(e)}" for e in HIST_EDGES[1:-1]]
    parts = [f'<svg width="{width}" height="{height + 14}" role="img" aria-label="histogram of |differences|">']
    for i, c in enumerate(counts):
        h = 0 if c == 0 else max(1.0, height * (np.log1p(c) / np.log1p(top)))
        parts.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                     f'fill="#4a7bd0"><title>&lt; {names[i + 1] if i + 1 < len(names) else "inf"}: {c}</title></rect>')
    parts.append(f'<text x="0" y="{height + 12}" font-size="9">0</text>'
                 f'<text x="{width / 2 - 12:.0f}" y="{height + 12}" font-size="9">1e-6</text>'
                 f'<text x="{width - 18}" y="{height + 12}" font-size="9">≥1</text></svg>')
    return "".join(parts)


def html_page(result: ParityResult, inputs=None) -> str:
    """One self-contained page: the table, a histogram of |differences| per comparison (log scale,
    bins per decade), and every input where any backend's top-1 disagreed, with each backend's pick."""
    e = html.escape
    verdict = "PASSED" if result.passed else "FAILED"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>onnxparity: parity {verdict}</title>",
           "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:left}"
           ".PASS{color:#116611;font-weight:bold}.FAIL{color:#b00;font-weight:bold}"
           ".imgs div{display:inline-block;margin:6px;font-size:11px;vertical-align:top}</style></head><body>",
           f"<h1>Parity <span class='{'PASS' if result.passed else 'FAIL'}'>{verdict}</span></h1>",
           f"<p>{e(str(result.inputs['n_digits']))} real images from {e(result.inputs['source'])} + "
           f"{result.inputs['n_synthetic']} synthetic edge cases; {result.seconds:.1f} s; {e(result.created)}</p>",
           "<h2>Comparisons</h2><table><tr><th>model</th><th>reference</th><th>candidate</th><th>n</th>"
           "<th>max abs</th><th>max rel</th><th>mean abs</th><th>p99 abs</th><th>atol / rtol</th><th>top-1</th>"
           "<th>near ties</th><th>|diff| histogram</th><th>verdict</th></tr>"]
    for c in result.comparisons:
        v = "PASS" if c.passed else "FAIL"
        agree = "-" if c.top1_agreement is None else f"{c.top1_agreement:.2%} ({c.top1_agree_count}/{c.n})"
        reasons = f"<br><small>{e('; '.join(c.reasons))}</small>" if c.reasons else ""
        out.append(f"<tr><td>{e(c.model)}</td><td>{e(c.reference)}</td><td>{e(c.candidate)}</td><td>{c.n}</td>"
                   f"<td>{_num(c.max_abs_diff)}</td><td>{_num(c.max_rel_diff)}</td><td>{_num(c.mean_abs_diff)}</td>"
                   f"<td>{_num(c.p99_abs_diff)}</td><td>{c.atol:g} / {c.rtol:g}</td><td>{agree}</td>"
                   f"<td>{len(c.near_ties)}</td><td>{_histogram_svg(c.histogram)}</td>"
                   f"<td class='{v}'>{v}{reasons}</td></tr>")
    out.append("</table><h2>Backends</h2><table><tr><th>model</th><th>backend</th><th>role</th><th>status</th>"
               "<th>accuracy</th><th>seconds</th><th>nodes per provider</th><th>details</th></tr>")
    for b in result.backends:
        acc = "-" if b.accuracy is None else f"{b.accuracy:.4f} ({b.correct}/{b.n_labelled})"
        status = e(b.status) + (f": {e(b.reason or '')}" if b.reason else "")
        if b.error_tail:
            status += f"<details><summary>error output</summary><pre>{e(b.error_tail)}</pre></details>"
        out.append(f"<tr><td>{e(b.model)}</td><td>{e(b.label)}</td><td>{e(b.role)}</td><td>{status}</td>"
                   f"<td>{acc}</td><td>{e(str(b.seconds or ''))}</td><td>{e(str(b.placement or ''))}</td>"
                   f"<td>{e(str(b.details or ''))}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Disagreements ({len(result.disagreements)})</h2>")
    if result.disagreements:
        out.append("<p>Inputs where any backend's top-1 differs from its model's reference.</p><div class='imgs'>")
        for d in result.disagreements[:MAX_IMAGES]:
            img = f"<img src='{_png(inputs.images[d['index']])}' alt='input {d['index']}'><br>" if inputs is not None else ""
            picks = "<br>".join(f"{e(k)}: {v}" for k, v in d["predictions"].items())
            label = d["label"] if d["label"] >= 0 else d["kind"]
            out.append(f"<div>{img}{e(d['model'])} #{d['index']} (label {e(str(label))})<br>{picks}</div>")
        out.append("</div>")
        if len(result.disagreements) > MAX_IMAGES:
            out.append(f"<p>... and {len(result.disagreements) - MAX_IMAGES} more (see the JSON).</p>")
    else:
        out.append("<p>None: every backend picked the same class as its reference on every input.</p>")
    env = result.environment
    out.append(f"<h2>Environment</h2><pre>{e(str(env))}</pre></body></html>\n")
    return "".join(out)


def write_html(path: str | Path, result: ParityResult, inputs=None) -> Path:
    write_text(path, html_page(result, inputs))
    return Path(path)
