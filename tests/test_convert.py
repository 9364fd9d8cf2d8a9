"""Conversion to ONNX: the reference models, models of other shapes, the file's guarantees, bad input.

Every ONNX file is run in ONNX Runtime against the original model on real digits (or fixed random
inputs for models that do not take digits); conversions that several tests read are made once.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnxparity.cli import main
from onnxparity.convert import ConvertResult, convert
from onnxparity.convert.graph import runtime_limits
from onnxparity.errors import InputError
from onnxparity.runners import open_runner, predict
from onnxparity.runners.sessions import make_session
from onnxparity.spec import ModelSpec

pytestmark = pytest.mark.slow


# -- models of other shapes -------------------------------------------------------------------
class SmallResNet(nn.Module):
    """Strided, depthwise and pointwise convolutions, batch norm, a residual add, global pooling,
    and two outputs (logits and an embedding)."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        embedding = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.head(embedding), embedding


class RgbNet(nn.Module):
    """A 3x32x32 colour-image classifier with dropout (must be off in the export)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5))
        self.fc = nn.Linear(6 * 14 * 14, 5)

    def forward(self, x):
        return torch.softmax(self.fc(torch.flatten(self.features(x), 1)), dim=1)


class DataDependentNet(nn.Module):
    """Python control flow on tensor values: torch.export cannot capture it, TorchScript tracing can."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        if x.mean() > -100:
            x = x * 1.0
        return torch.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)


def _randomize_batchnorm(module: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that a mishandled batch norm shows."""
    generator = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module.eval()


def _keras_resnet():
    """The Keras counterpart of SmallResNet (separable convolution, two outputs)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), name="pixels")
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    y = layers.SeparableConv2D(8, 3, padding="same")(y)
    y = layers.BatchNormalization()(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    embedding = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(embedding)
    probabilities = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, [probabilities, embedding], name="keras_resnet")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def _keras_rgb():
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(6, 5, activation="relu"), layers.MaxPooling2D(),
                             layers.Flatten(), layers.Dropout(0.5), layers.Dense(5)], name="keras_rgb")


def _run_onnx(path, x) -> list[np.ndarray]:
    session = make_session(path)
    return session.run(None, {"input": x})


def _assert_close(got, want, atol=1e-4):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=atol, rtol=1e-3)
    if got.ndim == 2 and got.shape[1] > 1:
        assert np.array_equal(got.argmax(1), want.argmax(1))


# -- the reference models ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_onnx(keras_checkpoint, torch_checkpoint, tmp_path_factory) -> dict[str, ConvertResult]:
    out = tmp_path_factory.mktemp("onnx")
    return {"keras": convert(keras_checkpoint, out / "keras.onnx"), "torch": convert(torch_checkpoint, out / "torch.onnx")}


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_reference_model_matches_original_at_any_batch(framework, reference_onnx, request, test_digits):
    checkpoint = request.getfixturevalue(f"{framework}_checkpoint")
    result = reference_onnx[framework]
    original = predict(open_runner(checkpoint), test_digits.images)
    x = result.spec.preprocess(test_digits.images)
    _assert_close(_run_onnx(result.path, x)[0], original)
    for n in (1, 7):
        _assert_close(_run_onnx(result.path, x[:n])[0], original[:n])
    thousand = np.concatenate([x, x])
    assert len(thousand) == 1000
    _assert_close(_run_onnx(result.path, thousand)[0], np.concatenate([original, original]))
    onnx_runner = open_runner(result.path)  # what parity and serving do: spec from the file's metadata
    _assert_close(predict(onnx_runner, test_digits.images), original)
    for block in (8, 16):  # the tuned session (serve, bench) with AVX2's and AVX-512's block, on any CPU
        tuned = make_session(result.path, tuned=True, nchwc_block=block)
        if framework == "torch":
            assert any("10 -> 16 channels" in line for line in tuned.graph_rewrites) == (block == 8)
        _assert_close(tuned.run(None, {"input": x})[0], original)


@pytest.mark.parametrize("batch_preserving", [True, False])
def test_run_time_reshape_shape_is_folded_only_when_it_keeps_the_batch(batch_preserving):
    """x [batch, 4, 3] -> Reshape(x, Concat(Shape(x)[0] * k, [12 / k])): foldable only for k = 1."""
    from onnx import TensorProto, helper, numpy_helper

    from onnxparity.convert.graph import fold_static_reshapes

    k = 1 if batch_preserving else 2
    inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), n)
             for n, v in (("zero", [0]), ("k", [k]), ("rest", [12 // k]))]
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"]),
             helper.make_node("Mul", ["n", "k"], ["nk"]), helper.make_node("Concat", ["nk", "rest"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                                              data_prop=True)
    x = np.arange(5 * 12, dtype=np.float32).reshape(5, 4, 3)
    want = _run_model(model, x)
    assert fold_static_reshapes(model) == int(batch_preserving)
    assert [n.op_type for n in model.graph.node] == (["Reshape"] if batch_preserving else [n.op_type for n in nodes])
    np.testing.assert_array_equal(_run_model(model, x), want)


def _run_model(model, x):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_reference_file_guarantees(framework, reference_onnx, request):
    checkpoint = request.getfixturevalue(f"{framework}_checkpoint")
    result = reference_onnx[framework]
    expected = ModelSpec.load(checkpoint)
    model = onnx.load(result.path)
    onnx.checker.check_model(model, full_check=True)
    assert not list(result.path.parent.glob("*.data"))  # one self-contained file
    assert not any(onnx.external_data_helper.uses_external_data(t) for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == [expected.output] == [result.output_name]
    for value in (model.graph.input[0], model.graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]] == list(expected.input_shape)

    spec = ModelSpec.from_metadata({p.key: p.value for p in model.metadata_props})
    assert spec == result.spec
    for field in ("name", "framework", "input_shape", "layout", "scale", "mean", "std", "output", "labels"):
        assert getattr(spec, field) == getattr(expected, field)
    weights = checkpoint / ("model.keras" if framework == "keras" else "model.pth")
    assert spec.extra["source_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert spec.extra["source_framework"] == framework
    assert spec.extra["converter"] == ("tf2onnx" if framework == "keras" else "torch.onnx")
    assert spec.extra["converter_version"] and spec.extra["source_version"]
    assert result.opset == 18 and result.size_bytes == result.path.stat().st_size
    assert sum(result.node_counts.values()) == len(model.graph.node)
    # tf2onnx reads the batch size back for Keras' Flatten; fold_static_reshapes makes it a constant
    assert not {"Shape", "Gather", "Concat"} & set(result.node_counts)
    assert pickle.loads(pickle.dumps(result)) == result
    assert max(result.max_abs_diff, 0) < 1e-4


def test_cli_converts_a_checkpoint_folder_with_embedded_preprocessing(torch_checkpoint, tmp_path, capsys, test_digits):
    out = tmp_path / "net.onnx"
    assert main(["convert", str(torch_checkpoint), "-o", str(out), "--embed-preprocessing"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "opset 18" in printed and "Conv 2" in printed
    session = make_session(out)
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert session.get_inputs()[0].shape == ["batch", 28, 28]
    runner = open_runner(out)
    assert runner.spec.input_dtype == "uint8" and runner.spec.preprocess(test_digits.images[:2]).dtype == np.uint8
    original = predict(open_runner(torch_checkpoint), test_digits.images)
    np.testing.assert_array_equal(predict(runner, test_digits.images).argmax(1), original.argmax(1))
    _assert_close(session.run(None, {"input": test_digits.images})[0], original)


def test_keras_embedded_preprocessing(keras_checkpoint, tmp_path, test_digits):
    result = convert(keras_checkpoint, tmp_path / "k.onnx", embed_preprocessing=True)
    assert result.embedded_preprocessing and result.spec.input_shape == (28, 28)
    original = predict(open_runner(keras_checkpoint), test_digits.images)
    _assert_close(_run_onnx(result.path, test_digits.images)[0], original)


def test_default_output_path_is_beside_the_checkpoint(tmp_path, keras_checkpoint):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for name in ("model.keras", "spec.json"):
        (folder / name).write_bytes((keras_checkpoint / name).read_bytes())
    result = convert(folder, opset=17)
    assert result.path == folder / "model.onnx" and result.opset == 17
    assert onnx.load(result.path).opset_import[0].version == 17


# -- models of other shapes -------------------------------------------------------------------
def test_torch_module_with_residuals_and_two_outputs(tmp_path, test_digits):
    model = _randomize_batchnorm(SmallResNet())
    spec = ModelSpec(name="resnet", framework="torch", input_shape=(1, 28, 28), layout="NCHW", mean=0.1307,
                     std=0.3081, output="logits")
    result = convert(model, tmp_path / "resnet.onnx", spec=spec)
    assert result.output_names == ("logits", "output_1")
    stored = open_runner(result.path).spec
    assert (stored.name, stored.mean, stored.std, stored.output) == ("resnet", 0.1307, 0.3081, "logits")
    assert stored.extra["source"] == "live SmallResNet"
    x = result.spec.preprocess(test_digits.images)
    got = _run_onnx(result.path, x)
    with torch.inference_mode():
        want = [t.numpy() for t in model(torch.from_numpy(x))]
    for g, w in zip(got, want):
        _assert_close(g, w)
    assert "Conv" in result.node_counts


def test_torch_state_dict_with_class_via_cli(tmp_path, test_digits):
    model = _randomize_batchnorm(SmallResNet())
    weights = tmp_path / "resnet.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "resnet.onnx"
    assert main(["convert", str(weights), "-o", str(out), "--torch-class", "tests.test_convert:SmallResNet",
                 "--input-shape", "1,28,28"]) == 0
    spec = open_runner(out).spec
    assert spec.architecture == "tests.test_convert:SmallResNet"
    assert spec.extra["source_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    x = spec.preprocess(test_digits.images[:50])
    with torch.inference_mode():
        _assert_close(_run_onnx(out, x)[0], model(torch.from_numpy(x))[0].numpy())


@pytest.mark.parametrize("kind", ["torchscript", "exported_program"])
def test_torch_files_of_other_kinds(kind, tmp_path):
    model = RgbNet().eval()
    example = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    if kind == "torchscript":
        path = tmp_path / "rgb.pt"
        torch.jit.save(torch.jit.trace(model, example), path)
        result = convert(path, input_shape=(3, 32, 32))
    else:
        path = tmp_path / "rgb.pt2"
        batch = torch.export.Dim("batch")
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = convert(path)
        assert not [w for w in caught if "training mode" in str(w.message)], "spurious training-mode warning"
    assert result.spec.output == "probabilities" and result.spec.input_shape == (3, 32, 32)
    assert len(result.spec.labels) == 5
    with torch.inference_mode():
        want = model(example).numpy()
    _assert_close(_run_onnx(result.path, example.numpy())[0], want)
    _assert_close(_run_onnx(result.path, example.numpy()[:1])[0], want[:1])


def test_torch_falls_back_to_torchscript_exporter_saying_why(tmp_path, caplog, test_digits):
    torch.manual_seed(0)
    model = DataDependentNet().eval()
    with caplog.at_level("WARNING", logger="onnxparity.convert.torch"):
        result = convert(model, tmp_path / "dd.onnx", input_shape=(1, 28, 28))
    assert "TorchScript exporter (dynamo exporter failed: " in result.exporter
    assert "falling back to the TorchScript exporter" in caplog.text
    assert result.spec.output == "log_probabilities"
    x = result.spec.preprocess(test_digits.images)
    with torch.inference_mode():
        _assert_close(_run_onnx(result.path, x)[0], model(torch.from_numpy(x)).numpy())


def test_keras_model_with_residuals_and_two_outputs_from_h5(tmp_path, test_digits):
    model = _keras_resnet()
    path = tmp_path / "resnet.h5"
    model.save(path)
    result = convert(path)
    assert result.spec.output == "probabilities" and result.spec.layout == "NHWC"
    assert result.output_names == ("probabilities", "output_1")
    x = result.spec.preprocess(test_digits.images)
    want = [np.asarray(t) for t in model(x, training=False)]
    for got, w in zip(_run_onnx(result.path, x), want):
        _assert_close(got, w)


def test_keras_live_model_and_saved_model(tmp_path):
    model = _keras_rgb()
    x = np.random.default_rng(0).standard_normal((9, 32, 32, 3)).astype(np.float32)
    want = np.asarray(model(x, training=False))
    live = convert(model, tmp_path / "live.onnx")
    assert live.spec.output == "logits" and live.spec.input_shape == (32, 32, 3)
    _assert_close(_run_onnx(live.path, x)[0], want)
    saved = tmp_path / "saved_model"
    model.export(saved, verbose=False)
    from_saved = convert(saved, tmp_path / "saved.onnx")
    _assert_close(_run_onnx(from_saved.path, x)[0], want)
    assert from_saved.spec.extra["source_sha256"] != live.spec.extra["source_sha256"]


# -- pre-flight, safety and bad input ---------------------------------------------------------
def _fails(argv, capsys, out=None) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("onnxparity: error: ") and err.count("\n") == 1 and "Traceback" not in err
    if out is not None:
        assert not out.exists() and not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return err


def test_opset_newer_than_onnxruntime_is_refused(torch_checkpoint, tmp_path, capsys):
    top_opset, top_ir = runtime_limits()
    out = tmp_path / "x.onnx"
    err = _fails(["convert", str(torch_checkpoint), "-o", str(out), "--opset", str(top_opset + 1)], capsys, out)
    assert f"opsets up to {top_opset}" in err and f"IR versions up to {top_ir}" in err
    assert "too old" in _fails(["convert", str(torch_checkpoint), "-o", str(out), "--opset", "3"], capsys, out)


def test_keras_opset_beyond_tf2onnx_is_refused(keras_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert "tf2onnx" in _fails(["convert", str(keras_checkpoint), "-o", str(out), "--opset", "19"], capsys, out)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, torch_checkpoint, capsys):
    out = tmp_path / "x.onnx"
    assert "no such file" in _fails(["convert", str(tmp_path / "missing.pth"), "-o", str(out)], capsys, out)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes((torch_checkpoint / "model.pth").read_bytes()[:500])
    assert "not a loadable PyTorch file" in _fails(
        ["convert", str(truncated), "-o", str(out), "--torch-class", "onnxparity.models.torch_net:Net",
         "--input-shape", "1,28,28"], capsys, out)

    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip archive at all")
    assert "cannot load as a Keras model" in _fails(["convert", str(corrupt), "-o", str(out)], capsys, out)

    weights = tmp_path / "net.pth"
    weights.write_bytes((torch_checkpoint / "model.pth").read_bytes())
    assert "--torch-class" in _fails(["convert", str(weights), "-o", str(out)], capsys, out)
    assert "cannot import model class" in _fails(
        ["convert", str(weights), "-o", str(out), "--torch-class", "no_such_pkg.mod:Net", "--input-shape", "1,28,28"],
        capsys, out)
    assert "weights do not fit" in _fails(
        ["convert", str(weights), "-o", str(out), "--torch-class", "tests.test_convert:SmallResNet",
         "--input-shape", "1,28,28"], capsys, out)
    assert "does not fit the model" in _fails(
        ["convert", str(weights), "-o", str(out), "--torch-class", "onnxparity.models.torch_net:Net",
         "--input-shape", "3,32,32"], capsys, out)
    assert "--input-shape" in _fails(
        ["convert", str(weights), "-o", str(out), "--torch-class", "onnxparity.models.torch_net:Net"], capsys, out)

    rgb = tmp_path / "rgb.pth"
    torch.save(RgbNet().state_dict(), rgb)
    assert "embed-preprocessing needs" in _fails(
        ["convert", str(rgb), "-o", str(out), "--torch-class", "tests.test_convert:RgbNet",
         "--input-shape", "3,32,32", "--embed-preprocessing"], capsys, out)

    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"")
    assert "already an ONNX file" in _fails(["convert", str(onnx_file), "-o", str(out)], capsys, out)


def test_existing_file_survives_a_failed_conversion(tmp_path, torch_checkpoint):
    out = tmp_path / "keep.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(InputError):
        convert(torch_checkpoint, out, opset=runtime_limits()[0] + 1)
    assert out.read_bytes() == b"previous"


def test_exported_program_with_a_fixed_batch_is_refused(tmp_path):
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(RgbNet().eval(), (torch.zeros(4, 3, 32, 32),)), path)
    with pytest.raises(InputError, match="fixed batch size of 4"):
        convert(path, tmp_path / "fixed.onnx")
    assert not (tmp_path / "fixed.onnx").exists()


def test_pickled_whole_model_needs_trust(tmp_path, capsys):
    path = tmp_path / "whole.pt"
    model = RgbNet().eval()
    torch.save(model, path)
    out = tmp_path / "whole.onnx"
    err = _fails(["convert", str(path), "-o", str(out), "--input-shape", "3,32,32"], capsys, out)
    assert "--trust-pickle" in err
    result = convert(path, out, input_shape=(3, 32, 32), trust_pickle=True)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    with torch.inference_mode():
        _assert_close(_run_onnx(result.path, x)[0], model(torch.from_numpy(x)).numpy())


def test_keras_loads_in_safe_mode(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda t: t * 2.0),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    out = tmp_path / "lambda.onnx"
    assert "Keras safe mode refused" in _fails(["convert", str(path), "-o", str(out)], capsys, out)
