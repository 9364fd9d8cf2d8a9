"""The CLI as a user runs it: real processes, real files, one-line errors with exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.helpers import onnxparity, assert_one_line_error


def test_evaluate_json(torch_checkpoint):
    result = onnxparity("evaluate", torch_checkpoint, "--json", "--n", 200)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 200 and report["accuracy"] > 0.8


def test_predict_real_image_files(tmp_path, torch_checkpoint, test_digits):
    from PIL import Image

    paths = []
    for i in range(30):
        # Dark ink on white paper at 4x size, as a person would save a drawing.
        img = Image.fromarray(255 - test_digits.images[i]).resize((112, 112), Image.Resampling.BILINEAR)
        paths.append(tmp_path / f"digit{i}.png")
        img.save(paths[-1])
    result = onnxparity("predict", torch_checkpoint, *paths)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 30
    predicted = np.array([int(line.split(": ")[1].split()[0]) for line in lines])
    from onnxparity.runners import open_runner, predict

    raw = predict(open_runner(torch_checkpoint), test_digits.images[:30]).argmax(axis=1)
    # The briefly trained model is right on most digits; the files must fare about as well.
    assert (predicted == test_digits.labels[:30]).mean() >= (raw == test_digits.labels[:30]).mean() - 0.15


@pytest.mark.parametrize("command", [["train", "torch"], ["train", "keras"], ["run"]])
def test_a_missing_dataset_writes_nothing(tmp_path, command):
    result = onnxparity(*command, "--data", tmp_path / "nope", "--out", tmp_path / "out")
    assert_one_line_error(result, "nope", "no such file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setup, needles", [
    (lambda p: p / "missing.keras", ["missing.keras"]),
    (lambda p: (p / "bad.keras").write_text("not a zip") and p / "bad.keras", ["bad.keras"]),
    (lambda p: (p / "bad.onnx").write_bytes(b"\x00garbage") and p / "bad.onnx", ["bad.onnx"]),
    (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", ["unknown kind of model file"]),
])
def test_evaluate_bad_models(tmp_path, setup, needles):
    assert_one_line_error(onnxparity("evaluate", setup(tmp_path)), *needles)


def test_corrupt_state_dict_and_resume_without_checkpoint(tmp_path, torch_checkpoint):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(torch_checkpoint, broken)
    (broken / "model.pth").write_bytes((broken / "model.pth").read_bytes()[:200])
    assert_one_line_error(onnxparity("evaluate", broken), "model.pth")
    assert_one_line_error(onnxparity("train", "torch", "--resume", "--out", tmp_path / "none"), "no such file")


def test_predict_rejects_non_images(tmp_path, torch_checkpoint):
    (tmp_path / "x.png").write_text("not an image")
    assert_one_line_error(onnxparity("predict", torch_checkpoint, tmp_path / "x.png"), "x.png", "not a readable image")
