"""Bad arguments and data are refused before any work, on one line, with exit status 2."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from onnxparity.cli import main
from tests.helpers import onnxparity, assert_one_line_error


def refused(capsys, argv: list, *needles: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxparity: error:"), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("option, value, needle", [
    ("--atol", "nan", "finite"),  # NaN tolerances passed a broken model
    ("--rtol", "nan", "finite"),
    ("--atol", "-1", "0 or more"),
    ("--rtol", "inf", "finite"),
    ("--min-agreement", "1.5", "0..1"),
    ("--providers", "cpu,bogus", "bogus"),  # passed on the CPU alone
    ("--providers", "bogus", "bogus"),
    ("--batch1-n", "-1", "0 or more"),
    ("--jobs", "0", "at least 1"),
    ("--timeout", "0", "more than 0"),
    ("--n", "0", "at least 1"),
])
def test_check_refuses_bad_numbers_and_providers_while_parsing(capsys, tmp_path, option, value, needle):
    refused(capsys, ["check", tmp_path / "a", tmp_path / "b.onnx", option, value], option, needle)


def test_output_paths_are_checked_before_the_run(capsys, tmp_path):
    refused(capsys, ["check", "a", "b.onnx", "--json", tmp_path], "--json", "folder")
    refused(capsys, ["check", "a", "b.onnx", "--html", "/proc/x.html"], "--html", "cannot write")
    refused(capsys, ["compare", "a", "b", "--json", tmp_path], "--json", "folder")
    refused(capsys, ["bench", "--json", tmp_path], "--json")
    refused(capsys, ["convert", "m.keras", "-o", tmp_path], "--out")


def test_counts_and_folders(capsys, tmp_path):
    refused(capsys, ["evaluate", "m.keras", "--n", "-3"], "--n", "at least 1")  # ran on 497 digits
    (tmp_path / "file").write_text("x")
    refused(capsys, ["train", "torch", "--out", tmp_path / "file"], "--out", "not a folder")  # FileExistsError
    refused(capsys, ["run", "--out", tmp_path / "file"], "--out", "not a folder")
    refused(capsys, ["compare", "a", "b", "--atol", "nan"], "--atol")
    refused(capsys, ["bench", "--rounds", "0"], "--rounds")


def test_train_library_refuses_a_file_as_the_checkpoint_folder(tmp_path):
    from onnxparity.errors import InputError
    from onnxparity.models import train

    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        train("torch", tmp_path / "file", epochs=1)


def test_verbose_is_accepted_after_the_command(capsys, tmp_path):
    refused(capsys, ["check", "a", "b.onnx", "-v", "--atol", "nan"], "--atol")


# -- data that does not fit the model ---------------------------------------------------------------------


@pytest.fixture
def npz_32(tmp_path, test_digits):
    path = tmp_path / "d32.npz"
    x = np.pad(test_digits.images[:50], ((0, 0), (2, 2), (2, 2)))
    np.savez(path, x_train=x, y_train=test_digits.labels[:50], x_test=x, y_test=test_digits.labels[:50])
    return path


@pytest.fixture
def npz_12_classes(tmp_path, test_digits):
    path = tmp_path / "d12.npz"
    y = test_digits.labels[:50] + 2
    np.savez(path, x_train=test_digits.images[:50], y_train=y, x_test=test_digits.images[:50], y_test=y)
    return path


@pytest.mark.slow
def test_data_of_another_size_or_more_classes_is_refused(torch_checkpoint, torch_onnx, npz_32, npz_12_classes):
    assert_one_line_error(onnxparity("evaluate", torch_checkpoint, "--data", npz_32), "32x32", "takes 1x28x28")
    assert_one_line_error(onnxparity("evaluate", torch_checkpoint, "--data", npz_12_classes), "labels go up to 11",
                          "10 classes")
    for npz, needle in ((npz_32, "32x32"), (npz_12_classes, "labels go up to 11")):
        assert_one_line_error(onnxparity("check", torch_checkpoint, torch_onnx, "--data", npz, "--cpu-only"),
                              needle)


@pytest.mark.slow
def test_convert_honours_an_older_opset(tmp_path, torch_checkpoint):
    import onnx

    out = tmp_path / "net13.onnx"
    done = onnxparity("convert", torch_checkpoint, "--opset", 13, "-o", out)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    model = onnx.load(str(out))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 13


@pytest.mark.slow
def test_plain_keras_file_is_evaluated_and_predicted_with_converts_spec(tmp_path, keras_checkpoint, test_digits):
    from PIL import Image

    plain = tmp_path / "plain.keras"
    shutil.copy(keras_checkpoint / "model.keras", plain)
    Image.fromarray(255 - test_digits.images[0]).resize((84, 84)).save(tmp_path / "d.png")
    done = onnxparity("evaluate", plain, "--n", 100, "--json")
    assert done.returncode == 0, done.stderr
    same = onnxparity("evaluate", keras_checkpoint, "--n", 100, "--json")
    assert done.stdout.split('"n"')[0] == same.stdout.split('"n"')[0]  # loss and accuracy as with its spec.json
    predicted = onnxparity("predict", plain, tmp_path / "d.png")
    assert predicted.returncode == 0 and predicted.stdout.startswith(str(tmp_path / "d.png")), predicted.stderr


@pytest.mark.slow
def test_a_savedmodel_folder_is_checks_original(tmp_path, keras_checkpoint):
    from onnxparity import _process

    folder = tmp_path / "sm_keras"
    _process.call("tests.helpers:keras_saved_model", keras_checkpoint / "model.keras", folder)
    converted = onnxparity("convert", folder, "-o", tmp_path / "sm.onnx")
    assert converted.returncode == 0, converted.stderr
    done = onnxparity("check", folder, tmp_path / "sm.onnx", "--cpu-only", "--n", 30, "--providers", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keras-tf:cpu" in done.stdout and "TensorFlow only" in done.stdout  # keras-torch cannot run it
