"""The zoo's reports, each a view of a :class:`~onnxparity.zoo.results.ZooResult`: JUnit XML for CI
systems, a Markdown summary for a pull request, an HTML index linking each model's own parity
page, and the console table.

JUnit: one ``testsuite`` per model, one ``testcase`` per (backend, output) comparison (the
out-of-domain probes stay in the model's page), a skipped one per backend that cannot run there,
``verdict`` where the model failed for a reason no comparison carries (a required device that did
not run, probes under ``strict_probes``), ``parity`` for a model that could not be checked (an
error) or was cancelled (skipped), and ``regression`` per model when there is a baseline.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from onnxparity import views
from onnxparity._io import write_text
from onnxparity.views import num
from onnxparity.zoo.results import ModelRun, ZooResult

VERDICT = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "cancelled": "CANCELLED"}
_NOT_XML = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_reports(result: ZooResult, out: str | Path) -> None:
    """``results.json``, ``junit.xml``, ``summary.md`` and ``index.html`` in ``out``."""
    out = Path(out)
    result.save(out / "results.json")
    write_text(out / "junit.xml", junit_xml(result))
    write_text(out / "summary.md", summary_markdown(result))
    views.write_html(out / "index.html", index_html(result))


def headline(result: ZooResult) -> str:
    counts = result.counts()
    extra = ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != "passed")
    return f"{counts['passed']} of {len(result.models)} models passed" + (f" ({extra})" if extra else "")


def worst(m: ModelRun) -> str:
    """The deciding comparison nearest its tolerance: "3.1e-06 of 1.0e-05 (onnxruntime:cpu:b1)"."""
    comps = [c for c in (m.result.comparisons if m.result else []) if not c.probes and c.max_abs_diff is not None]
    if not comps:
        return "-"
    c = max(comps, key=lambda c: c.max_abs_diff / c.atol if c.atol else float("inf"))
    return f"{num(c.max_abs_diff)} of {num(c.atol)} ({c.candidate})"


# -- JUnit ----------------------------------------------------------------------------------------
def _text(value) -> str:
    return _NOT_XML.sub("", str(value))


def _case(suite: ET.Element, model: ModelRun, name: str, seconds=None, *, failure: str | None = None,
          error: str | None = None, skipped: str | None = None, details: str = "") -> None:
    case = ET.SubElement(suite, "testcase", classname=_text(model.name), name=_text(name),
                         time=f"{seconds or 0:.3f}")
    for tag, message, kind in (("failure", failure, "parity"), ("error", error, "error"), ("skipped", skipped, None)):
        if message is not None:
            node = ET.SubElement(case, tag, message=_text(message), **({"type": kind} if kind else {}))
            node.text = _text(details) if details else None


def _model_cases(suite: ET.Element, m: ModelRun, with_baseline: bool) -> None:
    if m.status == "cancelled":
        _case(suite, m, "parity", skipped="cancelled before it finished")
    elif m.result is None:
        _case(suite, m, "parity", m.seconds, error=m.reason or m.status)
    else:
        runs = {b.label: b for b in m.result.backends}
        deciding = [c for c in m.result.comparisons if not c.probes]
        for c in deciding:
            run = runs.get(c.candidate)
            why = "; ".join(c.reasons) if not c.passed else None
            _case(suite, m, c.candidate + (f" [{c.output}]" if c.output else ""), (run.seconds or {}).get("wall") if run else None,
                  failure=why, details=(run.error_tail or "") if run and why else "")
        for b in m.result.backends:
            if b.status == "unavailable":
                _case(suite, m, b.label, skipped=b.reason or "not available")
        if not m.result.passed and all(c.passed for c in deciding):
            _case(suite, m, "verdict", failure="; ".join(m.result.failed()) or "parity failed")
    if with_baseline:
        _case(suite, m, "regression", failure="; ".join(m.regressions) if m.regressions else None)


def junit_xml(result: ZooResult) -> str:
    """The results as JUnit XML (what Jenkins, GitLab and GitHub's test reporters read)."""
    root = ET.Element("testsuites", name="onnxparity zoo", time=f"{result.seconds:.3f}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for m in result.models:
        suite = ET.SubElement(root, "testsuite", name=_text(m.name), timestamp=result.created,
                              time=f"{m.seconds or 0:.3f}")
        properties = ET.SubElement(suite, "properties")
        for key, value in [("manifest", m.where), ("node", m.node or "")] + [("tag", t) for t in m.tags]:
            ET.SubElement(properties, "property", name=key, value=_text(value))
        _model_cases(suite, m, result.baseline is not None)
        cases = suite.findall("testcase")
        counts = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
                  "errors": sum(c.find("error") is not None for c in cases),
                  "skipped": sum(c.find("skipped") is not None for c in cases)}
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
    for key, n in totals.items():
        root.set(key, str(n))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- Markdown and the console ---------------------------------------------------------------------
def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(result: ZooResult) -> str:
    """A summary fit for a pull request's comment: the table, then the regressions and failures."""
    rows = [(_md(m.name), VERDICT[m.status] + (" (regression)" if m.regressions else ""), _md(worst(m)),
             _md(", ".join(m.tags) or "-"), num(m.seconds, "{:.1f}"),
             f"[page]({m.report})" if m.report else "-") for m in result.models]
    lines = [f"## onnxparity zoo: {headline(result)}", ""]
    lines += views.text_table(("model", "verdict", "worst max abs error (of its tolerance)", "tags", "seconds", "report"),
                              rows, markdown=True)
    regressed = [m for m in result.models if m.regressions]
    if result.baseline is not None:
        lines += ["", f"### Regressions against `{_md(result.baseline)}` (errors grown more than {result.factor:g}x)", ""]
        lines += [f"- **{_md(m.name)}**: {_md('; '.join(m.regressions))}" for m in regressed] or ["None."]
    failing = [m for m in result.models if m.status in ("failed", "error")]
    if failing:
        lines += ["", "### Failures", ""] + [f"- **{_md(m.name)}** ({m.status}): {_md(m.reason or '')}" for m in failing]
    lines += ["", f"{len(result.models)} models in {result.seconds:.1f} s on {len(result.cluster.get('nodes', []))} "
                  f"Ray node(s); {result.created}"]
    return "\n".join(lines) + "\n"


def table(result: ZooResult) -> str:
    """The console view: one row per model, then why each failed or regressed."""
    rows = [(m.name, VERDICT[m.status], worst(m), num(m.seconds, "{:.1f}"), (m.node or "-")[:8])
            for m in result.models]
    lines = views.text_table(("model", "verdict", "worst max abs error (of its tolerance)", "seconds", "node"), rows)
    lines += [f"{VERDICT[m.status]:<9} {m.name}: {m.reason}" for m in result.models if m.status in ("failed", "error")]
    lines += [f"REGRESSED {m.name}: {'; '.join(m.regressions)}" for m in result.models if m.regressions]
    lines.append(f"zoo: {headline(result)} in {result.seconds:.1f} s")
    return "\n".join(lines)


# -- HTML -----------------------------------------------------------------------------------------
def index_html(result: ZooResult) -> str:
    """The zoo's page: every model with its verdict, linking its own parity page; the warm workers."""
    from onnxparity.parity.page import CSS

    e = html.escape
    cls = "PASS" if result.passed else "FAIL"
    rows = []
    for m in result.models:
        name = f"<a href='{e(m.report)}'>{e(m.name)}</a>" if m.report else e(m.name)
        why = "; ".join(m.regressions) if m.regressions else (m.reason or "") if m.status != "passed" else ""
        rows.append(f"<tr><td>{name}</td><td class='{'PASS' if m.status == 'passed' else 'FAIL'}'>{VERDICT[m.status]}"
                    + (" (regression)" if m.regressions else "") + f"</td><td>{e(worst(m))}</td>"
                    f"<td class='why'>{e(why)}</td><td>{e(', '.join(m.tags))}</td><td>{e(m.where)}</td>"
                    f"<td class='num'>{num(m.seconds, '{:.1f}')}</td><td>{e((m.node or '-')[:8])}</td></tr>")
    workers = "".join(f"<tr><td>{e(w['kind'])}</td><td>{e(w['node'][:8])}</td><td class='num'>{w['models']}</td>"
                      f"<td class='num'>{w['calls']}</td><td class='num'>{w['processes']}</td>"
                      f"<td class='num'>{w['ended_early']}</td><td class='num'>{num(w['peak_rss_mb'], '{:.0f}')}</td></tr>"
                      for w in result.workers)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>onnxparity zoo: {e(headline(result))}</title><style>{CSS}</style></head><body>"
            f"<h1>Zoo <span class='{cls}'>{e(headline(result))}</span></h1>"
            f"<p>{result.seconds:.1f} s on {len(result.cluster.get('nodes', []))} Ray node(s); {e(result.created)}"
            + (f"; regressions against {e(result.baseline)} (more than {result.factor:g}x)" if result.baseline else "")
            + "</p><table><tr><th>model</th><th>verdict</th><th>worst max abs error (of its tolerance)</th><th>why</th>"
            "<th>tags</th><th>manifest</th><th>seconds</th><th>node</th></tr>" + "".join(rows) + "</table>"
            + ("<h2>Warm workers</h2><table><tr><th>framework:device</th><th>node</th><th>models</th><th>calls</th>"
               "<th>processes</th><th>crashed or timed out</th><th>peak MiB</th></tr>" + workers + "</table>" if workers else "")
            + "</body></html>\n")
