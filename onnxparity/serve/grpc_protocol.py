"""The KServe Open Inference Protocol (V2) over gRPC: its messages to arrays and back.

The messages are Triton's own generated classes (``tritonclient.grpc.service_pb2``, package
``inference``), so the wire is exactly what ``tritonclient.grpc`` and Triton speak. The rules
(names, datatypes, shapes, NaN) are ``protocol``'s, shared with REST: a request one wire
refuses, the other refuses with the same message. Pure functions, no server in sight.
"""

from __future__ import annotations

import numpy as np

from onnxparity.serve.protocol import (InferRequest, RequestError, array_from_bytes, array_from_values, check_complete,
                                       check_finite, check_input, check_output)

# V2 datatype -> the typed field of InferTensorContents (FP16 travels only as raw bytes).
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
}
# RequestError's HTTP status -> the gRPC status code's name (grpc.StatusCode.<name>).
STATUS_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def status_code(http_status: int) -> str:
    return STATUS_CODES.get(http_status, "INTERNAL")


def parse_model_infer(request, model_inputs: dict, model_outputs: dict) -> InferRequest:
    """A ``ModelInferRequest`` -> the checked input arrays and the outputs asked for.

    Tensors come in ``raw_input_contents`` (one per input, in order: what tritonclient sends) or
    in each input's typed ``contents``; Triton takes one or the other, never a mix.
    """
    if not request.inputs:
        raise RequestError("the request needs at least one input")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"raw_input_contents holds {len(raw)} tensors for {len(request.inputs)} inputs")
    arrays: dict[str, np.ndarray] = {}
    for i, item in enumerate(request.inputs):
        where, dtype, shape = check_input(item.name, item.datatype, list(item.shape), model_inputs, arrays)
        if raw:
            if item.HasField("contents"):
                raise RequestError(f"{where}: given in both contents and raw_input_contents")
            array = array_from_bytes(raw[i], dtype, shape, where, "raw_input_contents")
        else:
            field = CONTENTS.get(item.datatype)
            if field is None:
                raise RequestError(f"{where}: {item.datatype} travels only in raw_input_contents")
            array = array_from_values(list(getattr(item.contents, field)), dtype, shape, where)
        arrays[item.name] = check_finite(array, where)
    check_complete(arrays, model_inputs)
    wanted = [check_output(o.name, model_outputs) for o in request.outputs] or None
    return InferRequest(request.id or None, arrays, wanted)


def encode_model_infer(model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray],
                       datatypes: dict[str, str]):
    """Outputs -> a ``ModelInferResponse`` with ``raw_output_contents``, as Triton answers."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse(model_name=model, model_version=version, id=request.id or "")
    for name in request.outputs if request.outputs is not None else list(outputs):
        array = np.ascontiguousarray(outputs[name])
        response.outputs.add(name=name, datatype=datatypes[name], shape=array.shape)
        response.raw_output_contents.append(array.tobytes())
    return response
