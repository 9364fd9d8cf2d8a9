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
