"""Data loaders on real MNIST bytes: the bundled sample, IDX folders, Keras' npz, and bad files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from onnxparity.data import load_digits, read_idx
from onnxparity.data.images import load_image, to_mnist
from onnxparity.errors import InputError

from tests.conftest import SHARED_T10K


def write_idx(path, array: np.ndarray, magic_type: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_bundled_split_is_stratified_disjoint_and_fixed():
    train, test = load_digits(None, "train"), load_digits(None, "test")
    assert (len(train), len(test)) == (4500, 500)
    assert train.images.shape[1:] == (28, 28) and train.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [50] * 10
    assert np.bincount(train.labels).tolist() == [450] * 10
    seen = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in seen for img in test.images)
    assert np.array_equal(load_digits(None, "test").images, test.images)
    assert 0.1 < test.images.mean() / 255 < 0.2  # real MNIST ink coverage, not blank or noise


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_round_trip(tmp_path, test_digits, compress):
    suffix = ".gz" if compress else ""
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", test_digits.images, compress=compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", test_digits.labels, compress=compress)
    for split in ("train", "test"):
        digits = load_digits(tmp_path, split)
        assert np.array_equal(digits.images, test_digits.images)
        assert np.array_equal(digits.labels, test_digits.labels)


def test_test_only_folder_refuses_training(tmp_path, test_digits):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_digits.images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_digits.labels)
    assert len(load_digits(tmp_path, "test")) == 500
    with pytest.raises(InputError, match="test-only"):
        load_digits(tmp_path, "train")


@pytest.mark.skipif(not SHARED_T10K.is_dir(), reason="the official MNIST test set is not beside the checkout")
def test_official_test_set():
    digits = load_digits(SHARED_T10K, "test")
    assert len(digits) == 10000
    assert np.bincount(digits.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_keras_npz_and_full_mnist_from_cache(tmp_path, monkeypatch, test_digits):
    npz = tmp_path / "datasets" / "mnist.npz"
    npz.parent.mkdir()
    np.savez(npz, x_train=test_digits.images[:100], y_train=test_digits.labels[:100],
             x_test=test_digits.images, y_test=test_digits.labels)
    assert len(load_digits(npz, "train")) == 100
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    digits = load_digits("mnist", "test")
    assert np.array_equal(digits.labels, test_digits.labels) and str(npz) in digits.source


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: b"\x08\x03" + raw[2:], "bad magic"),
        (lambda raw: raw[:-100], "truncated"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "not unsigned bytes"),
    ],
)
def test_bad_idx_files_name_file_and_problem(tmp_path, test_digits, corrupt, message):
    path = tmp_path / "t10k-images-idx3-ubyte"
    write_idx(path, test_digits.images)
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(InputError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_count_mismatch_and_missing_path(tmp_path, test_digits):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_digits.images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_digits.labels[:-1])
    with pytest.raises(InputError, match="500 images .* but 499 labels"):
        load_digits(tmp_path, "test")
    with pytest.raises(InputError, match="no such file"):
        load_digits(tmp_path / "nope", "test")


def test_image_files_become_mnist_digits(tmp_path, test_digits):
    from PIL import Image

    digit = test_digits.images[0]
    # A dark digit on a light page, larger and off-centre, as a phone photo or a scan gives.
    page = np.full((200, 150), 240, dtype=np.uint8)
    big = np.asarray(Image.fromarray(255 - digit).resize((112, 112)))
    page[10:122, 5:117] = np.minimum(page[10:122, 5:117], big)
    Image.fromarray(page).save(tmp_path / "digit.png")
    out = load_image(tmp_path / "digit.png")
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() == 0 and out[:, 0].max() == 0  # background is black, as in MNIST
    ys, xs = np.nonzero(out)
    assert abs(ys.mean() - 13.5) < 3 and abs(xs.mean() - 13.5) < 3
    with pytest.raises(InputError, match="no digit found"):
        to_mnist(np.zeros((5, 5)))
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        load_image(tmp_path / "not.png")


def test_bundled_heads_are_fair_samples():
    """The source file is sorted by class: any head of a split must still hold every class."""
    for split in ("train", "test"):
        assert len(np.unique(load_digits(None, split).head(100).labels)) == 10
