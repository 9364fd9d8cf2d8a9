"""Parity inside a user's tests (``onnxparity.testing``), ``--require-devices`` and progress on a terminal.

The PyTorch Net of the session, converted once here, and a copy of its ONNX file with perturbed
weights; real matrices on the CPU, each backend in its own worker.
"""

from __future__ import annotations


import pytest

from onnxparity import testing
from onnxparity.pytest_plugin import assert_parity  # noqa: F401  (the fixture, as the plugin provides it)
from tests.helpers import onnxparity

pytestmark = pytest.mark.slow  # converts a model and runs real matrices
N = 30


def test_assert_parity_passes_and_returns_the_result(torch_pair):
    folder, good, _ = torch_pair
    result = testing.assert_parity(folder, good, providers="cpu", n=N)
    assert result.passed
    assert {c.candidate for c in result.comparisons} == {"onnxruntime:cpu", "onnxruntime:cpu:tuned", "onnxruntime:cpu:b1",
                                                         "openvino:cpu"}


def test_assert_parity_fails_with_a_table_of_the_failing_comparisons(torch_pair, assert_parity, tmp_path):  # noqa: F811
    folder, _, broken = torch_pair
    with pytest.raises(AssertionError) as info:
        assert_parity(folder, broken, providers="cpu", n=N, batch1_limit=10)
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "Parity failed: 4 of 4 comparisons"
    header = next(line for line in lines if line.startswith("model"))
    for column in ("backend (vs reference)", "output", "max abs diff", "agreement"):
        assert column in header
    rows = [line for line in lines if line.startswith("torch_net  onnxruntime:cpu")]
    assert len(rows) == 3 and all("log_probabilities" in r for r in rows)
    assert any("values beyond the float64-calibrated allowance" in line for line in lines)
    assert message.endswith(f"report: {tmp_path / 'parity.html'}")
    assert (tmp_path / "parity.html").is_file()


def test_failure_message_names_crashed_backends_and_unmet_devices(torch_pair):
    from onnxparity.inputs import load_digits_inputs as load_inputs
    from onnxparity.parity import Target, require, run

    folder, good, _ = torch_pair
    result, _ = run([Target(str(folder), str(good))], load_inputs(None, 10), providers="cpu", gpu=False,
                    batch1_limit=5, crash={"label": "onnxruntime:cpu:b1", "signal": 9})
    require.apply(result, "cuda")
    message = testing.failure_message(result)
    assert "1 backends crashed" in message and "torch_net: onnxruntime:cpu:b1 failed: " in message
    assert "torch_net: required device cuda: the original did not run there (torch:cuda unavailable" in message
    assert "the ONNX file did not run there (no backend planned)" in message


def test_require_devices_fails_when_the_device_did_not_run(torch_pair):
    folder, good, _ = torch_pair
    # --cpu-only keeps cuda from running on a GPU machine too, so the requirement fails on both kinds.
    res = onnxparity("check", folder, good, "--n", N, "--providers", "cpu,cuda", "--batch1-n", 5, "--cpu-only",
                     "--require-devices", "cuda")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "REQUIRED torch_net: required device cuda: the original did not run there (torch:cuda unavailable: " \
        "GPU runs turned off (--cpu-only)" in res.stdout
    assert "REQUIRED torch_net: required device cuda: the ONNX file did not run there (" in res.stdout
    assert res.stderr.startswith("onnxparity: error: torch_net: required device cuda")
    assert "parity backends" not in res.stderr  # not a terminal: no progress


def test_require_devices_cpu_is_met_and_progress_shows_when_forced(torch_pair, tmp_path):
    folder, good, _ = torch_pair
    res = onnxparity("check", folder, good, "--n", N, "--providers", "cpu", "--batch1-n", 5,
                     "--require-devices", "cpu", env={"ONNXPARITY_PROGRESS": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "parity backends" in res.stderr and "parity backends" not in res.stdout
    bad = onnxparity("check", folder, good, "--require-devices", "tpu")
    assert bad.returncode == 2 and bad.stderr.startswith("onnxparity: error: --require-devices: unknown device 'tpu'")
