"""The Keras side of locate: every layer call's output, and the name scope TensorFlow gave it.

Runs in a worker process of its own (:class:`onnxparity._process.Service`). Each layer's ``call``
(nested models' layers included, so nested models come out flattened) is wrapped to note, while
the model is traced the way the converter traces it, the call's output tensor, the calls that
produced its inputs and the name scope it ran in. That scope is the exact prefix tf2onnx gives
the layer's ONNX nodes (``keras_cnn_1/conv2d_1_2/...`` for layer ``conv2d_1``: TensorFlow makes
names unique, so it is never derived from the layer's name). The traced function returns every
call's output, so a batch yields all of them in one graph run.
"""

from __future__ import annotations

import os

import numpy as np

from onnxparity.errors import InputError, first_line

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class KerasCapture:
    """``records()`` describes each layer call in execution order; ``run(x, wanted)`` returns their outputs."""

    def __init__(self, path: str, probe: dict[str, np.ndarray]):
        import tensorflow as tf

        from onnxparity.models.keras_cnn import load

        if os.path.isdir(path):
            raise InputError(f"{path}: locate needs a Keras model file (.keras, .h5); a SavedModel has no layers to name")
        self.model = load(path)
        self._calls: list[dict] = []  # in order of entry
        self._exits: list[int] = []  # entry ids in order of exit
        self._stack: list[int] = []
        self._owner: dict[int, int] = {}  # id(tensor) -> entry id of the call that produced it
        self._keep: list = []  # tensors referenced by id stay alive while tracing
        self._input_ids: dict[int, int] = {}  # id(input tensor) -> -(k + 1) for the model's input k
        self._wrap(self.model, ())
        signature = [tf.TensorSpec((None, *x.shape[1:]), tf.as_dtype(x.dtype), name=name) for name, x in probe.items()]
        model = self.model

        def traced(*xs):
            self._input_ids = {id(x): -(k + 1) for k, x in enumerate(xs)}
            model(xs[0] if len(xs) == 1 else list(xs), training=False)  # the converter's call, in a fresh graph
            return [self._calls[e]["output"] for e in self._exits]

        try:
            self._function = tf.function(traced, input_signature=signature).get_concrete_function()
        except Exception as exc:  # noqa: BLE001 - shape errors and others from tracing
            shapes = ", ".join(f"{k} {v.dtype}{list(v.shape[1:])}" for k, v in probe.items())
            raise InputError(f"{path}: the model does not take inputs {shapes} ({first_line(exc)})") from None
        self._records = self._finish()

    def _wrap(self, layer, parents: tuple[str, ...]) -> None:
        for sub in getattr(layer, "layers", None) or []:
            self._wrap(sub, parents + ((layer.name,) if layer is not self.model else ()))
        original = layer.call

        def call(*args, **kwargs):
            import tensorflow as tf

            entry = len(self._calls)
            producers = []
            for t in tf.nest.flatten((args, kwargs)):
                if hasattr(t, "shape") and hasattr(t, "dtype"):
                    producers.append(self._input_ids.get(id(t), self._owner.get(id(t))))
            self._calls.append({"layer": layer, "parents": parents, "parent": self._stack[-1] if self._stack else None,
                                "producers": producers, "scope": tf.get_current_name_scope()})
            self._stack.append(entry)
            try:
                out = original(*args, **kwargs)
            finally:
                self._stack.pop()
            tensors = [t for t in tf.nest.flatten(out) if hasattr(t, "shape")]
            self._keep.extend(tensors)
            for t in tensors:
                self._owner[id(t)] = entry
            self._calls[entry].update(output=tensors[0] if tensors else None, n_outputs=len(tensors))
            if tensors:
                self._exits.append(entry)
            return out

        layer.call = call

    def _finish(self) -> list[dict]:
        position = {entry: i for i, entry in enumerate(self._exits)}
        totals: dict[str, int] = {}
        for entry in self._exits:
            totals[self._calls[entry]["layer"].name] = totals.get(self._calls[entry]["layer"].name, 0) + 1
        seen: dict[str, int] = {}
        records = []
        for i, entry in enumerate(self._exits):
            c = self._calls[entry]
            layer = c["layer"]
            parent = c["parent"]
            while parent is not None and parent not in position:
                parent = self._calls[parent]["parent"]
            shape = c["output"].shape
            seen[layer.name] = seen.get(layer.name, 0) + 1
            name = layer.name + (f"#{seen[layer.name]}" if totals[layer.name] > 1 else "")  # a shared layer
            records.append({
                "index": i, "name": name, "path": "/".join(c["parents"] + (layer.name,)),
                "kind": type(layer).__name__, "parent": None if parent is None else position[parent],
                "inputs": [p if p is None or p < 0 else position.get(p) for p in c["producers"]],
                "shape": [None if d is None else int(d) for d in list(shape)[1:]], "n_outputs": c["n_outputs"],
                "scope": c["scope"], "container": bool(getattr(layer, "layers", None)),
            })
        return records

    def records(self) -> list[dict]:
        return self._records

    def run(self, feeds: dict[str, np.ndarray], wanted: list[int]) -> dict[int, np.ndarray]:
        import tensorflow as tf

        outputs = self._function(*(tf.constant(np.ascontiguousarray(x)) for x in feeds.values()))
        return {i: np.asarray(outputs[i]) for i in wanted}
