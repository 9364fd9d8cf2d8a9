"""A pytest fixture for parity in the user's own tests: ``assert_parity`` that keeps its HTML report.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["onnxparity.pytest_plugin"]``; then::

    def test_export(assert_parity):
        assert_parity("runs/torch", "runs/torch/model.onnx", providers="cpu")

The fixture is :func:`onnxparity.testing.assert_parity` with the HTML report written into the
test's ``tmp_path`` (``parity.html``, then ``parity-2.html``...); a failing test names the file.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def assert_parity(tmp_path):
    from onnxparity.testing import assert_parity as check

    count = [0]

    def run(original, onnx, **kwargs):
        __tracebackhide__ = True
        count[0] += 1
        page = tmp_path / ("parity.html" if count[0] == 1 else f"parity-{count[0]}.html")
        kwargs.setdefault("html_path", page)
        try:
            return check(original, onnx, **kwargs)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n\nreport: {kwargs['html_path']}") from None

    return run
