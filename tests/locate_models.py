"""Models the locate tests rebuild by name in worker processes (``architecture`` in a spec)."""

from __future__ import annotations

RESNET = "tests.locate_models:resnet18_10"  # the tests' own class: named again where a command rebuilds it


def resnet18_10():
    """torchvision's resnet18 with 10 classes (random weights; no download)."""
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def torch_resnet(out) -> str:
    """A resnet18 checkpoint folder (state dict, spec naming :func:`resnet18_10`) and its ONNX file."""
    from pathlib import Path

    import torch

    from onnxparity.convert import convert
    from onnxparity.spec import ModelSpec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = resnet18_10().eval()
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():  # running statistics that are not the identity, so a folded BN shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    torch.save(model.state_dict(), out / "model.pth")
    ModelSpec(name="resnet18", framework="torch", input_shape=(3, 64, 64), layout="NCHW", mean=0.0, std=1.0,
              output="logits", architecture=RESNET).save(out)
    return str(convert(out, out / "model.onnx", torch_class=RESNET).path)


def keras_branches(out) -> str:
    """A Keras functional model with two branches, a nested Sequential (Conv, BatchNorm, ReLU) and a
    merge, seeded random weights; saved as a checkpoint folder with its ONNX file."""
    from pathlib import Path

    import keras
    import numpy as np
    from keras import layers

    from onnxparity.convert import convert
    from onnxparity.spec import ModelSpec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = keras.Input((28, 28, 1), name="input")
    inner = keras.Sequential([layers.Conv2D(4, 3, padding="same", name="inner_conv"),
                              layers.BatchNormalization(name="inner_bn"), layers.ReLU(name="inner_relu")],
                             name="inner")
    a = inner(x)
    b = layers.Conv2D(4, 1, name="side_conv")(x)
    merged = layers.Add(name="merge")([a, b])
    pooled = layers.MaxPooling2D(2, name="pool")(merged)
    y = layers.Dense(10, activation="softmax", name="head")(layers.Flatten(name="flat")(pooled))
    model = keras.Model(x, y, name="branches")
    rng = np.random.default_rng(0)
    for w in model.weights:  # distinct values everywhere, so no two weights are merged by the converter
        value = rng.normal(0, 0.3, w.shape)
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value.astype("float32"))
    model.save(out / "model.keras")
    ModelSpec(name="branches", framework="keras", input_shape=(28, 28, 1), layout="NHWC").save(out)
    return str(convert(out, out / "model.onnx").path)


def torchscript_resnet(out) -> str:
    """:func:`torch_resnet`'s checkpoint exported with the TorchScript exporter instead: no node
    metadata, scopes in node names, and each BatchNorm folded into the Conv before it (under the
    Conv's name). Written with onnxparity's own finishing step, so it carries the spec."""
    import io
    import warnings
    from pathlib import Path

    import onnx
    import torch

    from onnxparity.convert.graph import BATCH, finish
    from onnxparity.models.torch_io import load_state
    from onnxparity.spec import ModelSpec

    torch_resnet(out)
    out = Path(out)
    model = resnet18_10().eval()
    model.load_state_dict(load_state(out / "model.pth"))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, 64, 64),), buffer, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: BATCH}, "logits": {0: BATCH}})
    proto = finish(onnx.load_from_string(buffer.getvalue()), ["logits"], ModelSpec.load(out).to_metadata())
    onnx.save(proto, out / "torchscript.onnx")
    return str(out / "torchscript.onnx")
