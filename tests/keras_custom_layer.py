"""A user's Keras model with a custom layer registered by ``@keras.saving.register_keras_serializable()``.

The layer's class must be registered before the ``.keras`` file loads, so every command that loads the
model (in any worker) must import this module first: ``--import tests.keras_custom_layer``.
"""

from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="onnxparity_tests")
class Gate(keras.layers.Layer):
    """x * sigmoid(w): a learned gate per channel."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="w")

    def call(self, x):
        return x * keras.ops.sigmoid(self.w)


def save(path, keras_onnx=None) -> None:
    """The gated CNN (16x16 RGB -> 5 classes) with seeded weights, saved as ``.keras``; with ``keras_onnx``
    also exported by Keras' own ``export(format="onnx")`` (tf2onnx inside, no onnxparity metadata)."""
    keras.utils.set_random_seed(0)
    x = keras.Input(shape=(16, 16, 3), name="image")
    h = Gate()(keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x))
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(5, activation="softmax", name="classes")(h), name="gated")
    model.predict(np.zeros((1, 16, 16, 3), np.float32), verbose=0)  # Keras' export needs a model that has run
    model.save(path)
    if keras_onnx is not None:
        model.export(str(keras_onnx), format="onnx", verbose=False)
