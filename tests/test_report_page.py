"""The HTML report a person reads: built from a real failing run, read back, and rendered in Chromium.

A copy of the PyTorch Net's ONNX file with perturbed weights disagrees with the original on
some digits, so the page has disagreements with images, margins, timings and the environment.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from onnxparity.inputs import load_digits_inputs as load_inputs
from onnxparity.parity import Target, run
from onnxparity.parity.page import html_page, write_html

pytestmark = pytest.mark.slow  # converts a model and runs a real matrix

CHROMIUM = "/usr/bin/chromium"
LOCATE = [{"name": "/conv1/Conv", "value": 2e-7}, {"name": "/conv2/Conv", "value": 3e-5},
          {"name": "/fc2/Gemm", "value": 4.1}]


@pytest.fixture(scope="module")
def failing_run(torch_pair, tmp_path_factory):
    folder, _good, broken = torch_pair
    inputs = load_inputs(None, 40)
    result, outputs = run([Target(str(folder), str(broken))], inputs, providers="cpu", batch1_limit=15)
    assert not result.passed and any(c.disagreements for c in result.comparisons)
    page = tmp_path_factory.mktemp("page") / "parity.html"
    write_html(page, result, inputs, outputs, locate=LOCATE)
    return result, inputs, outputs, page


def test_page_shows_tables_not_reprs(failing_run):
    result, _inputs, _outputs, page = failing_run
    text = page.read_text()
    assert "{'start'" not in text and "'packages':" not in text  # no Python reprs
    for header in ("<th>start s</th>", "<th>infer s</th>", "<th>wall s</th>"):
        assert header in text
    assert "class='environment'" in text and "packages.onnxruntime" in text
    assert "Output log_probabilities" in text
    assert "vs float64</th>" in text and "float64-calibrated" in text  # the calibrated verdict, per row
    ratio = result.comparisons[0].float64["ratio"]
    assert f"{ratio:.3g}x as far from float64" in text
    ref = next(b for b in result.backends if b.label == "torch:cpu")
    assert f"{ref.seconds['infer']:.2f}" in text


def test_every_disagreement_has_its_image_and_both_top_classes(failing_run):
    result, inputs, outputs, page = failing_run
    text = page.read_text()
    shown = sum(min(len(c.disagreements), 24) for c in result.comparisons)
    assert text.count("class='card ") == shown
    assert text.count("<img src='data:image/png;base64,") == shown
    c = next(c for c in result.comparisons if c.disagreements)
    i = c.disagreements[0]
    ref = outputs["torch_net", c.reference]
    row = ref["outputs"]["log_probabilities"][list(ref["indices"]).index(i)]
    top, second = sorted(row)[::-1][:2]
    assert f"{top - second:.2e}" in text  # the reference's margin, from its own output


def test_sections_follow_outputs_when_comparisons_name_them(failing_run):
    result, inputs, outputs, _page = failing_run
    named = copy.deepcopy(result)
    for k, c in enumerate(named.comparisons):
        c.output = ["probabilities", "embedding"][k % 2]  # the field issue 10 adds
    text = html_page(named, inputs, outputs)
    assert re.findall(r"<h3>Output (\w+)</h3>", text) == ["probabilities", "embedding"]


def test_outputs_held_by_name_give_the_same_margins(failing_run):
    """Backends of models with several outputs hold a dict of arrays by output name (issue 10)."""
    result, inputs, outputs, page = failing_run
    named_result = copy.deepcopy(result)
    for c in named_result.comparisons:
        c.output = "log_probabilities"
    named = {key: {**run, "outputs": {**run["outputs"], "other": run["outputs"]["log_probabilities"] * 0}}
             for key, run in outputs.items()}
    cards = re.compile(r"<div class='card .*?</div></div>", re.S)
    plain = cards.findall(html_page(result, inputs, outputs))
    assert plain and cards.findall(html_page(named_result, inputs, named)) == plain
    assert "reference's margin" in plain[0]


def test_a_page_from_saved_json_alone_still_renders(failing_run):
    from onnxparity.parity.result import ParityResult

    result, *_ = failing_run
    text = html_page(ParityResult.from_dict(result.to_dict()))
    assert "class='card " in text and "<img" not in text and "Locate" not in text


def _chromium_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


MEASURE = """() => ({
    width: document.documentElement.clientWidth,
    scroll: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll('table')].map(t => {
        const r = t.getBoundingClientRect(); return {cls: t.className, left: r.left, right: r.right}; }),
    images: [...document.querySelectorAll('.card img')].map(i => i.complete && i.naturalWidth > 0),
    sections: [...document.querySelectorAll('section.model h3')].map(h => h.textContent),
    locate: document.querySelectorAll('#locate svg rect').length,
})"""


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
@pytest.mark.parametrize("width", [1280, 800])
def test_page_renders_in_chromium_and_no_table_overflows(failing_run, width):
    from playwright.sync_api import sync_playwright

    _result, _inputs, _outputs, page_path = failing_run
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_path.as_uri(), timeout=15000)
            seen = page.evaluate(MEASURE)
        finally:
            browser.close()
    assert not errors, errors
    assert "Output log_probabilities" in seen["sections"] and "Backends" in seen["sections"]
    assert seen["images"] and all(seen["images"])
    assert seen["locate"] == len(LOCATE)
    assert seen["scroll"] <= seen["width"], seen
    overflowing = [t for t in seen["tables"] if t["right"] > seen["width"] + 0.5 or t["left"] < 0]
    assert not overflowing, (width, overflowing)
