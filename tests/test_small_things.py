"""The smaller things a new user notices: docs, help texts, wording, small behaviours, noise."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from onnxparity.cli import build_parser
from tests.helpers import onnxparity

ROOT = Path(__file__).resolve().parents[1]


def option(command: str, flag: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next(a for a in sub._actions if flag in a.option_strings)


def test_docs_serve_example_names_a_model_that_serve_runs_latest_serves(tmp_path):
    from onnxparity.serve.repository import find_models

    for name in ("keras", "torch"):  # what `onnxparity run` writes into runs/latest
        (tmp_path / f"{name}.onnx").write_bytes(b"")
    served = set(find_models(tmp_path))
    text = (ROOT / "docs" / "serve.md").read_text()
    asked = set(re.findall(r'client\.infer\("([^"]+)"', text)) | set(re.findall(r"runs/latest --models (\S+)", text))
    assert asked and asked <= served, (asked, served)


@pytest.mark.parametrize("command, flag, needle", [
    ("compare", "--atol", "tolerance"),
    ("compare", "--rtol", "tolerance"),
    ("compare", "--min-agreement", "agreement"),
    ("train", "--epochs", "default"),
    ("train", "--epochs", "10"),
    ("check", "--timeout", "default 600"),
    ("bench", "--warmup", "default 0.5"),
    ("run", "--epochs", "40"),
])
def test_help_says_what_options_do_and_their_defaults(command, flag, needle):
    assert needle in (option(command, flag).help or "")


def test_convert_says_what_happens_to_an_existing_output():
    assert "replaced" in option("convert", "-o").help  # the rule: replaced atomically, after the check


def test_verbose_works_after_the_command():
    args = build_parser().parse_args(["check", "a", "b.onnx", "-v"])
    assert args.verbose is True
    assert build_parser().parse_args(["-v", "check", "a", "b.onnx"]).verbose is True
    assert build_parser().parse_args(["check", "a", "b.onnx"]).verbose is False


def test_an_idx_dataset_is_counted_in_images_not_digits(tmp_path, test_digits):
    from onnxparity.data import load_digits
    from tests.test_data import write_idx

    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_digits.images[:20])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_digits.labels[:20])
    source = load_digits(tmp_path, "test").source  # Fashion-MNIST ships the same way
    assert "20 images" in source and "digits" not in source


def test_max_rel_ignores_a_reference_of_about_zero():
    from onnxparity.compare import compare, tolerance_for

    ref = np.full((3, 10), 0.1, np.float32)
    ref[0, 0] = 1e-38
    cand = ref.copy()
    cand[0, 0] = 1e-9  # within atol; relative to 1e-38 it would be 1e+29
    cand[1, 1] = 0.1 * (1 + 1e-6)
    result = compare("m", {"outputs": ref, "output_name": "p", "label": "r", "indices": np.arange(3)},
                     {"outputs": cand, "output_name": "p", "label": "c", "indices": np.arange(3)}, tolerance_for("cpu"))
    assert result.passed and 0.5e-6 < result.max_rel_diff < 2e-6  # the 1e-6 of [1, 1], not 1e+29


def test_cpu_only_says_turned_off_not_missing(torch_checkpoint, torch_onnx):
    from onnxparity.inputs import load_digits_inputs as load_inputs
    from onnxparity.parity.matrix import Target, plan

    jobs = plan(Target(str(torch_checkpoint), str(torch_onnx)), load_inputs(None, 10), providers="cpu,cuda,tensorrt",
                gpu=False)
    gpu_rows = [j for j in jobs if j.device != "cpu"]
    assert gpu_rows and all(j.unavailable == "GPU runs turned off (--cpu-only)" for j in gpu_rows), \
        [(j.label, j.unavailable) for j in gpu_rows]


def test_an_onnx_file_from_other_weights_is_named(tmp_path, torch_checkpoint, torch_onnx):
    import torch

    from onnxparity.parity.matrix import onnx_spec
    from onnxparity.parity.provenance import other_weights

    spec = onnx_spec(torch_onnx)
    assert other_weights(torch_checkpoint / "model.pth", str(torch_onnx), spec) is None
    state = torch.load(torch_checkpoint / "model.pth", weights_only=True)
    state["fc2.bias"] = state["fc2.bias"] + 1
    torch.save(state, tmp_path / "model.pth")
    message = other_weights(tmp_path / "model.pth", str(torch_onnx), spec)
    assert message and "other weights" in message and "\n" not in message


@pytest.mark.slow
def test_one_epoch_is_one_epoch_not_1_epochs(tmp_path):
    done = onnxparity("train", "torch", "--out", tmp_path / "t", "--epochs", 1)
    assert done.returncode == 0, done.stderr
    assert "torch: 1 epoch," in done.stdout and "1 epochs" not in done.stdout


@pytest.mark.slow
def test_keras_commands_keep_tensorflows_start_up_chatter_off_the_terminal(keras_checkpoint):
    done = onnxparity("evaluate", keras_checkpoint, "--n", 20)
    assert done.returncode == 0
    assert done.stderr.strip() == "", done.stderr


@pytest.mark.slow
def test_check_warns_when_the_onnx_file_came_from_other_weights(tmp_path, torch_checkpoint, torch_onnx):
    import shutil

    import torch

    other = tmp_path / "retrained"
    shutil.copytree(torch_checkpoint, other)
    state = torch.load(other / "model.pth", weights_only=True)
    state["fc2.bias"][0] += 1.0  # not uniform: log_softmax would cancel that
    torch.save(state, other / "model.pth")
    done = onnxparity("check", other, torch_onnx, "--cpu-only", "--providers", "cpu", "--n", 20, "--no-synthetic")
    assert "converted from other weights" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1  # and the numbers then differ
