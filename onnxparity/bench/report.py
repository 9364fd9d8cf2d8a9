"""Views of a bench report (``BenchReport.to_dict()``): text tables for the terminal, Markdown."""

from __future__ import annotations

from collections import defaultdict

from onnxparity.bench.results import ORT_BACKEND as ORT
from onnxparity.views import text_table


def _fmt_ips(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _groups(report: dict):
    by = defaultdict(list)
    for row in report["results"]:
        by[(row["model"], row["device"])].append(row)
    return by


def throughput_table(report: dict, markdown: bool = False, peak_gflops: float | None = None) -> list[str]:
    """Per model and device: images/s per backend by batch size, then ORT/native ratios."""
    lines: list[str] = []
    ratios = {(r["model"], r["device"], r["batch_size"], r["versus"]): r for r in report.get("ratios", [])}
    for (model, device), rows in _groups(report).items():
        backends = list(dict.fromkeys(r["backend"] for r in rows))
        batches = sorted({r["batch_size"] for r in rows})
        cell = {(r["backend"], r["batch_size"]): r for r in rows}
        others = [b for b in backends if b != ORT]
        header = ["batch"] + backends + [f"ORT/{b}" for b in others if ORT in backends] + ["fastest"]
        if peak_gflops:
            header.append(f"{ORT} % of peak")
        body = []
        for batch in batches:
            line = [str(batch)]
            for b in backends:
                r = cell.get((b, batch))
                line.append(_fmt_ips(r["images_per_second"]) if r else "-")
            if ORT in backends:
                for b in others:
                    q = ratios.get((model, device, batch, b))
                    line.append(f"{q['ratio']:.2f}x" if q else "-")
            line.append(_fastest(cell, ratios, model, device, batch, backends))
            if peak_gflops:
                r = cell.get((ORT, batch))
                line.append(f"{100 * r['gflops'] / peak_gflops:.0f}%" if r and r.get("gflops") else "-")
            body.append(line)
        title = (f"{model} on {device}: images/s (median of interleaved rounds); ORT/x: ratio of the same "
                 f"round, median; fastest: of every row, by those ratios")
        lines += ["", f"**{title}**" if markdown else title, *([""] if markdown else []), *text_table(header, body, numbers_right=True, markdown=markdown)]
    return lines


def _fastest(cell: dict, ratios: dict, model: str, device: str, batch: int, backends: list[str]) -> str:
    """Of every row measured at this batch size (plain ORT and OpenVINO included), the fastest by the
    same-round ratios to ORT (the robust comparison on a noisy machine): ORT when none of those is
    below 1, else the row it loses to most; without ORT, the highest median."""
    if (ORT, batch) in cell:
        mine = [ratios[k] for k in ratios if k[:3] == (model, device, batch)]
        losing = [q for q in mine if q["ratio"] < 1]
        return min(losing, key=lambda q: q["ratio"])["versus"] if losing else ORT
    ran = [cell[(b, batch)] for b in backends if (b, batch) in cell]
    return max(ran, key=lambda r: r["images_per_second"])["backend"] if ran else "-"


def latency_table(report: dict, markdown: bool = False) -> list[str]:
    lines: list[str] = []
    for (model, device), rows in _groups(report).items():
        header = ["backend", "batch", "median ms", "p90 ms", "first call ms", "load s", "compile s"]
        body = [[r["backend"], str(r["batch_size"]), f"{r['latency_ms_median']:.3f}", f"{r['latency_ms_p90']:.3f}",
                 f"{r['first_call_ms']:.1f}", f"{r['load_s']:.2f}",
                 f"{r['compile_s']:.2f}" if "compile_s" in r else "-"] for r in rows]
        title = f"{model} on {device}: latency per call; first call and load (session creation) apart"
        lines += ["", f"**{title}**" if markdown else title, *([""] if markdown else []), *text_table(header, body, numbers_right=True, markdown=markdown)]
    return lines


def render(report: dict, markdown: bool = False, peak_gflops: float | None = None) -> str:
    env = report["environment"]
    head = (f"onnxparity bench, {report['created']}: {env.get('cpu')} ({env.get('physical_cores')} cores), "
            f"Python {env.get('python')}, load average {env['load_average_before'][0]:.2f} before, "
            f"{env.get('load_average_after', [float('nan')])[0]:.2f} after")
    lines = [head]
    if env.get("cpu_flags"):
        lines.append(f"  CPU flags {' '.join(env['cpu_flags'])}" + (
            f"; int8 runs on {env['int8_kernels']['kernel']}" if env.get("int8_kernels") else ""))
    for m in report["models"]:
        flop = f", {m['mflop_per_image']:.1f} MFLOP/image" if m.get("mflop_per_image") else ""
        if (m.get("flops") or {}).get("mflop_matmul"):
            flop += f", {m['flops']['mflop_matmul']:.1f} of them in MatMul, Gemm, Conv and attention"
        lines.append(f"  {m['name']} ({m['framework']}{flop}): ONNX {m['onnx_source'] or m['onnx']}")
        rewrites = report.get("backends", {}).get(f"{m['name']}/{ORT}/cpu", {}).get("details", {}) \
            .get("settings", {}).get("graph_rewrites")
        if rewrites:
            lines.append(f"    {ORT} on cpu runs it with exact graph rewrites: {'; '.join(rewrites)}")
    lines += throughput_table(report, markdown, peak_gflops)
    lines += latency_table(report, markdown)
    if report["skipped"]:
        lines += ["", "not measured:"]
        lines += [f"  {s['model']} {s['backend']} on {s['device']}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines)
