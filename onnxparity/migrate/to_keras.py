"""A :class:`~onnxparity.migrate.plan.Plan` as a functional ``keras.Model`` of Keras' own layers.

No Lambda and no custom objects, so the saved ``model.keras`` loads with ``safe_mode=True``.
Kernels go from ONNX's OIHW to Keras' HWIO (depthwise: HW, channels, multiplier); pads that the
frameworks do differently become a ``ZeroPadding2D`` layer in front (``<layer>_pad``); a general
HardSigmoid is ``Rescaling`` + ``ReLU(max_value=1)``. The parity check runs the file as loaded back.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from onnxparity.migrate.plan import Plan, Step

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MODEL_FILE = "model.keras"


def _number(c: np.ndarray):
    """A Rescaling factor: a float, or a list along the last axis (JSON-serialisable either way)."""
    flat = np.asarray(c, dtype=np.float64).reshape(-1)
    return float(flat[0]) if flat.size == 1 else [float(v) for v in flat]


class _Builder:
    def __init__(self, plan: Plan):
        import keras

        self.keras = keras
        self.layers = keras.layers
        self.plan = plan
        self.tensors = {"x": keras.Input(shape=plan.input_shape, name="input")}
        self.weights: list[tuple[object, list[np.ndarray]]] = []

    def build(self):
        for step in self.plan.steps:
            self.tensors[step.output] = getattr(self, f"_{step.kind}")(step, *[self.tensors[i] for i in step.inputs])
        outputs = [self.tensors[o] for o in self.plan.outputs]
        model = self.keras.Model(self.tensors["x"], outputs if len(outputs) > 1 else outputs[0], name=self.plan.name)
        for layer, weights in self.weights:
            layer.set_weights(weights)
        return model

    def _apply(self, layer, x, weights: list[np.ndarray] | None = None):
        y = layer(x)
        if weights is not None:
            self.weights.append((layer, weights))
        return y

    def _pad(self, s: Step, x, pads):
        top, left, bottom, right = pads
        if not any(pads):
            return x
        return self.layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"{s.name}_pad")(x)

    # -- one method per step kind -----------------------------------------------------------
    def _conv(self, s: Step, x):
        a, L = s.attrs, self.layers
        x = self._pad(s, x, a["pads"])
        w = s.weights["weight"]
        bias = [s.weights["bias"]] if "bias" in s.weights else []
        common = dict(strides=tuple(a["strides"]), padding="valid", dilation_rate=tuple(a["dilations"]),
                      use_bias=bool(bias), name=s.name)
        groups, cin, cout = a["groups"], a["in_channels"], a["out_channels"]
        if groups > 1 and groups == cin:  # depthwise: OIHW (C*m, 1, kh, kw) -> (kh, kw, C, m)
            mult = cout // cin
            kernel = w.reshape(cin, mult, *w.shape[2:]).transpose(2, 3, 0, 1)
            layer = L.DepthwiseConv2D(tuple(a["kernel"]), depth_multiplier=mult, **common)
        else:  # OIHW -> HWIO
            kernel = w.transpose(2, 3, 1, 0)
            layer = L.Conv2D(cout, tuple(a["kernel"]), groups=groups, **common)
        return self._apply(layer, x, [kernel, *bias])

    def _pool(self, s: Step, x, cls):
        a = s.attrs
        padding = a["keras_padding"]
        if padding == "zeros":
            x = self._pad(s, x, a["pads"])
            padding = "valid"
        return cls(tuple(a["kernel"]), strides=tuple(a["strides"]), padding=padding, name=s.name)(x)

    def _maxpool(self, s, x):
        return self._pool(s, x, self.layers.MaxPooling2D)

    def _avgpool(self, s, x):
        return self._pool(s, x, self.layers.AveragePooling2D)

    def _global_avgpool(self, s, x):
        return self.layers.GlobalAveragePooling2D(keepdims=s.attrs["keepdims"], name=s.name)(x)

    def _batchnorm(self, s, x):
        a, w = s.attrs, s.weights
        layer = self.layers.BatchNormalization(axis=-1, epsilon=a["epsilon"], momentum=a["momentum"], name=s.name)
        return self._apply(layer, x, [w["gamma"], w["beta"], w["mean"], w["var"]])

    def _dense(self, s, x):
        bias = [s.weights["bias"]] if "bias" in s.weights else []
        layer = self.layers.Dense(s.attrs["out_features"], use_bias=bool(bias), name=s.name)
        return self._apply(layer, x, [s.weights["kernel"], *bias])

    def _relu(self, s, x):
        return self.layers.ReLU(name=s.name)(x)

    def _sigmoid(self, s, x):
        return self.layers.Activation("sigmoid", name=s.name)(x)

    def _tanh(self, s, x):
        return self.layers.Activation("tanh", name=s.name)(x)

    def _hardswish(self, s, x):
        return self.layers.Activation("hard_swish", name=s.name)(x)

    def _hardsigmoid(self, s, x):
        alpha, beta = s.attrs["alpha"], s.attrs["beta"]
        if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5):
            return self.layers.Activation("hard_sigmoid", name=s.name)(x)
        x = self.layers.Rescaling(alpha, offset=beta, name=f"{s.name}_affine")(x)
        return self.layers.ReLU(max_value=1.0, name=s.name)(x)

    def _softmax(self, s, x):
        return self.layers.Softmax(axis=s.attrs["axis"], name=s.name)(x)

    def _log_softmax(self, s, x):
        return self.layers.Activation("log_softmax", name=s.name)(x)

    def _dropout(self, s, x):
        return self.layers.Dropout(s.attrs["rate"], name=s.name)(x)

    def _add(self, s, a, b=None):
        if b is None:
            return self.layers.Rescaling(1.0, offset=_number(s.weights["constant"]), name=s.name)(a)
        return self.layers.Add(name=s.name)([a, b])

    def _mul(self, s, a, b=None):
        if b is None:
            return self.layers.Rescaling(_number(s.weights["constant"]), offset=0.0, name=s.name)(a)
        return self.layers.Multiply(name=s.name)([a, b])

    def _concat(self, s, *parts):
        return self.layers.Concatenate(axis=s.attrs["axis"], name=s.name)(list(parts))

    def _flatten(self, s, x):
        return self.layers.Flatten(name=s.name)(x)

    def _reshape(self, s, x):
        return self.layers.Reshape(tuple(s.attrs["shape"]), name=s.name)(x)

    def _permute(self, s, x):
        return self.layers.Permute(tuple(s.attrs["perm"][1:]), name=s.name)(x)


def build(plan: Plan):
    """The ``keras.Model`` the plan describes, weights set."""
    return _Builder(plan).build()


def write_and_run(plan: Plan, folder: str | Path, x: np.ndarray, batch_size: int = 500) -> list[np.ndarray]:
    """Save model.keras into ``folder``, load it back with safe mode on, run ``x``."""
    from onnxparity.models.keras_cnn import load

    path = Path(folder) / MODEL_FILE
    build(plan).save(path)
    model = load(path)
    outputs = []
    for i in range(0, len(x), batch_size):
        out = model.predict_on_batch(np.ascontiguousarray(x[i:i + batch_size]))
        outputs.append([np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])])
    return [np.concatenate(parts) for parts in zip(*outputs)]
