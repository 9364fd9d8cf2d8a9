"""The HTML report: one self-contained page a person reads, a view of a :class:`ParityResult`.

Per model, a section per output with its comparisons (numbers, a histogram of |differences|,
the verdict and why), then every input where a candidate's top class differed from the
reference's, real disagreements and near ties apart, each with its image (image models) and
both backends' top classes and margins; the backends with their timings as columns; the locate
chart where there is one; the environment as a table. Tables wrap their cells rather than grow
past the page (tests/test_report_page.py checks it in Chromium).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from onnxparity import views
from onnxparity.compare import HIST_EDGES
from onnxparity.views import cosine_snr, num

MAX_CARDS = 24  # inputs shown per comparison; the JSON has them all
TIMING_ORDER = ("start", "infer", "wall")

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1.2em;max-width:1400px;color:#222}
h1{margin:.2em 0}h2{margin-top:1.6em;border-bottom:2px solid #ddd}h3{margin-top:1.2em}
table{border-collapse:collapse;margin:.4em 0 1em;max-width:100%}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left;vertical-align:top;
      overflow-wrap:anywhere}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.label{overflow-wrap:anywhere}th,td.w{overflow-wrap:normal}
tr.why td{border-top:none}
.PASS{color:#116611;font-weight:bold}.FAIL{color:#b00;font-weight:bold}.muted{color:#777}
.why{font-size:12px;color:#b00;font-weight:normal}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;max-height:20em;overflow:auto}
svg.hist{width:100%;min-width:60px;max-width:160px;height:auto}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #ccc;border-radius:4px;padding:6px;font-size:12px;width:19em;max-width:100%}
.card img{image-rendering:pixelated;width:84px;height:84px;float:left;margin:0 6px 4px 0}
.card table{width:100%;margin:0;clear:both}.card td,.card th{font-size:11px;padding:1px 3px;overflow-wrap:normal}
.tie{background:#fff6d6}.real{background:#fde8e8}
nav a{margin-right:1em}
"""


def _png(image: np.ndarray) -> str | None:
    """An input as a PNG data URL when it is an image (H, W), (H, W, 1) or (H, W, 3); else None."""
    from PIL import Image

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (1, 3):
        img = img[..., 0] if img.shape[-1] == 1 else img
    if img.ndim not in (2, 3) or min(img.shape[:2]) < 2:
        return None
    pil = Image.fromarray(np.clip(np.asarray(img, np.float32), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histogram_svg(counts: list[int], width: int = 180, height: int = 50) -> str:
    if not counts or not sum(counts):
        return ""
    bar = width / len(counts)
    top = max(counts)
    names = ["0"] + [f"1e{int(e)}" for e in HIST_EDGES[1:-1]] + ["inf"]
    parts = [f'<svg class="hist" viewBox="0 0 {width} {height + 12}" role="img" '
             f'aria-label="histogram of |differences|, log10 bins">']
    for i, c in enumerate(counts):
        h = 0 if c == 0 else max(1.0, height * (np.log1p(c) / np.log1p(top)))
        parts.append(f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 0.5):.1f}" height="{h:.1f}" '
                     f'fill="#4a7bd0"><title>&lt; {names[min(i + 1, len(names) - 1)]}: {c}</title></rect>')
    parts.append(f'<text x="0" y="{height + 10}" font-size="9">0</text>'
                 f'<text x="{width / 2 - 10:.0f}" y="{height + 10}" font-size="9">1e-6</text>'
                 f'<text x="{width - 16}" y="{height + 10}" font-size="9">≥1</text></svg>')
    return "".join(parts)


def _bars_svg(rows: list[dict], width: int = 600) -> str:
    """A horizontal bar per ``{"name", "value"}`` on a log10 scale (a locate chart: error per node)."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return "<p class='muted'>No values to chart.</p>"
    values = np.array([max(float(r["value"]), 1e-30) for r in rows])
    lo, hi = np.floor(np.log10(values.min())), np.ceil(np.log10(values.max())) + 1e-9
    label_w, row_h = 200, 16
    parts = [f'<svg viewBox="0 0 {width} {row_h * len(rows) + 16}" style="width:100%;max-width:{width}px" '
             f'role="img" aria-label="locate chart">']
    for i, (r, v) in enumerate(zip(rows, values)):
        w = (width - label_w - 60) * (np.log10(v) - lo) / max(hi - lo, 1e-9)
        y = i * row_h
        parts.append(f'<text x="{label_w - 4}" y="{y + 12}" font-size="11" text-anchor="end">'
                     f'{html.escape(str(r["name"]))[:32]}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{max(w, 1):.1f}" height="{row_h - 4}" fill="#d0704a">'
                     f'<title>{html.escape(str(r["name"]))}: {v:.3g}</title></rect>'
                     f'<text x="{label_w + max(w, 1) + 4:.1f}" y="{y + 12}" font-size="10">{v:.2g}</text>')
    parts.append(f'<text x="{label_w}" y="{row_h * len(rows) + 12}" font-size="9">1e{int(lo)} (log scale)</text></svg>')
    return "".join(parts)


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(("<tr class='why'>" if "colspan" in row[0] else "<tr>")
                   + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def _output_of(c) -> str:
    name = getattr(c, "output", None) or (c.checks.get("name") or {}).get("reference")
    return str(name) if name else ""


def _labels(result, model: str) -> list[str] | None:
    for m in result.models:
        if m.get("name") == model:
            labels = (m.get("spec") or {}).get("labels")
            return [str(x) for x in labels] if labels else None
    return None


def _rows_of(outputs, model: str, label: str, index: int, output: str | None = None):
    """The raw output row of one backend for input ``index`` (None where it did not run that input).
    A backend's ``outputs`` is one array, or a dict of them by output name (models with several)."""
    run = (outputs or {}).get((model, label))
    if run is None:
        return None
    arrays = run["outputs"]
    if isinstance(arrays, dict):
        arrays = arrays.get(output) if output in arrays else (next(iter(arrays.values())) if len(arrays) == 1 else None)
        if arrays is None:
            return None
    where = np.flatnonzero(np.asarray(run["indices"]) == index)
    if not len(where):
        return None
    row = np.asarray(arrays)[where[0]]
    return row if row.ndim == 1 and row.size >= 2 else None


def _top(row: np.ndarray) -> tuple[int, float, float]:
    """(top class, its score, margin over the second)."""
    order = np.argsort(row)[::-1]
    return int(order[0]), float(row[order[0]]), float(row[order[0]] - row[order[1]])


def _card(result, inputs, outputs, c, index: int, near: bool) -> str:
    e = html.escape
    names = _labels(result, c.model)

    def name(k: int) -> str:
        return e(names[k]) if names and k < len(names) else str(k)

    img = ""
    images = getattr(inputs, "images", None)  # None: a model fed named arrays, not pictures
    if images is not None and 0 <= index < len(images):
        url = _png(images[index])
        img = f"<img src='{url}' alt='input {index}'>" if url else ""
    label, kind = "", ""
    if inputs is not None and index < len(inputs.labels):
        label = f"label {name(int(inputs.labels[index]))}" if inputs.labels[index] >= 0 else ""
        kind = inputs.kinds[index]
    tag = "<b>near tie</b>" if near else "<b>disagreement</b>"  # margins: top score minus the runner-up's
    head = f"{img}<div>#{index} {e(kind)}<br>{label}<br>{tag}</div>"
    output = getattr(c, "output", None)
    ref = _rows_of(outputs, c.model, c.reference, index, output)
    cand = _rows_of(outputs, c.model, c.candidate, index, output)
    if ref is not None and cand is not None:
        rt, rs, rm = _top(ref)
        ct, cs, cm = _top(cand)
        rows = [[f"<td title='{e(c.reference)}'>reference</td>", name(rt), f"<td class='num'>{rs:.4g}</td>",
                 f"<td class='num'>{rm:.2e}</td>"],
                [f"<td title='{e(c.candidate)}'>candidate</td>", name(ct), f"<td class='num'>{cs:.4g}</td>",
                 f"<td class='num'>{cm:.2e}</td>"]]
        body = _table(["", "top class", "score", "margin"], rows)
        body += (f"<div class='muted'>reference's margin between {name(rt)} and {name(ct)}: "
                 f"{float(ref[rt] - ref[ct]):.2e}</div>")
    else:  # a page built without the raw outputs: the picks the result keeps
        picks = next((d["predictions"] for d in result.disagreements
                      if d["model"] == c.model and d["index"] == index), {})
        body = "<br>".join(f"{e(k)}: {name(v)}" for k, v in picks.items() if k in (c.reference, c.candidate))
    return f"<div class='card {'tie' if near else 'real'}'>{head}{body}</div>"


def _float64_cell(c) -> str:
    """"1.3x as far from float64 (3.1e-05 vs 2.4e-05)": the candidate's error over the reference's own."""
    f = c.float64 or {}
    if not f:
        return "-"
    times = "exact" if f["ratio"] is None else f"{f['ratio']:.3g}x"
    return html.escape(f"{times} as far from float64 ({f['candidate_error']:.2g} vs {f['reference_error']:.2g})")


def _comparisons(result, comps, inputs, outputs) -> list[str]:
    e = html.escape
    rows = []
    for c in comps:
        v = "PASS" if c.passed else "FAIL"
        agree = "-" if c.top1_agreement is None else f"{c.top1_agreement:.2%} ({c.top1_agree_count}/{c.n})"
        probes = " (probes)" if c.probes else ""
        rows.append([f"<td class='label'>{e(c.candidate)}{probes}</td>", e(c.device), f"<td class='num'>{c.n}</td>",
                     f"<td class='num'>{num(c.max_abs_diff)}<br>rel {num(c.max_rel_diff)}<br>"
                     f"p99 {num(c.p99_abs_diff)}</td>",
                     f"<td class='w'>{cosine_snr(c.cosine_min, c.cosine_median, c.snr_db)}<br>{_float64_cell(c)}</td>",
                     f"<td class='w'>{num(c.atol, '{:.2g}')} / {num(c.rtol, '{:g}')}<br>{e(c.tolerance_source)}<br>"
                     f"passes at {num(c.smallest_atol)} / {num(c.smallest_rtol)}</td>",
                     f"<td class='w'>{agree}</td>",
                     f"<td class='num'>{len(c.disagreements) - len(c.near_ties)} / {len(c.near_ties)}</td>",
                     _histogram_svg(c.histogram), f"<td class='{v}'>{v}</td>"])
        if c.reasons:  # why, on a row of its own under the numbers
            rows.append([f"<td colspan='10' class='why'>{e(c.candidate)}: {e('; '.join(c.reasons))}</td>"])
    ref = comps[0].reference if comps else ""
    # Ten columns: the page must fit an 800 px window (tests/test_report_page.py measures it in Chromium).
    out = [f"<p>Against the reference <b>{e(ref)}</b>.</p>",
           _table(["candidate", "device", "n", "max abs, rel, p99", "cosine low/median, SNR; vs float64",
                   "atol / rtol", "top-1", "disagree / near ties", "|diff| histogram", "verdict"], rows, "comparisons")]
    for c in comps:
        if not c.disagreements:
            continue
        ties = set(c.near_ties)
        real = [i for i in c.disagreements if i not in ties]
        shown = (real + sorted(ties))[:MAX_CARDS]
        out.append(f"<h4>{e(c.candidate)} vs {e(c.reference)}: {len(real)} disagreements, {len(ties)} near ties</h4>"
                   "<div class='cards'>" + "".join(_card(result, inputs, outputs, c, i, i in ties) for i in shown)
                   + "</div>")
        if len(c.disagreements) > len(shown):
            out.append(f"<p class='muted'>... and {len(c.disagreements) - len(shown)} more (the JSON lists all).</p>")
    return out


def _backends(backends) -> str:
    e = html.escape
    keys = [k for k in TIMING_ORDER if any(k in (b.seconds or {}) for b in backends)]
    keys += sorted({k for b in backends for k in (b.seconds or {})} - set(keys))
    rows = []
    for b in backends:
        acc = "-" if b.accuracy is None else f"{b.accuracy:.4f} ({b.correct}/{b.n_labelled})"
        status = f"<b>{e(b.status)}</b>" + (f": {e(b.reason or '')}" if b.reason else "")
        if b.error_tail:
            status += f"<details><summary>error output</summary><pre>{e(b.error_tail)}</pre></details>"
        placement = ", ".join(f"{e(k.replace('ExecutionProvider', ''))}: {v}" for k, v in (b.placement or {}).items())
        details = "<br>".join(f"{e(str(k))}: {e(str(v))}" for k, v in (b.details or {}).items())
        rows.append([f"<td class='label'>{e(b.label)}</td>", e(b.role), e(b.device), status,
                     f"<td class='num'>{b.batch_size}</td>",
                     f"<td class='num'>{b.n}</td>", acc]
                    + [f"<td class='num'>{num((b.seconds or {}).get(k), '{:.2f}')}</td>" for k in keys]
                    + [placement or "-", f"<small>{details}</small>" if details else "-"])
    return _table(["backend", "role", "device", "status", "batch", "n", "accuracy"] + [f"{k} s" for k in keys]
                  + ["nodes per provider", "details"], rows, "backends")


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            items += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return items or [(prefix, "-")]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [(f"{prefix}[{i}]", ", ".join(f"{k}: {x}" for k, x in v.items())) for i, v in enumerate(value)]
    if isinstance(value, list):
        return [(prefix, ", ".join(map(str, value)) or "-")]
    return [(prefix, "-" if value is None else str(value))]


def _environment(env: dict) -> str:
    return _table(["", "value"], [[html.escape(k), html.escape(v)] for k, v in _flatten(env)], "environment")


def html_page(result, inputs=None, outputs=None, locate=None) -> str:
    """The page. ``inputs`` (:class:`~onnxparity.inputs.Inputs`) gives the images, ``outputs`` (as :func:`run` returns
    them) the top classes and margins; ``locate``: a chart for the locate section, either an SVG
    or HTML fragment the toolkit made, or rows ``[{"name": ..., "value": ...}]`` drawn as bars."""
    e = html.escape
    verdict = "PASSED" if result.passed else "FAILED"
    cls = "PASS" if result.passed else "FAIL"
    s = result.inputs or {}
    models = list(dict.fromkeys([m["name"] for m in result.models] + [b.model for b in result.backends]))
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
           f"<title>onnxparity: parity {verdict}</title><style>{CSS}</style></head><body>",
           f"<h1>Parity <span class='{cls}'>{verdict}</span></h1>",
           f"<p>{e(str(s.get('n_digits', s.get('n', '?'))))} inputs from {e(str(s.get('source', '?')))}"
           + (f" + {s['n_synthetic']} synthetic edge cases" if s.get("n_synthetic") else "")
           + f"; {result.seconds:.1f} s; {e(result.created)}</p>",
           "<nav>" + "".join(f"<a href='#model-{e(m)}'>{e(m)}</a>" for m in models)
           + ("<a href='#locate'>locate</a>" if locate is not None else "")
           + "<a href='#environment'>environment</a></nav>"]
    problems = list(getattr(result, "unmet", [])) + [f"{b.model}: {b.label} failed: {b.reason}"
                                                      for b in result.backends if b.status == "failed"]
    if problems:
        out.append("<ul class='why'>" + "".join(f"<li>{e(p)}</li>" for p in problems) + "</ul>")
    summary = []
    for m in models:
        comps = [c for c in result.comparisons if c.model == m]
        bks = [b for b in result.backends if b.model == m]
        worst = max((c.max_abs_diff for c in comps if c.max_abs_diff is not None), default=None)
        summary.append([f"<a href='#model-{e(m)}'>{e(m)}</a>", f"<td class='num'>{sum(c.passed for c in comps)}</td>",
                        f"<td class='num'>{sum(not c.passed for c in comps)}</td>",
                        f"<td class='num'>{sum(b.status == 'ok' for b in bks)}</td>",
                        f"<td class='num'>{sum(b.status == 'unavailable' for b in bks)}</td>",
                        f"<td class='num'>{sum(b.status == 'failed' for b in bks)}</td>",
                        f"<td class='num'>{num(worst)}</td>"])
    out.append(_table(["model", "passed", "failed", "backends run", "not run", "crashed", "worst max abs"],
                      summary, "summary"))
    for m in models:
        out.append(f"<section class='model' id='model-{e(m)}'><h2>{e(m)}</h2>")
        comps = [c for c in result.comparisons if c.model == m]
        groups: dict[str, list] = {}
        for c in comps:
            groups.setdefault(_output_of(c), []).append(c)
        for name, group in groups.items():
            out.append(f"<section class='output'><h3>Output {e(name) or '(unnamed)'}</h3>")
            out += _comparisons(result, group, inputs, outputs)
            out.append("</section>")
        if not comps:
            out.append("<p class='muted'>No comparison: no candidate ran (see the backends).</p>")
        out.append("<h3>Backends</h3>" + _backends([b for b in result.backends if b.model == m]) + "</section>")
    if locate is not None:
        chart = locate if isinstance(locate, str) else _bars_svg(list(locate))
        out.append(f"<section id='locate'><h2>Locate</h2>{chart}</section>")
    out.append(f"<section id='environment'><h2>Environment</h2>{_environment(result.environment or {})}</section>")
    out.append("</body></html>\n")
    return "".join(out)


def write_html(path: str | Path, result, inputs=None, outputs=None, locate=None) -> Path:
    return views.write_html(path, html_page(result, inputs, outputs, locate))
