"""Locate: the first layer where an ONNX file departs from its original, on real converted files.

Each ONNX file is written by onnxparity's own converter (in a worker process), then broken the way
converters break files (a weight changed, a Flatten in the other order) and located; faithful
files must show no divergence. The originals run in worker processes of their own framework.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxparity import _process
from onnxparity.cli import main
from onnxparity.locate import locate
from onnxparity.compare import streaming as stats
from onnxparity.locate import layout

N = 16  # inputs per locate run: enough to show a departure, quick on two cores


def _perturb(src, dst, pick) -> str:
    """Copy ``src`` to ``dst`` with the weight (second input) of the node ``pick(nodes)`` changed."""
    model = onnx.load(str(src))
    node = pick(list(model.graph.node))
    init = next(t for t in model.graph.initializer if t.name == node.input[1])
    w = numpy_helper.to_array(init)
    noise = np.random.default_rng(0).normal(0, 0.5 * float(w.std()) + 1e-3, w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(w + noise, init.name))
    onnx.save(model, str(dst))
    return node.name


def _ops(nodes, op):
    return [n for n in nodes if n.op_type == op]


@pytest.mark.slow
def test_faithful_files_exit_0_with_reports(keras_checkpoint, keras_onnx, torch_checkpoint, torch_onnx, tmp_path, capsys):
    for name, original, file in (("keras", keras_checkpoint, keras_onnx), ("torch", torch_checkpoint, torch_onnx)):
        js, page = tmp_path / f"{name}.json", tmp_path / f"{name}.html"
        assert main(["locate", str(original), str(file), "--n", str(N), "--json", str(js), "--html", str(page)]) == 0
        report = json.loads(js.read_text())
        assert report["first_divergence"] is None and report["passed"]
        assert all(layer["cumulative"]["within_tolerance"] and layer["isolated"]["within_tolerance"]
                   for layer in report["layers"])
        assert "<svg" in page.read_text() and "no layer departs" in capsys.readouterr().out
    names = [layer["original_layer"] for layer in report["layers"]]
    assert names[:4] == ["conv1", "conv2", "fc1", "fc2"]


@pytest.mark.slow
def test_keras_cnn_perturbed_conv_is_located_at_its_layer(keras_checkpoint, keras_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    node = _perturb(keras_onnx, bad, lambda nodes: _ops(nodes, "Conv")[1])  # the second Conv2D, layer conv2d_1
    result = locate(keras_checkpoint, bad, n=N)
    first = result.first_divergence
    assert first["original_layer"] == "conv2d_1" and first["mode"] == "isolated"
    assert node in first["onnx_nodes"] and first["max_abs_diff"] > 1e-2
    layers = {layer.original_layer: layer for layer in result.layers}
    assert layers["conv2d"].within_tolerance  # the layer before is fine in both modes
    assert layers["dense"].isolated["within_tolerance"] and not layers["dense"].cumulative["within_tolerance"]
    assert layers["conv2d"].layout == "channels-last -> channels-first"


@pytest.fixture(scope="module")
def torch_bad(torch_onnx, tmp_path_factory):
    """The PyTorch Net's file with fc1's weights changed, and the changed node's name."""
    bad = tmp_path_factory.mktemp("locate-torch-bad") / "bad.onnx"
    return bad, _perturb(torch_onnx, bad, lambda nodes: next(n for n in nodes if "fc1.weight" in n.input))


@pytest.mark.slow
def test_torch_net_perturbed_linear_is_located_at_its_module(torch_checkpoint, torch_bad, tmp_path):
    bad, node = torch_bad
    assert main(["locate", str(torch_checkpoint), str(bad), "--n", str(N), "--json", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    first = report["first_divergence"]
    assert first["original_layer"] == "fc1" and first["onnx_nodes"] == [node] and first["mode"] == "isolated"
    layers = {layer["original_layer"]: layer for layer in report["layers"]}
    assert layers["conv2"]["within_tolerance"] and not layers["fc2"]["cumulative"]["within_tolerance"]
    assert layers["fc1"]["isolated_via"]  # the functional max_pool2d/relu/view before it run in its copy
    assert [item["original_layer"] for item in report["not_in_onnx"]] == ["conv2_drop"]


@pytest.mark.slow
def test_check_locate_names_the_layer_when_parity_fails(torch_checkpoint, torch_bad, capsys):
    bad, node = torch_bad
    assert main(["check", str(torch_checkpoint), str(bad), "--cpu-only", "--n", "20", "--batch1-n", "4",
                 "--locate"]) == 1
    captured = capsys.readouterr()
    assert f"first divergence (isolated): fc1 at ONNX {node}" in captured.out
    assert captured.out.index("parity FAILED") < captured.out.index("first divergence")


@pytest.mark.slow
def test_resnet_conv_fused_with_its_batchnorm_names_its_block(tmp_path):
    """Both PyTorch exporters fold each BatchNorm into its Conv: dynamo under the BatchNorm's name
    (with node metadata), TorchScript under the Conv's name (scopes in node names only)."""
    torchscript = _process.call("tests.locate_models:torchscript_resnet", str(tmp_path / "resnet"), name="resnet")
    dynamo = tmp_path / "resnet" / "model.onnx"
    expected = {dynamo: ("layer2.0.bn1", ["layer2.0.conv1"]), torchscript: ("layer2.0.conv1", ["layer2.0.bn1"])}
    for file, (layer, covers) in expected.items():
        bad = tmp_path / "bad.onnx"
        node = _perturb(file, bad, lambda nodes: next(n for n in nodes if "layer2.0.conv1.weight" in n.input
                                                      or n.name == "/layer2/layer2.0/conv1/Conv"))
        result = locate(tmp_path / "resnet", bad, n=8, torch_class="tests.locate_models:resnet18_10")
        first = result.first_divergence
        assert node in first["onnx_nodes"] and first["mode"] == "isolated"
        assert (first["original_layer"], first["covers"]) == (layer, covers)
        departing = [row.original_layer for row in result.layers if not row.isolated["within_tolerance"]]
        assert departing == [layer]


@pytest.mark.slow
def test_keras_branches_with_a_nested_model(tmp_path):
    onnx_path = _process.call("tests.locate_models:keras_branches", str(tmp_path / "k"), name="branches")
    bad = tmp_path / "bad.onnx"
    # the 3x3 convolution lives in the nested Sequential; the 1x1 one is the other branch
    node = _perturb(onnx_path, bad, lambda nodes: next(
        n for n in _ops(nodes, "Conv") if any(a.name == "kernel_shape" and list(a.ints) == [3, 3] for a in n.attribute)))
    result = locate(tmp_path / "k", bad, n=N)
    first = result.first_divergence
    assert first["original_layer"] == "inner_conv" and node in first["onnx_nodes"]
    layers = {layer.original_layer: layer for layer in result.layers}
    assert layers["inner_conv"].path == "inner/inner_conv"
    assert {"side_conv", "merge", "inner_bn", "inner_relu", "head"} <= set(layers)
    assert layers["side_conv"].within_tolerance and layers["merge"].isolated["within_tolerance"]
    assert not layers["merge"].cumulative["within_tolerance"]


@pytest.mark.slow
def test_flatten_in_the_wrong_order_is_located_at_the_dense_after_it(keras_checkpoint, keras_onnx, tmp_path):
    """A converter that flattens NCHW without permuting the Dense's weights (the transpose back to
    NHWC before the Reshape dropped): the Flatten is only a layout, the Dense is what is wrong."""
    model = onnx.load(str(keras_onnx))
    nodes = list(model.graph.node)
    reshape = next(n for n in nodes if n.op_type == "Reshape" and "flatten" in n.name)
    transpose = next(n for n in nodes if n.output[0] == reshape.input[0])
    assert transpose.op_type == "Transpose"
    reshape.input[0] = transpose.input[0]
    model.graph.node.remove(transpose)
    bad = tmp_path / "flatten.onnx"
    onnx.save(model, str(bad))
    result = locate(keras_checkpoint, bad, n=N)
    first = result.first_divergence
    assert first["original_layer"] == "dense" and first["mode"] == "isolated"
    layers = {layer.original_layer: layer for layer in result.layers}
    assert layers["flatten"].within_tolerance and layers["flatten"].layout == "flatten (H,W,C) -> (C,H,W)"


@pytest.mark.slow
def test_bad_input_exits_2(keras_checkpoint, keras_onnx, torch_onnx, tmp_path, capsys):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((4, 3, 3), np.float32))
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"not a model")
    cases = [  # each with the words its one line must hold
        ([str(keras_onnx)], "give the original and its ONNX file, or an ONNX file with --provider PROVIDER"),
        ([str(keras_checkpoint), str(tmp_path / "missing.onnx")], "missing.onnx: no such ONNX file"),
        ([str(keras_checkpoint), str(not_onnx)], "not a readable ONNX file"),
        ([str(keras_checkpoint), str(torch_onnx)], "locate matches a model's layers with the nodes of its own ONNX file"),
        ([str(keras_checkpoint), str(keras_onnx), "--inputs", str(npy)], "input has shape [4, 3, 3]; the model takes [batch, 28, 28, 1]"),  # wrong shape
        ([str(keras_checkpoint), str(keras_onnx), "--n", "0"], "--n must be at least 1"),
        ([str(tmp_path / "nothing"), str(keras_onnx)], "nothing: no such file or folder"),
    ]
    wrong = []
    for argv, message in cases:
        assert main(["locate", *argv]) == 2, argv
        err = capsys.readouterr().err
        if not (err.startswith("onnxparity: error: ") and err.count("\n") == 1 and message in err):
            wrong.append((argv[-1], message, err))
    assert not wrong, "\n".join(f"{argv}: wants {message!r}, said {err!r}" for argv, message, err in wrong)


# -- the pure parts, without frameworks --------------------------------------------------------
def test_stats_merged_over_batches_equal_the_whole():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 3, (10, 4, 5)).astype(np.float32)
    cand = ref + rng.normal(0, 1e-3, ref.shape).astype(np.float32)
    whole = stats.batch_stats(ref, cand, rtol=1e-3)
    parts = None
    for i in range(0, 10, 3):
        parts = stats.merge(parts, stats.batch_stats(ref[i:i + 3], cand[i:i + 3], rtol=1e-3, offset=i))
    assert parts.n == whole.n and parts.max_abs == whole.max_abs and parts.worst_input == whole.worst_input
    assert parts.sum_sq_err == pytest.approx(whole.sum_sq_err) and parts.max_excess == whole.max_excess
    diff = np.abs(cand.astype(np.float64) - ref)
    expected_db = 10 * np.log10(np.square(ref.astype(np.float64)).sum() / np.square(diff).sum())
    assert stats.summarize(parts, atol=1e-4)["sqnr_db"] == pytest.approx(expected_db, abs=0.01)
    assert parts.worst_input == int(np.unravel_index(diff.argmax(), diff.shape)[0])


def test_stats_tolerance_exactness_and_nonfinite_values():
    ref = np.array([[100.0, 0.0, 1.0]], np.float32)
    assert stats.summarize(stats.batch_stats(ref, ref.copy(), rtol=1e-3), atol=1e-4)["exact"]
    # atol scales with the peak (100): 0.009 + 1e-3 * 0 is within 1e-4 * 100 + ..., 0.02 is not
    near = stats.batch_stats(ref, ref + np.array([[0.0, 0.009, 0.0]], np.float32), rtol=1e-3)
    far = stats.batch_stats(ref, ref + np.array([[0.0, 0.02, 0.0]], np.float32), rtol=1e-3)
    assert stats.within(near, atol=1e-4) and not stats.within(far, atol=1e-4)
    nan_both = np.array([[np.nan, 1.0]], np.float32)
    assert stats.within(stats.batch_stats(nan_both, nan_both.copy(), rtol=0), atol=0)
    assert not stats.within(stats.batch_stats(np.ones((1, 2), np.float32), nan_both, rtol=1), atol=1)
    assert stats.summarize(None, atol=1e-4)["within_tolerance"]


def test_layout_candidates_undo_channels_last_and_flatten_order():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # N, H, W, C
    (only,) = layout.candidates([3, 4, 5], [5, 3, 4], None, channels_last=True)
    assert np.array_equal(only.to_onnx(x), x.transpose(0, 3, 1, 2))
    flat_hwc = x.reshape(2, -1)
    options = layout.candidates([60], [60], [3, 4, 5], channels_last=True)
    assert [o.name for o in options] == ["same", "flatten (H,W,C) -> (C,H,W)"]
    flat_chw = x.transpose(0, 3, 1, 2).reshape(2, -1)
    chosen, by_data = layout.choose(options, flat_hwc, flat_chw)
    assert by_data and np.array_equal(chosen.to_onnx(flat_hwc), flat_chw)
    assert [o.name for o in layout.candidates([60], [60], [3, 4, 5], channels_last=False)] == ["same"]
    assert layout.candidates([3, 4], [5, 6], None, channels_last=False) == []


def test_the_batch_is_lowered_where_one_of_every_layers_output_would_be_too_large():
    """By default a batch of 32, fewer where one batch of every layer's output passes the budget
    (an efficientnet_b0 at 224 px held 5.9 GB at 32); a --batch-size given is kept (locate's own tests
    pass it)."""
    from onnxparity.locate.run import BATCH_SIZE, LAYERS_BUDGET, fitting_batch

    small = [{"shape": [10, 24, 24]}, {"shape": [50]}, {"shape": [10]}]
    assert fitting_batch(small) == BATCH_SIZE
    wide = [{"shape": [32, 112, 112]}] * 21 + [{"shape": [None, 7]}]  # 32 MiB a sample
    assert fitting_batch(wide) == LAYERS_BUDGET // (4 * (21 * 32 * 112 * 112 + 7)) == 31
    assert fitting_batch(wide * 40) == 1 and fitting_batch([]) == BATCH_SIZE
