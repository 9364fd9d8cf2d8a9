"""An ONNX file as locate's reference, node by node: an fp32 file against its int8 or fp16 variant, or
a file on the CPU against the same file on another execution provider.

Each node that computes floats is a "layer" named after the node, and its output tensor is what the
other file's node of the same output name is compared with (ONNX Runtime's quantizer and the fp16
converters keep the names of the tensors they do not remove). The file runs in plain ONNX Runtime
on the CPU with every such tensor made a graph output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError


class OnnxCapture:
    """``records()`` describes each float-valued node in graph order; ``run(feeds, wanted)`` returns their outputs."""

    def __init__(self, path: str, probe: dict[str, np.ndarray]):
        from onnxparity.locate.graph import cumulative_model, load, save
        from onnxparity.runners.sessions import make_session

        g = load(path)
        inputs = {name: k for k, name in enumerate(g.inputs)}
        nodes = [(i, n) for i, n in enumerate(g.nodes) if n.op_type != "Constant" and n.output and n.output[0]]
        tensors = [n.output[0] for _, n in nodes]
        self._tmp = tempfile.TemporaryDirectory(prefix="onnxparity-locate-reference-")
        model = cumulative_model(g, tensors)
        self.session = make_session(save(model, Path(self._tmp.name) / "reference.onnx"), tuned=False)
        self.names = [o.name for o in self.session.get_outputs()]
        try:
            values = dict(zip(self.names, self.session.run(self.names, probe)))
        except Exception as exc:  # noqa: BLE001 - ORT refuses feeds of the wrong shape or type
            raise InputError(f"{path}: cannot run on the inputs ({str(exc).splitlines()[0][:200]})") from None
        floats = [(i, n) for i, n in nodes if values[n.output[0]].dtype.kind == "f"]
        record_of = {n.output[0]: k for k, (_, n) in enumerate(floats)}
        self._records = []
        for k, (i, node) in enumerate(floats):
            producers = []
            for t in node.input:
                if t in inputs:
                    producers.append(-(inputs[t] + 1))
                elif t in record_of:
                    producers.append(record_of[t])
            self._records.append({
                "index": k, "name": node.name or node.output[0], "path": node.name or node.output[0],
                "call": 0, "kind": node.op_type, "parent": None, "inputs": producers,
                "shape": [int(d) for d in values[node.output[0]].shape[1:]], "n_outputs": 1, "scope": None,
                "container": False, "tensor": node.output[0],
            })

    def records(self) -> list[dict]:
        return self._records

    def run(self, feeds: dict[str, np.ndarray], wanted: list[int]) -> dict[int, np.ndarray]:
        names = [self._records[i]["tensor"] for i in wanted]
        return dict(zip(wanted, self.session.run(names, feeds)))
