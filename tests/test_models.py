"""The reference models, trained natively: accuracy, save/reload, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from onnxparity import _process
from onnxparity.evaluation import evaluate
from onnxparity.models import resolve, torch_net
from onnxparity.runners import open_runner, predict


def test_torch_net_is_the_articles():
    net = torch_net.Net()
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes == {
        "conv1.weight": (10, 1, 5, 5), "conv1.bias": (10,), "conv2.weight": (20, 10, 5, 5), "conv2.bias": (20,),
        "fc1.weight": (50, 320), "fc1.bias": (50,), "fc2.weight": (10, 50), "fc2.bias": (10,),
    }
    out = net.eval()(torch.zeros(3, 1, 28, 28))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(3))  # log_softmax over classes


def test_keras_cnn_is_the_articles(keras_checkpoint):
    runner = open_runner(keras_checkpoint)
    layers = [(type(layer).__name__, layer.get_config()) for layer in runner.model.layers]
    assert [name for name, _ in layers] == ["Conv2D", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense",
                                            "Dropout", "Dense"]
    assert [cfg.get("filters") or cfg.get("units") or cfg.get("rate") for _, cfg in layers if cfg.get("filters") or
            cfg.get("units") or cfg.get("rate")] == [32, 64, 0.25, 128, 0.5, 10]
    assert layers[-1][1]["activation"] == "softmax"


@pytest.mark.parametrize("fixture", ["keras_checkpoint", "torch_checkpoint"])
def test_short_training_beats_chance_by_far(request, fixture, test_digits):
    result = evaluate(open_runner(request.getfixturevalue(fixture)), test_digits)
    assert result["n"] == 500
    assert result["accuracy"] > 0.8, result  # chance is 0.1


@pytest.mark.parametrize("fixture", ["keras_checkpoint", "torch_checkpoint"])
def test_reload_predicts_the_same(request, fixture, test_digits):
    path = request.getfixturevalue(fixture)
    first = predict(open_runner(path), test_digits.images)
    second = predict(open_runner(path), test_digits.images)
    assert first.shape == (500, 10)
    np.testing.assert_array_equal(first, second)


def test_torch_resume_repeats_an_uninterrupted_run(tmp_path):
    """The article's continued_network: model.pth + optimizer.pth (momentum) carry the run on."""
    common = dict(n_train=640, log_interval=0)
    _process.call("onnxparity.models:train", "torch", tmp_path / "a", epochs=2, **common)
    saved = torch.load(tmp_path / "a" / "optimizer.pth", weights_only=True)
    assert all("momentum_buffer" in s for s in saved["state"].values())
    summary = _process.call("onnxparity.models:train", "torch", tmp_path / "a", epochs=1, resume=True, **common)
    _process.call("onnxparity.models:train", "torch", tmp_path / "b", epochs=3, **common)
    assert summary["epochs_done"] == 3
    resumed = torch.load(tmp_path / "a" / "model.pth", weights_only=True)
    straight = torch.load(tmp_path / "b" / "model.pth", weights_only=True)
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6)


def test_keras_resume_continues_optimizer_state(tmp_path):
    out = tmp_path / "k"
    _process.call("onnxparity.models:train", "keras", out, epochs=1, n_train=512, verbose=0, save_h5=True)
    assert (out / "model.h5").is_file() and resolve(out).framework == "keras"
    summary = _process.call("onnxparity.models:train", "keras", out, epochs=1, n_train=512, verbose=0, resume=True)
    assert summary["epochs_done"] == 2
    assert json.loads((out / "history.json").read_text())["epochs_done"] == 2
    iterations = _process.call("tests.helpers:keras_optimizer_iterations", out / "model.keras")
    assert iterations == 2 * 4  # 512 digits / batch 128, twice: Adam's step count carried over
