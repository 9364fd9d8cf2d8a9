"""The smaller things a new user notices: docs, help texts, wording, small behaviours, noise."""

from __future__ import annotations

import json
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


def test_an_original_is_fed_as_another_exporters_file_says():
    """The spec read off a file without onnxparity metadata: images in the layout their channels say, ids as they are."""
    from onnxparity.models.spec_inference import spec_from_signature
    from onnxparity.signature import Signature, TensorSpec

    def sig(*inputs, out=("logits", "float32", ("batch", 10))):
        return Signature(tuple(TensorSpec(*i) for i in inputs), (TensorSpec(*out),))

    nchw = spec_from_signature("m", "torch", sig(("pixel_values", "float32", ("batch", 3, 32, 32))))
    assert (nchw.layout, nchw.input_shape, nchw.image_size, nchw.output) == ("NCHW", (3, 32, 32), (32, 32, 3), "logits")
    nhwc = spec_from_signature("m", "keras", sig(("image", "float32", ("N", 16, 16, 3))), softmax=("logits",))
    assert nhwc.layout == "NHWC" and nhwc.output == "probabilities"
    sized = spec_from_signature("m", "torch", sig(("x", "float32", ("batch", 3, "h", "w"))), input_shapes={None: (3, 8, 8)})
    assert sized.image_size == (8, 8, 3)
    ids = spec_from_signature("m", "torch", sig(("ids", "int64", ("batch", "sequence")), ("mask", "int64", ("batch", "sequence")),
                                                out=("hidden", "float32", ("batch", "sequence", 384))))
    assert ids.layout is None and ids.image_size is None and ids.input_dtype == "int64" and ids.signature.input_names == ["ids", "mask"]


def test_tensors_are_matched_by_name_else_by_order():
    import dataclasses as dc

    from onnxparity.runners import match_names, name_outputs, ordered_inputs
    from onnxparity.signature import Signature, TensorSpec
    from onnxparity.spec import ModelSpec

    assert match_names(["input_ids", "attention_mask"], ["input_ids", "token_type_ids", "attention_mask"]) == {"by": "name"}
    assert match_names(["ids", "mask"], ["input_ids", "attention_mask"]) == {
        "by": "order", "pairs": [["ids", "input_ids"], ["mask", "attention_mask"]]}
    spec = ModelSpec("m", "torch", (4,), signature=Signature(
        (TensorSpec("b", "float32", ("batch", 4)), TensorSpec("a", "float32", ("batch", 4))),
        (TensorSpec("hidden", "float32", ("batch", 4)), TensorSpec("pooled", "float32", ("batch", 2)))))
    feeds = {"a": np.zeros((1, 4)), "b": np.ones((1, 4))}
    assert [x[0, 0] for x in ordered_inputs(spec, feeds)] == [1, 0]  # the file's order
    assert [x[0, 0] for x in ordered_inputs(spec, feeds, own=["a", "b"])] == [0, 1]  # the model's own order

    @dc.dataclass
    class Output:  # as a Hugging Face ModelOutput: fields by name, None fields left out
        pooled: np.ndarray
        hidden: np.ndarray
        attentions: object = None

    named, how = name_outputs(spec, Output(np.ones(2), np.zeros(4)), "m")
    assert how == {"by": "name"} and named["pooled"].shape == (2,) and named["hidden"].shape == (4,)
    ordered, how = name_outputs(spec, {"last_hidden_state": np.zeros(4), "pooler_output": np.ones(2)}, "m")
    assert how["pairs"] == [["hidden", "last_hidden_state"], ["pooled", "pooler_output"]] and ordered["pooled"].shape == (2,)
    assert name_outputs(spec, (np.zeros(4), np.ones(2)), "m")[1] == {"by": "order", "pairs": []}


def test_given_token_ids_outside_the_table_are_refused_before_any_work(tmp_path):
    from onnxparity.errors import InputError
    from onnxparity.inputs import load_given
    from onnxparity.signature import Signature, TensorSpec

    sig = Signature((TensorSpec("input_ids", "int64", ("batch", 8), int_range=(0, 30522)),
                     TensorSpec("attention_mask", "int64", ("batch", 8))), ())
    ids = np.full((2, 8), 101)
    np.savez(tmp_path / "ok.npz", input_ids=ids, attention_mask=np.ones((2, 8), np.int64))
    assert load_given(tmp_path / "ok.npz", sig, None).arrays["input_ids"].dtype == np.int64
    ids[1, 3] = 30522
    np.savez(tmp_path / "over.npz", input_ids=ids, attention_mask=np.ones((2, 8), np.int64))
    with pytest.raises(InputError, match=r"input_ids holds ids from 101 to 30522, outside the 30522 rows \[0, 30522\)"):
        load_given(tmp_path / "over.npz", sig, None)
    np.savez(tmp_path / "renamed.npz", ids=ids[:1], mask=np.ones((1, 8), np.int64))  # other names: matched by order
    given = load_given(tmp_path / "renamed.npz", sig, None)
    assert set(given.arrays) == {"input_ids", "attention_mask"} and "by order: ids -> input_ids" in given.source


def test_keras_progress_is_one_line_per_epoch_in_a_log(monkeypatch):
    import io
    import sys

    from onnxparity.models.keras_cnn import fit_verbosity

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a pipe or a log file
    assert fit_verbosity("auto") == 2 and fit_verbosity(0) == 0

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert fit_verbosity("auto") == 1


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_predict_feeds_a_fashion_model_its_images_as_they_are_and_names_its_classes(tmp_path):
    from PIL import Image

    from onnxparity import _process
    from onnxparity.data import FASHION_MNIST, load_digits

    folder = tmp_path / "fashion"
    _process.call("onnxparity.models:train", "keras", folder, data=str(FASHION), epochs=1, n_train=3000, verbose=0,
                  name="train on Fashion-MNIST")
    assert json.loads((folder / "spec.json").read_text())["labels"] == list(FASHION_MNIST)
    test = load_digits(str(FASHION), "test")
    files = []
    for i in range(8):
        files.append(tmp_path / f"item{i}.png")
        Image.fromarray(test.images[i]).save(files[-1])
    expected = _process.call("tests.helpers:model_classes", str(folder), test.images[:8], name="the model on the arrays")
    done = onnxparity("predict", folder, *files)
    assert done.returncode == 0, done.stderr
    said = [line.split(": ", 1)[1].rsplit(" (", 1)[0] for line in done.stdout.strip().splitlines()]
    assert said == [FASHION_MNIST[c] for c in expected]  # the image as it is, not re-framed as a digit


@pytest.mark.slow
def test_python_api_takes_a_live_torch_module_in_check_and_locate(tmp_path):
    import torch

    from onnxparity.convert import convert
    from onnxparity.locate import locate
    from onnxparity.parity import check

    class Scorer(torch.nn.Module):  # defined here: no worker could import it
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(6, 8)
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    torch.manual_seed(0)
    net = Scorer()
    onnx_path = tmp_path / "scorer.onnx"
    convert(net, onnx_path, input_shape=(6,))
    result = check(net, onnx_path, providers="cpu", n=8)
    assert result.passed and next(b for b in result.backends if b.role == "reference").label == "torch:cpu"
    located = locate(net, onnx_path, n=8)
    assert located.passed and located.first_divergence is None
