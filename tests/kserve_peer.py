"""KServe's own model server around an ONNX Runtime session: the V2 peer `onnxparity serve` is compared with.

Runs in the peer's environment (kserve, onnxruntime, numpy: `.ci/run` makes it), never in the
project's: kserve pins versions of its own. A model as KServe's docs write one: ``predict`` runs the
session on the request's tensors and answers every output (or those asked for) with its V2
datatype, under the request's id or a new one (as KServe's own servers do); what ONNX Runtime
refuses is KServe's ``InvalidInput`` (400).

    python tests/kserve_peer.py MODEL.onnx --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.errors import InvalidInput
from kserve.utils.utils import generate_uuid

ORT_TO_V2 = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(uint8)": "UINT8",
             "tensor(int8)": "INT8", "tensor(int32)": "INT32", "tensor(int64)": "INT64", "tensor(bool)": "BOOL"}


def _dims(shape) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


class OnnxRuntimeModel(Model):
    def __init__(self, path: str):
        super().__init__(Path(path).stem)
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.ready = True

    def get_input_types(self):
        return [{"name": i.name, "datatype": ORT_TO_V2[i.type], "shape": _dims(i.shape)}
                for i in self.session.get_inputs()]

    def get_output_types(self):
        return [{"name": o.name, "datatype": ORT_TO_V2[o.type], "shape": _dims(o.shape)}
                for o in self.session.get_outputs()]

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        try:
            results = self.session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001  (ONNX Runtime's own types: a bad request)
            raise InvalidInput(str(exc).splitlines()[0]) from None
        outputs = []
        for meta, array in zip(self.session.get_outputs(), results):
            out = InferOutput(name=meta.name, shape=list(array.shape), datatype=ORT_TO_V2[meta.type])
            out.set_data_from_numpy(np.asarray(array), binary_data=False)
            outputs.append(out)
        return InferResponse(response_id=payload.id or generate_uuid(), model_name=self.name, infer_outputs=outputs,
                             use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs)


if __name__ == "__main__":
    ModelServer(enable_latency_logging=False).start([OnnxRuntimeModel(sys.argv[1])])
