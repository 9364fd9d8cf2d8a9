"""Small functions the tests run inside worker processes (so no framework leaks into pytest's)."""

from __future__ import annotations


def keras_optimizer_iterations(path) -> int:
    from onnxparity.models.keras_cnn import load

    return int(load(path).optimizer.iterations.numpy())


def print_then_fail(message: str) -> None:
    print(message, flush=True)
    raise RuntimeError("failed after printing")


def runner_details(path, **options) -> dict:
    from onnxparity.runners import open_runner

    return open_runner(path, **options).details()


# -- models of other shapes, for the "any model" tests (PyTorch ones: tests/torch_models.py) -------
def save_keras_model(kind: str, path) -> None:
    """A Keras model of ``kind`` with seeded random weights, saved as ``.keras``."""
    import keras

    keras.utils.set_random_seed(0)
    if kind == "text":  # int32 token ids -> embedding -> class probabilities
        ids = keras.Input(shape=(12,), dtype="int32", name="ids")
        h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(100, 8)(ids))
        model = keras.Model(ids, keras.layers.Dense(3, activation="softmax")(h), name="text_classifier")
    elif kind == "application":  # a Keras application at 32x32x3, random weights, 10 classes
        model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    elif kind == "bilstm":  # a float sequence (12 steps of 5) through a bidirectional LSTM -> 3 values
        x = keras.Input(shape=(12, 5), name="sequence")
        h = keras.layers.Bidirectional(keras.layers.LSTM(8), name="bilstm")(x)
        model = keras.Model(x, keras.layers.Dense(3, name="head")(h), name="bilstm_regressor")
    elif kind == "two_outputs":  # a functional model with two named outputs
        x = keras.Input(shape=(6,), name="features")
        h = keras.layers.Dense(8, activation="relu")(x)
        model = keras.Model(x, {"kind": keras.layers.Dense(3, activation="softmax", name="kind")(h),
                                "size": keras.layers.Dense(1, name="size")(h)}, name="two_outputs")
    else:
        raise ValueError(kind)
    model.save(path)
def keras_saved_model(path, dest) -> None:
    """Export a Keras file as a TensorFlow SavedModel folder (what `model.export` writes)."""
    from onnxparity.models.keras_cnn import load

    load(path).export(str(dest), verbose=False)


def foreign_onnx(path, seq_axis: bool = False):
    """An ONNX file made with onnx.helper, no onnxparity metadata: MatMul, Add, Relu, Softmax."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w, b = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    shape = ["N", "seq", 6] if seq_axis else ["N", 6]
    x = helper.make_tensor_value_info("features", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, shape[:-1] + [4])
    nodes = [helper.make_node("MatMul", ["features", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["r"]), helper.make_node("Softmax", ["r"], ["scores"], axis=-1)]
    graph = helper.make_graph(nodes, "foreign", [x], [y], [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return w, b


def foreign_scores(x, w, b):
    """What :func:`foreign_onnx`'s file computes for ``x``, in float32."""
    import numpy as np

    z = np.maximum(x @ w + b, 0)
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


# -- the CLI as a user runs it --------------------------------------------------------------------
def onnxparity(*args, env=None, timeout=400):
    """``python -m onnxparity ARGS`` in a fresh process, from the repository root."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "onnxparity", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, **(env or {})})


def console_script(folder, *args, timeout=400):
    """``onnxparity ARGS`` as the installed console script runs it, from ``folder``: its own folder first on
    ``sys.path``, not the current one (so the current folder is found only because the CLI adds it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(folder) / ".bin" / "onnxparity"
    script.parent.mkdir(exist_ok=True)
    script.write_text("import sys\nfrom onnxparity.cli import main\nsys.exit(main())\n")
    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=folder, env={**os.environ, "PYTHONPATH": root})


def assert_one_line_error(result, *needles):
    """Exit 2 with one ``onnxparity: error:`` line holding every needle, and no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxparity: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (its children, theirs, and so on), from /proc."""
    from pathlib import Path

    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def hold_then_die(mib: int, signum: int) -> None:
    """A worker that holds ``mib`` MiB for a moment, then dies by ``signum`` (SIGKILL: as the OOM killer does)."""
    import os
    import time

    import numpy as np

    held = np.ones(mib * 2**20, np.uint8)
    time.sleep(0.5)
    os.kill(os.getpid(), signum)
    time.sleep(10)
    return held.sum()


def grow(step_mib: int, steps: int) -> int:
    """A worker whose memory keeps growing, ``step_mib`` MiB at a time."""
    import time

    import numpy as np

    held = []
    for _ in range(steps):
        held.append(np.ones(step_mib * 2**20, np.uint8))
        time.sleep(0.05)
    return len(held)


def model_classes(model, images) -> list[int]:
    """The classes ``model`` (any path a runner opens) predicts for raw uint8 ``images``, fed as they are."""
    from onnxparity.runners import open_runner, predict

    return predict(open_runner(model), images).argmax(axis=1).tolist()


def perturb_module(src, dst, module: str, factor: float = 1.01) -> str:
    """A copy of ``src`` with the largest constant weight of the first node of ``module`` (found by the
    torch.onnx dynamo exporter's ``name_scopes`` metadata) scaled by ``factor``: a file wrong in that one
    layer. Returns the weight's name."""
    import ast

    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    weights = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        scopes = next((ast.literal_eval(p.value) for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), [])
        constants = [weights[t] for t in node.input if t in weights and len(weights[t].dims) >= 2]
        if module in scopes and constants:
            weight = max(constants, key=lambda t: int(np.prod(t.dims)))
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(factor), weight.name))
            onnx.save(model, str(dst))
            return weight.name
    raise ValueError(f"no node of {module} with a weight in {src}")
