"""Views of a :class:`~onnxparity.locate.result.LocateResult`: the console table and one HTML page
with a per-layer chart of the error (log scale, both modes) in plain inline SVG."""

from __future__ import annotations

import html
import math
from pathlib import Path

from onnxparity import views
from onnxparity.locate.result import LocateResult
from onnxparity.views import num, text_table

NODE_CHARS = 44


def _db(figures: dict | None) -> str:
    if figures is None:
        return "-"
    return "exact" if figures["exact"] else num(figures["sqnr_db"], "{:.1f}")


def _nodes(names: list[str]) -> str:
    if not names:
        return "-"
    first = names[-1] if len(names[-1]) <= NODE_CHARS else "..." + names[-1][-(NODE_CHARS - 3):]
    return first + (f" (+{len(names) - 1})" if len(names) > 1 else "")


def _layer_name(layer) -> str:
    return layer.original_layer + (f" (+{', '.join(layer.covers)})" if layer.covers else "")


def table(result: LocateResult) -> str:
    """One row per compared layer in execution order, then what has no ONNX node, then the verdict.

    A layer DEPARTS when it is wrong by itself (isolated mode); it ``inherits`` when only the error
    carried in from the layers before it shows (cumulative mode)."""
    header = ("#", "layer", "kind", "ONNX nodes", "shape", "cumul. max abs", "SQNR dB", "isol. max abs", "max rel",
              "SQNR dB", "verdict")
    rows = []
    first = result.first_divergence
    for layer in result.layers:
        cum, iso = layer.cumulative, layer.isolated
        verdict = layer.verdict.upper() if layer.verdict == "departs" else layer.verdict
        if first and first["original_layer"] == layer.original_layer:
            verdict += " <- first"
        rows.append((str(layer.order), _layer_name(layer), layer.kind, _nodes(layer.onnx_nodes),
                     "x".join(str(d) for d in layer.shape), num(cum and cum["max_abs_diff"]), _db(cum),
                     num(iso and iso["max_abs_diff"]), num(iso and iso["max_rel_diff"]), _db(iso), verdict))
    lines = text_table(header, rows)
    for layer in result.layers:
        if layer.layout not in (None, "same"):
            lines.append(f"layout   {layer.original_layer}: {layer.layout}" + (" (chosen by the data)" if layer.layout_by_data else ""))
        if layer.note:
            lines.append(f"note     {layer.original_layer}: {layer.note}")
    for item in result.not_in_onnx:
        lines.append(f"no node  {item['original_layer']} ({item['kind']}): {item['reason']}")
    s = result.inputs
    lowered = f" ({s['batch_size_lowered']})" if s.get("batch_size_lowered") else ""
    lines.append(f"inputs: {s['source']}, batches of {s['batch_size']}{lowered}; tolerance atol {result.tolerance['atol']:g} "
                 f"x max(1, peak |value|) + rtol {result.tolerance['rtol']:g}; {result.seconds:.1f} s")
    if first:
        lines.append(f"first divergence ({first['mode']}): {first['original_layer']}"
                     + (f" (with {', '.join(first['covers'])})" if first["covers"] else "")
                     + f" at ONNX {', '.join(first['onnx_nodes'])}, max abs diff {num(first['max_abs_diff'], '{:.3g}')}")
    else:
        lines.append("no layer departs beyond tolerance")
    if len(result.worst) > 1:
        lines.append("loses most by itself (isolated SQNR): " + ", ".join(
            f"{w['original_layer']} ({w['kind']}) {w['sqnr_db']:.1f} dB" for w in result.worst))
    return "\n".join(lines)


def _chart(result: LocateResult) -> str:
    """Max abs diff per layer on a log scale, cumulative and isolated; the first divergence shaded."""
    layers = result.layers
    if not layers:
        return ""
    series = {mode: [getattr(layer, mode)["max_abs_diff"] if getattr(layer, mode) else None for layer in layers]
              for mode in ("cumulative", "isolated")}
    values = [v for vs in series.values() for v in vs if v]
    low = math.floor(math.log10(min(values))) if values else -8
    high = max(math.ceil(math.log10(max(values))) if values else 0, low + 1)
    floor = low - 1  # exact zeros sit on this line
    step, left, top, height = max(14, min(70, 900 // len(layers))), 60, 20, 220
    width = left + step * len(layers) + 20
    label_room = 130

    def y(v) -> float:
        exponent = floor if not v else math.log10(v)
        return top + height * (high - exponent) / (high - floor)

    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + label_room}" '
             'role="img" aria-label="max abs diff per layer, log scale" font-family="sans-serif" font-size="10">']
    first = result.first_divergence
    for i, layer in enumerate(layers):
        if first and layer.original_layer == first["original_layer"]:
            parts.append(f'<rect x="{left + i * step - step / 2:.1f}" y="{top}" width="{step}" height="{height}" '
                         'fill="#f6c2c2"><title>first divergence</title></rect>')
    for exponent in range(floor, high + 1):
        label = "exact" if exponent == floor else f"1e{exponent}"
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(10.0 ** exponent if exponent > floor else 0):.1f}" '
                     f'y2="{y(10.0 ** exponent if exponent > floor else 0):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y(10.0 ** exponent if exponent > floor else 0) + 3:.1f}" '
                     f'text-anchor="end">{label}</text>')
    colors = {"cumulative": "#4a7bd0", "isolated": "#e07b00"}
    for mode, vs in series.items():
        points = [(left + i * step, y(v)) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            parts.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
                colors[mode], " ".join(f"{px:.1f},{py:.1f}" for px, py in points)))
        for i, v in enumerate(vs):
            if v is not None:
                parts.append(f'<circle cx="{left + i * step}" cy="{y(v):.1f}" r="3" fill="{colors[mode]}">'
                             f'<title>{e(layers[i].original_layer)} ({mode}): {v:.3g}</title></circle>')
    for i, layer in enumerate(layers):
        x = left + i * step
        parts.append(f'<text x="{x}" y="{top + height + 8}" transform="rotate(60 {x} {top + height + 8})">'
                     f'{e(layer.original_layer[:24])}</text>')
    parts.append(f'<text x="{left}" y="12" fill="{colors["cumulative"]}">● cumulative</text>'
                 f'<text x="{left + 90}" y="12" fill="{colors["isolated"]}">● isolated</text></svg>')
    return "".join(parts)


def html_page(result: LocateResult) -> str:
    e = html.escape
    first = result.first_divergence
    verdict = "no layer departs" if first is None else f"first divergence: {first['original_layer']} ({first['mode']})"
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>onnxparity locate: {e(verdict)}</title>",
           "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:left;vertical-align:top}"
           "tr.first{background:#fde8e8}.ok{color:#116611}.bad{color:#b00;font-weight:bold}"
           "small{color:#555}</style></head><body>",
           f"<h1>Locate: {e(verdict)}</h1>",
           f"<p>{e(result.original)} ({e(result.framework)}) against {e(result.onnx)}; {e(result.inputs['source'])}; "
           f"{result.seconds:.1f} s; {e(result.created)}</p>",
           "<h2>Max abs diff per layer (log scale)</h2>", _chart(result),
           "<p><small>cumulative: both run end to end from the same inputs (where the error grows); isolated: "
           "each layer's ONNX nodes fed the original's own inputs to that layer (which layer is wrong by itself)."
           "</small></p><h2>Layers</h2><table><tr><th>#</th><th>layer</th><th>kind</th><th>ONNX nodes</th>"
           "<th>shape</th><th>layout</th><th>cumulative max abs / rel / SQNR dB</th>"
           "<th>isolated max abs / rel / SQNR dB</th><th>verdict</th></tr>"]
    for layer in result.layers:
        is_first = first is not None and first["original_layer"] == layer.original_layer
        cells = []
        for figures in (layer.cumulative, layer.isolated):
            cells.append("-" if figures is None else
                         f"{num(figures['max_abs_diff'])} / {num(figures['max_rel_diff'])} / {_db(figures)}")
        extra = "".join(f"<br><small>{e(label)}: {e(', '.join(items))}</small>" for label, items in
                        (("fused", layer.covers), ("same output as", layer.aliases), ("isolated copy also runs", layer.isolated_via))
                        if items)
        ok = layer.verdict != "departs"
        out.append(f"<tr class='{'first' if is_first else ''}'><td>{layer.order}</td><td>{e(layer.original_layer)}{extra}"
                   f"{'<br><small>' + e(layer.note) + '</small>' if layer.note else ''}</td><td>{e(layer.kind)}</td>"
                   f"<td>{'<br>'.join(e(n) for n in layer.onnx_nodes)}</td><td>{e(str(layer.shape))}</td>"
                   f"<td>{e(layer.layout or 'none fits')}{' (by data)' if layer.layout_by_data else ''}</td>"
                   f"<td>{cells[0]}</td><td>{cells[1]}</td>"
                   f"<td class='{'ok' if ok else 'bad'}'>{layer.verdict}</td></tr>")
    out.append("</table>")
    if result.not_in_onnx:
        out.append("<h2>Layers with no ONNX node</h2><ul>")
        out += [f"<li>{e(item['original_layer'])} ({e(item['kind'])}): {e(item['reason'])}</li>" for item in result.not_in_onnx]
        out.append("</ul>")
    tol = result.tolerance
    out.append(f"<p><small>Tolerance: |onnx - original| &lt;= atol {tol['atol']:g} x max(1, peak |original|) + "
               f"rtol {tol['rtol']:g} x |original|, per element.</small></p></body></html>\n")
    return "".join(out)


def write_html(path: str | Path, result: LocateResult) -> Path:
    return views.write_html(path, html_page(result))
