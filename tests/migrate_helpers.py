"""Models the migrate tests build inside worker processes (one framework per process)."""

from __future__ import annotations

from pathlib import Path


def save_resnet18(folder) -> Path:
    """A torchvision resnet18 with random (seeded) weights as a checkpoint folder for 3x64x64 inputs."""
    import torch
    import torchvision

    from onnxparity.spec import ModelSpec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    # Random running statistics, so the batch norms do something that a wrong conversion would show.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    torch.save(model.state_dict(), folder / "model.pth")
    ModelSpec(name="resnet18", framework="torch", input_shape=(3, 64, 64), layout="NCHW", output="logits",
              labels=tuple(str(i) for i in range(1000)), architecture="torchvision.models:resnet18").save(folder)
    return folder


def save_two_output_keras(folder) -> Path:
    """A Keras functional model with two outputs, batch norm and a residual add (random weights)."""
    import keras
    import numpy as np
    from keras import layers

    from onnxparity.spec import ModelSpec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.Conv2D(8, 3, padding="same", name="block_conv")(x)
    y = layers.BatchNormalization(name="block_bn")(y)
    x = layers.Add(name="residual")([x, y])
    x = layers.ReLU(name="block_relu")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    digits = layers.Dense(10, activation="softmax", name="digits")(x)
    extra = layers.Dense(3, name="extra")(x)
    model = keras.Model(inputs, [digits, extra], name="two_heads")
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.uniform(-0.2, 0.2, beta.shape),
                               rng.uniform(-0.2, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    model.save(folder / "model.keras")
    ModelSpec(name="two_heads", framework="keras", input_shape=(28, 28, 1), layout="NHWC").save(folder)
    return folder


def save_op_set_onnx(path, unsupported: str | None = None) -> Path:
    """A hand-built ONNX graph (3x16x16 input, no onnxparity metadata) touching the rest of the op set:
    asymmetric pads, an unfused BatchNormalization, depthwise and grouped Conv, AveragePool with pads,
    HardSwish, HardSigmoid (alpha 0.2), Sigmoid, Tanh, Concat, per-channel Mul, Add, MaxPool, Identity,
    GlobalAveragePool, Flatten, Gemm, Dropout, Softmax. ``unsupported`` puts that op after the input."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape, low=-0.5, high=0.5):
        return numpy_helper.from_array(rng.uniform(low, high, shape).astype(np.float32), name)

    inits = [init("c1.weight", 6, 3, 3, 3), init("c1.bias", 6), init("bn.scale", 6, low=0.5, high=1.5),
             init("bn.bias", 6), init("bn.mean", 6), init("bn.var", 6, low=0.5, high=1.5),
             init("dw.weight", 12, 1, 3, 3), init("dw.bias", 12), init("gc.weight", 6, 4, 1, 1),
             init("pc.weight", 6, 12, 1, 1), init("pc.bias", 6), init("scale", 1, 12, 1, 1, low=0.5, high=2.0),
             numpy_helper.from_array(np.array(0.25, dtype=np.float32), "shift"),
             init("fc.weight", 10, 12), init("fc.bias", 10)]
    first = "input"
    nodes = []
    if unsupported:
        nodes.append(helper.make_node(unsupported, ["input"], ["odd"], name="odd_node"))
        first = "odd"
    nodes += [
        helper.make_node("Conv", [first, "c1.weight", "c1.bias"], ["c1"], name="c1", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn"], name="bn",
                         epsilon=1e-3),
        helper.make_node("HardSwish", ["bn"], ["hs"], name="hs"),
        helper.make_node("Conv", ["hs", "dw.weight", "dw.bias"], ["dw"], name="dw", kernel_shape=[3, 3], group=6,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["dw"], ["sig"], name="sig"),
        helper.make_node("Conv", ["sig", "gc.weight"], ["gc"], name="gc", kernel_shape=[1, 1], group=3),
        helper.make_node("Tanh", ["gc"], ["tanh"], name="tanh"),
        helper.make_node("AveragePool", ["sig"], ["avg"], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("Conv", ["avg", "pc.weight", "pc.bias"], ["pc"], name="pc", kernel_shape=[1, 1]),
        helper.make_node("HardSigmoid", ["pc"], ["hsig"], name="hsig", alpha=0.2, beta=0.5),
        helper.make_node("Concat", ["tanh", "hsig"], ["cat"], name="cat", axis=1),
        helper.make_node("Mul", ["cat", "scale"], ["mul"], name="mul"),
        helper.make_node("Add", ["mul", "shift"], ["add"], name="add"),
        helper.make_node("MaxPool", ["add"], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Relu", ["pool"], ["relu"], name="relu"),
        helper.make_node("Identity", ["relu"], ["same"], name="same"),
        helper.make_node("GlobalAveragePool", ["same"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["fc"], name="fc", transB=1),
        helper.make_node("Dropout", ["fc"], ["drop"], name="drop"),
        helper.make_node("Softmax", ["drop"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(nodes, "op_set",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10]),
                               helper.make_tensor_value_info("fc", TensorProto.FLOAT, ["batch", 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save(model, path)
    return path


def keras_layers(path) -> list[tuple[str, str, str]]:
    """(class module, class name, layer name) of each layer of a .keras file loaded with safe mode on."""
    from onnxparity.models.keras_cnn import load

    return [(type(layer).__module__, type(layer).__name__, layer.name) for layer in load(path).layers]


def torch_outputs(folder, x):
    """The migrated torch module (loaded as onnxparity loads it) on ``x``: a tuple of arrays."""
    import torch

    from onnxparity.models.torch_io import load_module
    from onnxparity.spec import ModelSpec

    spec = ModelSpec.load(folder)
    module = load_module(Path(folder) / "model.pth", spec.architecture).eval()
    with torch.inference_mode():
        out = module(torch.from_numpy(x))
    return tuple(o.numpy() for o in (out if isinstance(out, tuple) else (out,)))
