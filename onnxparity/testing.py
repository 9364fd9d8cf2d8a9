"""Parity as an assertion, for the user's own test suite (after ``numpy.testing`` and ``torch.testing``).

    from onnxparity.testing import assert_parity

    def test_exported_model_matches(tmp_path):
        assert_parity("runs/torch", "runs/torch/model.onnx", providers="cpu", n=200)

:func:`assert_parity` runs the same matrix as ``onnxparity check`` (:func:`onnxparity.parity.check`)
and raises :class:`AssertionError` whose message is a table of the failing comparisons, so a
failing test says which backend and output differ and by how much. A pytest fixture that also
keeps the HTML report beside the test lives in :mod:`onnxparity.pytest_plugin`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["assert_parity", "failure_message"]


def assert_parity(original: str | Path, onnx: str | Path, *, inputs=None, data: str | None = None,
                  atol: float | None = None, rtol: float | None = None, min_agreement: float | None = None,
                  providers=None, **options):
    """Check that ``onnx`` predicts what ``original`` does on every backend here; return the result.

    ``inputs``: the model's inputs (a ``.npz`` of named arrays, where :func:`onnxparity.parity.check`
    takes them); ``data``: a digits dataset (default: the bundled held-out digits); ``atol``,
    ``rtol``, ``min_agreement``: override the per-device defaults (docs/parity.md); ``providers``:
    ONNX Runtime's execution providers ("cpu", "cpu,cuda"; default: all). Other ``options`` go to
    ``check`` as they are (``n``, ``gpu``, ``require_devices``, ``html_path``, ``timeout``...).

    Raises :class:`AssertionError` when parity fails: a comparison beyond tolerance, a backend
    that crashed, a required device that did not run, or nothing that could be compared.
    """
    __tracebackhide__ = True  # pytest: the failure points at the caller's line
    from onnxparity.parity import check

    if inputs is not None:
        options["inputs"] = inputs  # not every version of check takes them: it says so itself
    result = check(original, onnx, data=data, atol=atol, rtol=rtol, min_agreement=min_agreement,
                   providers=providers, **options)
    if not result.passed:
        raise AssertionError(failure_message(result))
    return result


def _output(c) -> str:
    """The output a comparison is about: its own field where comparisons carry one, else the name checked."""
    name = getattr(c, "output", None) or (c.checks.get("name") or {}).get("reference")
    return str(name) if name else "-"


def _agreement(c) -> str:
    if c.top1_agreement is None:
        return "-"
    ties = f", {len(c.near_ties)} near ties" if c.near_ties else ""
    return f"{c.top1_agreement:.2%} ({c.top1_agree_count}/{c.n}{ties})"


def failure_message(result) -> str:
    """The failing comparisons as a table (backend, output, max abs diff, agreement), then why each
    failed, then backends that crashed and required devices that did not run."""
    failing = [c for c in result.comparisons if not c.passed]
    crashed = [b for b in result.backends if b.status == "failed"]
    unmet = list(getattr(result, "unmet", []))
    lines = [f"Parity failed: {len(failing)} of {len(result.comparisons)} comparisons"
             + (f", {len(crashed)} backends crashed" if crashed else "")
             + (f", {len(unmet)} required devices not run" if unmet else "")]
    if failing:
        rows = [("model", "backend (vs reference)", "output", "max abs diff", "tolerance", "agreement")]
        for c in failing:
            diff = "-" if c.max_abs_diff is None else f"{c.max_abs_diff:.3g}"
            rows.append((c.model, f"{c.candidate} (vs {c.reference})", _output(c), diff,
                         f"atol {c.atol:g} rtol {c.rtol:g}", _agreement(c)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines.append("")
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows[:1]]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows[1:]]
        lines.append("")
        lines += [f"{c.model}: {c.candidate}: {'; '.join(c.reasons)}" for c in failing]
    lines += [f"{b.model}: {b.label} failed: {b.reason}" for b in crashed]
    lines += unmet
    if not result.comparisons and not crashed and not unmet:
        lines.append("nothing could be compared: no candidate backend ran "
                     + "(" + "; ".join(f"{b.label}: {b.reason}" for b in result.backends if b.reason) + ")")
    return "\n".join(lines)
