"""The data loader's plumbing, in-process and NumPy only: the arrays and images a user gives
(``--inputs``), how one model is fed them, which source a model gets, and quantize's calibration and
held-out parts. The commands' end-to-end tests reach the same code through subprocesses; these pin
its rules fast enough for a mutation run (scripts/mutation.sh)."""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from onnxparity.data import load_digits
from onnxparity.errors import InputError
from onnxparity.inputs import (Inputs, calibration_split, choose, default_inputs, feeds, fixed_batch,
                               load_digits_inputs, load_given, open_feeds, prepare, single_batch, synthesize)
from onnxparity.inputs.files import check_arrays
from onnxparity.inputs.samples import DIGIT, GIVEN, IMAGE, unlabelled
from onnxparity.inputs.synthetic import PIXEL_CASES, TENSOR_CASES
from onnxparity.signature import Signature, TensorSpec
from onnxparity.spec import ModelSpec
from tests.test_data import write_idx

OUT = (TensorSpec("y", "float32", ("batch", 2)),)
TWO = Signature((TensorSpec("x", "float32", ("batch", 3)), TensorSpec("ids", "int64", ("batch", "sequence"))), OUT)
ONE = Signature((TensorSpec("x", "float32", ("batch", 3)),), OUT)
DIGIT_INPUT = Signature((TensorSpec("x", "float32", ("batch", 1, 28, 28)),), OUT)  # named "x", not "input"
DIGITS = ModelSpec("net", "torch", (1, 28, 28), layout="NCHW", mean=0.1307, std=0.3081)
RGB = ModelSpec("rgb", "torch", (3, 8, 8), layout="NCHW")  # an image model that takes no digits
RGB_INPUT = Signature((TensorSpec("x", "float32", ("batch", 3, 8, 8)),), OUT)
N_EDGE = sum(PIXEL_CASES.values())


def error(message: str):
    return pytest.raises(InputError, match=f"^{re.escape(message)}$")


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory) -> tuple[Path, Path]:
    """(an IDX folder with 60 training and 40 test digits, an IDX folder with the 40 test digits only)."""
    train, test = load_digits(None, "train"), load_digits(None, "test")
    full, test_only = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("test-only")
    for folder in (full, test_only):
        write_idx(folder / "t10k-images-idx3-ubyte", test.images[:40])
        write_idx(folder / "t10k-labels-idx1-ubyte", test.labels[:40])
    write_idx(full / "train-images-idx3-ubyte", train.images[:60])
    write_idx(full / "train-labels-idx1-ubyte", train.labels[:60])
    return full, test_only


def test_given_arrays_are_checked_against_the_signature_and_cast():
    good = {"x": np.ones((4, 3)), "ids": np.arange(8, dtype=np.int32).reshape(4, 2)}
    out = check_arrays(good, TWO, "f.npz")
    assert out["x"].dtype == np.float32 and out["ids"].dtype == np.int64 and out["ids"].flags.c_contiguous
    flags = Signature((TensorSpec("flag", "bool", ("batch", 2)),), OUT)
    assert check_arrays({"flag": np.zeros((2, 2), bool)}, flags, "f")["flag"].dtype == bool
    unbatched = Signature((TensorSpec("state", "float32", (1, 3)),), OUT)  # arrays lead with a samples axis
    assert check_arrays({"state": np.zeros((5, 1, 3))}, unbatched, "f")["state"].shape == (5, 1, 3)
    with error("f: state has shape [5, 3]; the model takes [1, 3] per sample"):
        check_arrays({"state": np.zeros((5, 3))}, unbatched, "f")
    for arrays, message in [
        ({"x": good["x"], "y": good["x"]}, "f.npz: no array for input 'ids' (it holds 'x', 'y')"),
        ({}, "f.npz: no array for input 'x', 'ids' (it holds nothing)"),
        ({**good, "x": np.ones((4, 4))}, "f.npz: x has shape [4, 4]; the model takes [batch, 3]"),
        ({**good, "x": np.ones(4)}, "f.npz: x has shape [4]; the model takes [batch, 3]"),
        ({**good, "ids": np.ones((4, 2))}, "f.npz: ids holds float64; the model takes int64"),
        ({**good, "x": np.ones((4, 3), np.int64)}, "f.npz: x holds int64; the model takes float32"),
    ]:
        with error(message):
            check_arrays(arrays, TWO, "f.npz")


def test_an_array_file_holds_one_array_per_input_and_optional_labels(tmp_path):
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.ones((4, 3)), ids=np.zeros((4, 2), np.int64), labels=np.arange(4, dtype=np.uint8)[:, None])
    given = load_given(npz, TWO, None)
    assert given.kinds == (GIVEN,) * 4 and given.source == str(npz) and given.images is None
    assert given.labels.tolist() == [0, 1, 2, 3] and given.labels.dtype == np.int64  # flat int64, whatever given
    assert set(given.arrays) == {"x", "ids"} and given.arrays["x"].dtype == np.float32  # cast to the signature
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones((3, 3), np.float32))
    assert set(load_given(npy, ONE, None).arrays) == {"x"} and (load_given(npy, ONE, None).labels == -1).all()
    assert set(load_given(npy, None, None).arrays) == {"input"}
    takes_labels = Signature((TensorSpec("labels", "int64", ("batch",)),), OUT)  # then labels is an input
    np.savez(tmp_path / "l.npz", labels=np.arange(2))
    assert set(load_given(tmp_path / "l.npz", takes_labels, None).arrays) == {"labels"}
    for name, arrays, message in [
        ("uneven.npz", {"x": np.ones((4, 3)), "ids": np.zeros((3, 2), np.int64)},
         "the arrays hold different numbers of samples ([3, 4])"),
        ("empty.npz", {"x": np.ones((0, 3)), "ids": np.zeros((0, 2), np.int64)}, "no samples"),
        ("labels.npz", {"x": np.ones((2, 3)), "ids": np.zeros((2, 2), np.int64), "labels": np.arange(3)},
         "3 labels for 2 samples"),
        ("shape.npz", {"x": np.ones((2, 4)), "ids": np.zeros((2, 2), np.int64)},
         "x has shape [2, 4]; the model takes [batch, 3]"),
    ]:
        np.savez(tmp_path / name, **arrays)
        with error(f"{tmp_path / name}: {message}"):
            load_given(tmp_path / name, TWO, None)
    with error(f"{npy}: one array, but the model has 2 inputs; give an .npz with one array per input name"):
        load_given(npy, TWO, None)
    with error(f"{tmp_path / 'none.npz'}: no such file"):
        load_given(tmp_path / "none.npz", TWO, None)
    objects = np.array([{"a": 1}], dtype=object)
    np.save(tmp_path / "objects.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "objects.npz", a=objects)
    for name in ("objects.npy", "objects.npz"):  # no pickle is ever loaded
        with error(f"{tmp_path / name}: not a .npz or .npy file of arrays "
                   "(Object arrays cannot be loaded when allow_pickle=False)"):
            load_given(tmp_path / name, None, None)


def test_a_folder_of_images_is_resized_to_the_image_input(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "b.png")
    Image.new("L", (5, 5), 100).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    given = load_given(tmp_path, None, RGB)
    assert given.images.shape == (2, 8, 8, 3) and given.images.dtype == np.float32 and given.arrays is None
    assert given.kinds == (IMAGE, IMAGE) and given.source == str(tmp_path) and (given.labels == -1).all()
    assert (given.images[1, ..., 0] == 255).all() and (given.images[1, ..., 1] == 0).all()  # sorted: a.jpg first
    gray = choose(None, ModelSpec("gray", "torch", (1, 8, 8), layout="NCHW"), what="m", given=tmp_path)[0]
    assert gray.images.shape == (2, 8, 8) and (gray.images[1] == 76).all()  # one channel: red's luminance
    with error(f"{tmp_path}: image files need a model whose spec describes an image input "
               "(layout, shape, preprocessing); give arrays instead (--inputs FILE.npz)"):
        load_given(tmp_path, None, None)
    (tmp_path / "empty").mkdir()
    with error(f"{tmp_path / 'empty'}: no PNG or JPEG files"):
        load_given(tmp_path / "empty", None, RGB)


def test_a_model_is_fed_arrays_as_checked_and_images_as_its_spec_preprocesses_them(tmp_path):
    arrays = Inputs(unlabelled(2), (GIVEN,) * 2, "f", arrays={"x": np.ones((2, 3)), "ids": np.zeros((2, 2), np.int32)})
    fed = feeds(arrays, None, TWO)
    assert fed["x"].dtype == np.float32 and fed["ids"].dtype == np.int64
    assert feeds(arrays, ModelSpec("m", "torch", (3,), signature=TWO))["x"].dtype == np.float32  # the spec's
    assert feeds(arrays, None)["x"].dtype == np.float64  # nothing to check them against: as given
    with error("f: no array for input 'state' (it holds 'x', 'ids')"):
        feeds(arrays, None, Signature((TensorSpec("state", "float32", ("batch", 3)),), OUT))
    spec = ModelSpec("gray", "torch", (1, 2, 2), layout="NCHW", scale=1.0)
    pixels = np.array([[[-3.0, 0.4], [255.6, 7.0]]] * 2, np.float32)
    images = Inputs(unlabelled(2), (IMAGE,) * 2, "imgs", images=pixels)
    assert feeds(images, spec)["input"][:, 0].tolist() == pixels.tolist()
    assert feeds(images, spec, pixels_only=True)["input"][0, 0].tolist() == [[0.0, 0.0], [255.0, 7.0]]
    named = Signature((TensorSpec("pixels", "float32", ("batch", 1, 2, 2)),), OUT)
    assert set(feeds(images, spec, named)) == {"pixels"}
    with error("these inputs are images, but the model has no spec saying how to preprocess them"):
        feeds(images, None)


def test_prepared_feeds_are_written_once_per_preparation(tmp_path):
    arrays = Inputs(unlabelled(2), (GIVEN,) * 2, "f", arrays={"x": np.ones((2, 3)), "ids": np.zeros((2, 2), np.int32)})
    folder = tmp_path / "new" / "feeds"  # made with its parents
    paths = prepare(arrays, None, folder, signature=TWO)
    assert set(paths) == {"x", "ids"} and prepare(arrays, None, folder, signature=TWO) == paths
    opened = open_feeds(paths)
    assert opened["ids"].dtype == np.int64 and (opened["x"] == 1).all() and not opened["x"].flags.writeable
    index = Path(paths["x"]).parent / "inputs.json"
    assert json.loads(index.read_text()) == paths
    index.unlink()  # a preparation cut short: its folder is there, its index not
    assert prepare(arrays, None, folder, signature=TWO) == paths
    wide = Signature((TensorSpec("x", "float64", ("batch", 3)), TWO.inputs[1]), OUT)  # other dtypes: other feeds
    assert open_feeds(prepare(arrays, None, folder, signature=wide))["x"].dtype == np.float64
    as_spec = prepare(arrays, ModelSpec("m", "torch", (3,), signature=wide), folder)
    assert as_spec != paths and as_spec != prepare(arrays, ModelSpec("m", "torch", (3,), signature=TWO), folder)
    assert set(prepare(arrays, None, folder)) == {"x", "ids"}  # no signature at all: as given
    spec = ModelSpec("gray", "torch", (1, 2, 2), layout="NCHW", scale=1.0)
    images = Inputs(unlabelled(1), (IMAGE,), "imgs", images=np.array([[[-3.0, 0.4], [255.6, 7.0]]], np.float32))
    whole = prepare(images, spec, folder, pixels_only=True)
    assert whole != prepare(images, spec, folder) and whole == prepare(images, spec, folder, pixels_only=True)
    assert open_feeds(whole)["input"][0, 0].tolist() == [[0.0, 0.0], [255.0, 7.0]]


def test_which_inputs_a_model_gets(tmp_path, digit_folders):
    x, saved = choose(DIGIT_INPUT, DIGITS, what="m", n=5)
    assert saved is None and x.images.shape == (5 + N_EDGE, 28, 28) and x.kinds[:6] == (DIGIT,) * 5 + ("zeros",)
    assert (x.labels[:5] >= 0).all() and (x.labels[5:] == -1).all()
    assert len(choose(DIGIT_INPUT, DIGITS, what="m", n=5, synthetic=False)[0].kinds) == 5
    full, _ = digit_folders
    from_data = choose(DIGIT_INPUT, DIGITS, what="m", data=str(full), synthetic=False)[0]
    assert len(from_data.kinds) == 40 and from_data.source == load_digits(full, "test").source
    made, _ = choose(TWO, None, what="m", samples=3, input_shapes={"ids": (2,)}, int_range=(5, 6))
    assert made.kinds[3:] == TENSOR_CASES and made.arrays["ids"].shape == (3 + len(TENSOR_CASES), 2)
    assert (made.arrays["ids"] == 5).all()
    masks = choose(TWO, None, what="m", samples=3, input_shapes={"ids": (4,)}, input_roles={"ids": "mask"})[0]
    assert masks.arrays["ids"][:, 0].all() and set(np.unique(masks.arrays["ids"])) == {0, 1}
    np.savez(tmp_path / "in.npz", x=np.ones((2, 3)))
    given = choose(ONE, None, what="m", given=tmp_path / "in.npz")[0]
    assert given.kinds == (GIVEN, GIVEN) and given.arrays["x"].dtype == np.float32
    np.savez(tmp_path / "saved.npz", x=np.ones((2, 3)), y=np.zeros((2, 2)))
    inputs, outputs = choose(ONE, None, what="m", reference=tmp_path / "saved.npz", given=tmp_path / "in.npz")
    assert inputs.arrays["x"].dtype == np.float32 and list(outputs) == ["y"]  # saved test data first
    with error("--data d: a dataset of 28x28 digits, but the model has no image input; "
               "give its inputs with --inputs FILE.npz (or a folder of images)"):
        choose(TWO, None, what="m", data="d")
    with pytest.raises(InputError, match=re.escape("but the model takes [3, 8, 8];")):
        choose(None, RGB, what="m", data="d")
    with error("m: nothing says its inputs' names and shapes; convert it (`onnxparity convert`) "
               "or give its inputs (--inputs FILE.npz)"):
        choose(None, None, what="m")


def test_what_a_model_is_fed_when_nobody_gives_inputs(digit_folders):
    assert len(default_inputs(None, TWO, 3, input_shapes={"ids": (2,)}).kinds) == 3 + len(TENSOR_CASES)
    seeded = default_inputs(None, TWO, 3, input_shapes={"ids": (2,)}, seed=5).arrays["x"]
    assert (default_inputs(None, TWO, 3, input_shapes={"ids": (2,)}, seed=5).arrays["x"] == seeded).all()
    assert not (default_inputs(None, TWO, 3, input_shapes={"ids": (2,)}).arrays["x"] == seeded).all()
    masks = default_inputs(None, TWO, 3, input_shapes={"ids": (4,)}, input_roles={"ids": "mask"}).arrays["ids"]
    assert masks[:, 0].all() and set(np.unique(masks)) == {0, 1}
    assert default_inputs(RGB, RGB_INPUT, 2, edge_cases=False).images.shape == (2, 8, 8, 3)  # in pixel space
    full, _ = digit_folders
    assert len(default_inputs(DIGITS, DIGIT_INPUT, data=str(full), edge_cases=False).kinds) == 40
    digits = load_digits_inputs(n=1)  # edge cases by default
    assert digits.kinds == (DIGIT,) + ("zeros", "maximum") + ("noise",) * 4 + ("over-range", "negative")
    assert digits.source == load_digits(None, "test").head(1).source
    plain = load_digits_inputs(str(full), n=2, synthetic=False)
    assert plain.images.dtype == np.float32 and (plain.images == load_digits(full, "test").images[:2]).all()
    with error("--n must be at least 1"):
        load_digits_inputs(n=0)


def test_a_fixed_batch_and_a_single_batch(tmp_path, digit_folders):
    batch = fixed_batch(DIGITS, DIGIT_INPUT, 700)["x"]  # more than the held-out digits: tiled
    assert batch.shape == (700, 1, 28, 28) and (fixed_batch(DIGITS, DIGIT_INPUT, 700)["x"] == batch).all()
    low, high = -DIGITS.mean / DIGITS.std, (1 - DIGITS.mean) / DIGITS.std  # digits only, no edge cases
    assert low - 1e-6 <= batch.min() and batch.max() <= high + 1e-6
    assert not (fixed_batch(DIGITS, DIGIT_INPUT, 700, seed=1)["x"] == batch).all()
    made = fixed_batch(None, TWO, 4, input_shapes={"ids": (2,)}, int_range=(5, 6))
    assert made["x"].shape == (4, 3) and (made["ids"] == 5).all()
    assert (fixed_batch(None, TWO, 4, input_shapes={"ids": (2,)})["x"] == made["x"]).all()  # seeded
    assert not (fixed_batch(None, TWO, 4, input_shapes={"ids": (2,)}, seed=1)["x"] == made["x"]).all()
    masks = fixed_batch(None, TWO, 4, input_shapes={"ids": (4,)}, input_roles={"ids": "mask"})["ids"]
    assert masks[:, 0].all() and set(np.unique(masks)) == {0, 1}
    images = fixed_batch(RGB, RGB_INPUT, 2)
    assert set(images) == {"x"} and images["x"].shape == (2, 3, 8, 8) and 0 <= images["x"].min()  # pixels / 255
    unbatched = Signature((TensorSpec("state", "float32", (1, 3)),), (TensorSpec("y", "float32", (1, 2)),))
    assert fixed_batch(None, unbatched, 8)["state"].shape == (1, 3)  # one whole feed
    with pytest.raises(ValueError, match="^a model without a spec needs its signature$"):
        fixed_batch(None, None, 4)

    x, source = single_batch(DIGITS, n=1)
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32 and source.startswith("1 digits from bundled")
    full, _ = digit_folders
    assert single_batch(DIGITS, data=str(full))[0].shape == (40, 1, 28, 28)
    flat = ModelSpec("flat", "torch", (3,))
    x, source = single_batch(flat, n=5)
    assert x.shape == (5, 3) and source == "5 seeded standard-normal inputs (seed 0)"
    assert (single_batch(flat, n=5, seed=2)[0] == single_batch(flat, n=5, seed=2)[0]).all()
    assert not (single_batch(flat, n=5, seed=2)[0] == x).all()
    np.save(tmp_path / "x.npy", np.ones((6, 3)))
    x, source = single_batch(flat, n=4, given=tmp_path / "x.npy")
    assert x.shape == (4, 3) and x.dtype == np.float32 and source == f"{tmp_path / 'x.npy'} (4 inputs)"
    np.savez(tmp_path / "named.npz", other=np.zeros((2, 3)), input=np.ones((2, 3)))
    assert (single_batch(flat, given=tmp_path / "named.npz")[0] == 1).all()  # the one named input
    np.savez(tmp_path / "a.npz", a=np.ones((2, 3)))
    assert single_batch(flat, given=tmp_path / "a.npz")[0].shape == (2, 3)  # one array, any name
    np.savez(tmp_path / "two.npz", a=np.ones((2, 3)), b=np.ones((2, 3)))
    with error(f"{tmp_path / 'two.npz'}: holds ['a', 'b']; give one array, or one named 'input'"):
        single_batch(flat, given=tmp_path / "two.npz")
    np.save(tmp_path / "wide.npy", np.ones((2, 4)))
    with error(f"{tmp_path / 'wide.npy'}: input has shape [2, 4]; the model takes [batch, 3]"):
        single_batch(flat, given=tmp_path / "wide.npy")
    for kwargs, message in [({"n": 0}, "--n must be at least 1"),
                            ({"given": "x.npy", "data": "d"}, "give --inputs or --data, not both"),
                            ({"data": "d"}, "--data holds 28x28 digits; this model takes [3]: pass --inputs FILE.npy")]:
        with error(message):
            single_batch(flat, **kwargs)


def test_quantize_calibrates_on_one_part_of_a_file_and_judges_on_another(tmp_path):
    path = tmp_path / "all.npz"
    np.savez(path, x=np.arange(30.0).reshape(10, 3), labels=np.arange(10))
    split = calibration_split(None, ONE, input_files=[str(path)])
    assert (split.n_calibration, split.n_held_out) == (8, 2)  # a fifth held out, seeded
    assert split.calibration["x"].dtype == np.float32  # checked against the signature
    held, cal = split.held_out["x"][:, 0] / 3, split.calibration["x"][:, 0] / 3  # the samples' numbers
    assert sorted([*held, *cal]) == list(range(10)) and (np.diff(held) > 0).all() and (np.diff(cal) > 0).all()
    assert split.labels.tolist() == held.tolist()  # labels follow their samples
    assert split.calibration_source == f"8 samples of {path} (seeded split)"
    assert split.held_out_source == f"2 other samples of {path}"
    assert calibration_split(None, ONE, input_files=[str(path)]).fingerprint() == split.fingerprint()
    capped = calibration_split(None, ONE, input_files=[str(path)], calibration_size=3)
    assert capped.n_calibration == 3 and [len(b["x"]) for b in capped.batches("calibration", 2)] == [2, 1]
    assert capped.fingerprint() != split.fingerprint()
    np.savez(tmp_path / "pair.npz", x=np.arange(6.0).reshape(2, 3))  # the fewest that split: one and one
    pair = calibration_split(None, ONE, input_files=[str(tmp_path / "pair.npz")])
    assert (pair.n_calibration, pair.n_held_out, pair.labels) == (1, 1, None)
    np.savez(tmp_path / "held.npz", x=np.ones((4, 3)), labels=np.zeros(4, np.int64))  # one class: still labels
    two = calibration_split(None, ONE, input_files=[str(path), str(tmp_path / "held.npz")])
    assert (two.n_calibration, two.n_held_out, two.labels.tolist()) == (10, 4, [0, 0, 0, 0])
    assert two.held_out["x"].dtype == np.float32
    assert two.calibration_source == f"10 samples of {path}"
    assert two.held_out_source == f"4 samples of {tmp_path / 'held.npz'}"
    np.savez(tmp_path / "one.npz", x=np.ones((1, 3), np.float32))
    for args, message in [
        ({"input_files": [str(path)], "data": "d"}, "give either --data (digit models) or --inputs, not both"),
        ({"input_files": [str(path)] * 3}, "--inputs takes one file (split into calibration and held-out parts) or "
                                           "two (calibration, then held out)"),
        ({"input_files": [str(tmp_path / "one.npz")]},
         f"{tmp_path / 'one.npz'}: 1 sample(s); at least 2 are needed to calibrate and to judge"),
        ({"input_files": [str(path)], "calibration_size": 0}, "no samples to calibrate on or to judge with"),
    ]:
        with error(message):
            calibration_split(None, ONE, **args)
    with error("this model is not one of the reference digit models: give its inputs with --inputs FILE.npz "
               "(one array per input name: x, ids)"):
        calibration_split(None, TWO)


def test_a_digit_model_calibrates_on_the_training_split_of_its_data(digit_folders, tmp_path, caplog):
    full, test_only = digit_folders
    split = calibration_split(DIGITS, DIGIT_INPUT, data=str(full), calibration_size=50)
    assert set(split.calibration) == set(split.held_out) == {"x"} and split.calibration["x"].shape == (50, 1, 28, 28)
    assert len({image.tobytes() for image in split.calibration["x"]}) == 50  # 50 of the 60, none twice
    assert calibration_split(DIGITS, DIGIT_INPUT, data=str(full), calibration_size=50).fingerprint() == \
        split.fingerprint()  # seeded
    assert split.n_held_out == 40 and split.labels.tolist() == load_digits(full, "test").labels.tolist()
    assert split.calibration_source == f"50 digits of {load_digits(full, 'train').source}"
    assert split.held_out_source == load_digits(full, "test").source
    bundled_train = load_digits(None, "train").source
    with caplog.at_level(logging.WARNING, logger="onnxparity.inputs.split"):
        fallback = calibration_split(DIGITS, DIGIT_INPUT, data=str(test_only), calibration_size=50)
    assert fallback.calibration_source == f"50 digits of {bundled_train}" and fallback.n_held_out == 40
    assert re.fullmatch(r".*test-only.*; calibrating on the bundled training digits instead", caplog.messages[-1])
    keras_test_only = tmp_path / "mnist.npz"  # Keras' layout without its training half
    test = load_digits(None, "test")
    np.savez(keras_test_only, x_test=test.images[:30], y_test=test.labels[:30])
    assert calibration_split(DIGITS, DIGIT_INPUT, data=str(keras_test_only)).calibration_source.endswith(bundled_train)
    with error("a digit model has one input, this file has 2"):
        calibration_split(DIGITS, TWO)


# -- samples past SPILL_BYTES live on disk, and every pass over them goes a block at a time -----------------
BERT_LIKE = Signature((TensorSpec("input_ids", "int64", ("batch", "sequence"), int_range=(0, 30522)),
                       TensorSpec("attention_mask", "int64", ("batch", "sequence")),
                       TensorSpec("token_type_ids", "int64", ("batch", "sequence")),
                       TensorSpec("position_ids", "int64", ("batch", "sequence")),
                       TensorSpec("flags", "bool", ("batch", 3)), TensorSpec("x", "float32", ("batch", 3, 5))), OUT)


@pytest.fixture
def small_blocks(monkeypatch, tmp_path):
    """Arrays past 1 KiB spilled to disk and passes of 100 bytes, with TMPDIR a folder of the test's."""
    from onnxparity.inputs import samples

    monkeypatch.setattr(samples, "SPILL_BYTES", 1024)
    monkeypatch.setattr(samples, "BLOCK_BYTES", 100)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    return tmp


def _on_disk(array: np.ndarray) -> bool:
    """Whether ``array`` is (a view of) an array mapped from a file."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base if isinstance(array.base, np.ndarray) else None
    return array is not None


def test_synthesized_samples_do_not_depend_on_where_or_in_what_blocks_they_are_drawn(monkeypatch):
    shapes = {"input_ids": (16,), "attention_mask": (16,), "token_type_ids": (16,), "position_ids": (16,)}
    whole = synthesize(BERT_LIKE, 37, input_shapes=shapes)
    images = synthesize(RGB_INPUT, 11, spec=RGB)
    gray = synthesize(DIGIT_INPUT, 5, spec=ModelSpec("g", "torch", (1, 6, 6), layout="NCHW"))
    from onnxparity.inputs import samples

    monkeypatch.setattr(samples, "SPILL_BYTES", 1024)
    monkeypatch.setattr(samples, "BLOCK_BYTES", 100)
    spilled = synthesize(BERT_LIKE, 37, input_shapes=shapes)
    assert _on_disk(spilled.arrays["input_ids"]) and not _on_disk(whole.arrays["input_ids"])  # 37 x 16 int64 > 1 KiB
    for name, array in whole.arrays.items():
        assert array.dtype == spilled.arrays[name].dtype and np.array_equal(array, spilled.arrays[name]), name
    assert spilled.fingerprint() == whole.fingerprint()
    for before, again in ((images, synthesize(RGB_INPUT, 11, spec=RGB)),
                          (gray, synthesize(DIGIT_INPUT, 5, spec=ModelSpec("g", "torch", (1, 6, 6), layout="NCHW")))):
        assert _on_disk(again.images)
        assert again.kinds == before.kinds and np.array_equal(again.images, before.images)
        assert again.fingerprint() == before.fingerprint()


def test_large_given_arrays_are_read_cast_and_prepared_a_block_at_a_time(tmp_path, small_blocks):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))  # float64 for a float32 input: cast on the way in
    ids = rng.integers(0, 9, (400, 7))
    np.savez(tmp_path / "big.npz", x=x, ids=ids, labels=np.arange(400) % 3)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    given = load_given(tmp_path / "big.npz", TWO, None)
    assert given.arrays["x"].dtype == np.float32 and _on_disk(given.arrays["x"]) and _on_disk(given.arrays["ids"])
    assert np.array_equal(given.arrays["x"], x.astype(np.float32)) and np.array_equal(given.arrays["ids"], ids)
    assert given.labels.tolist() == (np.arange(400) % 3).tolist()
    mapped = load_given(tmp_path / "x.npy", ONE, None).arrays["x"]
    assert _on_disk(mapped) and not mapped.flags.writeable  # the user's file, mapped read-only
    in_memory = Inputs(given.labels, given.kinds, "f", arrays={"x": x.astype(np.float32), "ids": ids})
    assert given.fingerprint() == in_memory.fingerprint()
    fed = open_feeds(prepare(given, None, tmp_path / "feeds", signature=TWO))
    assert np.array_equal(fed["x"], x.astype(np.float32)) and np.array_equal(fed["ids"], ids)
    images = Inputs(unlabelled(30), (IMAGE,) * 30, "imgs", images=rng.uniform(0, 255, (30, 8, 8, 3)).astype(np.float32))
    pixels = open_feeds(prepare(images, RGB, tmp_path / "feeds"))["input"]
    assert np.array_equal(pixels, RGB.preprocess(images.images))  # preprocessed block by block, as a whole
    with error(f"{tmp_path / 'short.npz'}: not a .npz or .npy file of arrays (x: the archive holds fewer values "
               "than its header's shape [400, 3])"):
        with zipfile.ZipFile(tmp_path / "short.npz", "w") as z:  # a header promising more rows than it holds
            z.writestr("x.npy", _npy_bytes(x)[:-8])
        load_given(tmp_path / "short.npz", ONE, None)
    split = calibration_split(None, TWO, input_files=[str(tmp_path / "big.npz")])
    assert _on_disk(split.calibration["x"]) and _on_disk(split.held_out["ids"])
    assert [len(b["x"]) for b in split.batches("held_out", 64)] == [64] + [16]
    from onnxparity.inputs import samples

    samples.SPILL_BYTES = 2**30  # (monkeypatched: restored after the test) the same split held in memory
    whole = calibration_split(None, TWO, input_files=[str(tmp_path / "big.npz")])
    assert not _on_disk(whole.calibration["x"]) and whole.fingerprint() == split.fingerprint()
    for name in ("x", "ids"):
        assert np.array_equal(whole.held_out[name], split.held_out[name])
    assert not any(small_blocks.iterdir())  # the spilled samples left no file behind


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_samples_that_do_not_fit_on_the_disk_are_one_line_naming_the_folder(tmp_path):
    import subprocess
    import sys

    code = ("import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
            "from onnxparity.inputs.samples import rows_array; rows_array((1000, 100000), 'float32')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "TMPDIR": str(tmp_path)})
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (f"onnxparity.errors.OutputError: cannot write 0.37 GiB of "
                                                    f"samples to {tmp_path}: File too large")
    assert not any(tmp_path.iterdir())


def test_locates_batch_for_a_model_of_any_inputs(tmp_path):
    """model_batch (locate's inputs): a one-input float model as single_batch gives it; any other
    synthesized in each input's domain without edge cases, or the given arrays, the first n."""
    from onnxparity.inputs import model_batch

    x, source = model_batch(RGB, RGB_INPUT, n=3, seed=1)
    assert list(x) == ["x"] and x["x"].shape == (3, 3, 8, 8) and source == "3 seeded standard-normal inputs (seed 1)"
    default, _ = model_batch(RGB, RGB_INPUT)
    assert len(default["x"]) == 64 and np.array_equal(default["x"][:3], model_batch(RGB, RGB_INPUT, n=3)[0]["x"])
    sizes = {"ids": (6,)}
    two, source = model_batch(None, TWO, n=5, input_shapes=sizes, int_range=(2, 4))
    assert source == "synthesized (5 samples, seed 0)" and two["x"].shape == (5, 3) and two["x"].dtype == np.float32
    assert two["ids"].shape == (5, 6) and set(np.unique(two["ids"])) <= {2, 3}  # no edge cases: all in range
    assert len(model_batch(None, TWO, input_shapes=sizes)[0]["x"]) == 64
    np.savez(tmp_path / "two.npz", x=np.ones((7, 3), np.float32), ids=np.zeros((7, 4), np.int64))
    given, source = model_batch(None, TWO, given=tmp_path / "two.npz", n=2)
    assert given["ids"].shape == (2, 4) and source == f"{tmp_path / 'two.npz'} (2 inputs)"
    assert len(model_batch(None, TWO, given=tmp_path / "two.npz")[0]["x"]) == 7
    with error("--data holds 28x28 digits; this model takes x, ids: pass --inputs FILE.npz"):
        model_batch(None, TWO, data="digits")
    with error("--n must be at least 1"):
        model_batch(None, TWO, n=0, input_shapes=sizes)


def test_npz_members_of_every_layout_read_as_numpy_reads_them(tmp_path, small_blocks):
    """The block reader takes C-ordered arrays; Fortran order, no axis, no rows or Python objects go
    through NumPy's own reader (values as NumPy reads them, objects refused)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=np.asfortranarray(x))
    six = Signature((TensorSpec("x", "float32", ("batch", 6)),), OUT)
    assert np.array_equal(load_given(tmp_path / "f.npz", six, None).arrays["x"], x)
    np.savez(tmp_path / "empty.npz", x=np.zeros((3, 0), np.float32))
    with error(f"{tmp_path / 'empty.npz'}: x has shape [3, 0]; the model takes [batch, 3]"):
        load_given(tmp_path / "empty.npz", ONE, None)
    np.savez(tmp_path / "scalar.npz", x=np.float32(2.0))
    with error(f"{tmp_path / 'scalar.npz'}: x has shape []; the model takes [batch, 3]"):
        load_given(tmp_path / "scalar.npz", ONE, None)
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 40, dtype=object))
    with error(f"{tmp_path / 'objects.npz'}: not a .npz or .npy file of arrays "
               "(Object arrays cannot be loaded when allow_pickle=False)"):
        load_given(tmp_path / "objects.npz", ONE, None)
