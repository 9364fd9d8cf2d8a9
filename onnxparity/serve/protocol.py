"""The KServe Open Inference Protocol (V2) over REST, as Triton speaks it: parsing and encoding.

Pure functions over bytes and numpy arrays, with no HTTP library in sight, so the rules (names,
shapes, datatypes, the binary tensor data extension) are tested without a server. Every problem
with a request is a :class:`RequestError` carrying the HTTP status and a one-line message. The
``check_*`` rules are shared with the gRPC wire (``grpc_protocol``), so both refuse alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import orjson

from onnxparity.errors import first_line

# V2 datatype <-> numpy dtype (BYTES and BF16 are not served: no model here takes them).
DATATYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}
_V2_NAMES = {np.dtype(t): name for name, t in DATATYPES.items()}
# ONNX Runtime's type strings -> V2 datatype.
ORT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES", "tensor(bfloat16)": "BF16",
}
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "model_repository_metadata"]


def server_metadata() -> dict:
    """The server's V2 metadata (REST ``GET /v2`` and gRPC ``ServerMetadata`` alike)."""
    from onnxparity import __version__

    return {"name": "onnxparity", "version": __version__, "extensions": EXTENSIONS}


def v2_datatype(dtype) -> str:
    """A numpy dtype (or its name) -> its V2 datatype ("float32" -> "FP32")."""
    want = np.dtype(dtype)
    for name, np_type in DATATYPES.items():
        if np.dtype(np_type) == want:
            return name
    raise ValueError(f"no V2 datatype for {want}")


def triton_config(name: str, signature, max_batch_size: int = 64) -> dict:
    """A model's configuration as Triton has it (``config.pbtxt`` and ``GET .../config``), from its
    :class:`~onnxparity.signature.Signature`: batched along the first axis when every tensor allows it."""
    batch = max_batch_size if signature.batched else 0

    def tensors(specs):
        return [{"name": t.name, "data_type": f"TYPE_{v2_datatype(t.dtype)}",
                 "dims": [d if isinstance(d, int) else -1 for d in (t.shape[1:] if batch else t.shape)]}
                for t in specs]

    return {"name": name, "platform": "onnxruntime_onnx", "backend": "onnxruntime", "max_batch_size": batch,
            "input": tensors(signature.inputs), "output": tensors(signature.outputs)}


def loads(data: bytes | memoryview):
    """JSON -> Python, with orjson (the request's parse is most of a JSON request's cost).

    What orjson refuses and Python's json reads (NaN, Infinity, integers past 64 bits) goes to
    json, so such a request gets the same answer as before: a NaN is refused by name.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(bytes(data))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise RequestError(f"the request is not valid JSON ({exc})") from None


def dumps(obj) -> bytes:
    """Python -> compact JSON bytes (orjson)."""
    return orjson.dumps(obj)


class RequestError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, the message says why;
    ``retry_after``: seconds after which the same request may succeed (an overloaded or draining server)."""

    def __init__(self, message: str, status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output as the protocol describes it (-1 for a free dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class InferRequest:
    """A parsed inference request: input arrays by name and what to send back."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # None: every output
    binary: dict[str, bool] = field(default_factory=dict)  # output name -> send as binary
    binary_default: bool = False


def _params(obj: dict, where: str) -> dict:
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError(f"{where}: 'parameters' must be a JSON object")
    return params


def _shape(value, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise RequestError(f"{where}: 'shape' must be a list of integers")
    if any(d < 0 for d in value):
        raise RequestError(f"{where}: shape {value} has a negative dimension")
    return tuple(value)


# -- the rules every request meets, whichever wire (REST here, gRPC in grpc_protocol) ---------------
def check_input(name: str, datatype, shape, model_inputs: dict[str, TensorInfo],
                seen: dict) -> tuple[str, np.dtype, tuple[int, ...]]:
    """One declared input against the model: (where, for messages; its dtype; its shape)."""
    where = f"input {name!r}"
    if name not in model_inputs:
        raise RequestError(f"{where}: the model has no such input (it takes {', '.join(map(repr, model_inputs))})")
    if name in seen:
        raise RequestError(f"{where}: given twice")
    info = model_inputs[name]
    if datatype != info.datatype:
        raise RequestError(f"{where}: datatype must be {info.datatype}, not {datatype!r}")
    shape = _shape(shape, where)
    if len(shape) != len(info.shape) or any(m != -1 and m != d for m, d in zip(info.shape, shape)):
        raise RequestError(f"{where}: shape {list(shape)} does not fit the model's {list(info.shape)}")
    return where, np.dtype(DATATYPES[datatype]), shape


def check_nbytes(nbytes: int, dtype: np.dtype, shape: tuple[int, ...], where: str, what: str) -> None:
    need = math.prod(shape) * dtype.itemsize
    if nbytes != need:
        raise RequestError(f"{where}: {what} is {nbytes} bytes but shape {list(shape)} of "
                           f"{_V2_NAMES[dtype]} needs {need}")


def array_from_bytes(raw, dtype: np.dtype, shape: tuple[int, ...], where: str, what: str) -> np.ndarray:
    """Raw little-endian tensor bytes -> an array of ``shape`` (no copy where aligned)."""
    check_nbytes(len(raw), dtype, shape, where, what)
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return array if array.flags.aligned else array.copy()


def check_finite(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise RequestError(f"{where}: holds NaN or infinity, which the model cannot take")
    return array


def check_complete(arrays: dict, model_inputs: dict[str, TensorInfo]) -> None:
    missing = [n for n in model_inputs if n not in arrays]
    if missing:
        raise RequestError(f"missing input {', '.join(map(repr, missing))}")


def check_output(name: str, model_outputs: dict[str, TensorInfo]) -> str:
    if name not in model_outputs:
        raise RequestError(f"output {name!r}: the model has no such output "
                           f"(it gives {', '.join(map(repr, model_outputs))})")
    return name


def parse_infer_request(body: bytes, header_length: str | None, model_inputs: dict[str, TensorInfo],
                        model_outputs: dict[str, TensorInfo]) -> InferRequest:
    """Decode a V2 ``infer`` body (JSON, or JSON + binary tensor data) and check it against the model."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise RequestError(f"{HEADER_LENGTH} must be an integer, not {header_length[:40]!r}") from None
        if n < 0 or n > len(body):
            raise RequestError(f"{HEADER_LENGTH} is {n} but the body holds {len(body)} bytes")
        header, binary = body[:n], memoryview(body)[n:]
    else:
        header, binary = body, memoryview(b"")
    request = loads(header)
    if not isinstance(request, dict):
        raise RequestError("the request must be a JSON object")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("'id' must be a string")
    params = _params(request, "request")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("the request needs a non-empty 'inputs' list")

    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise RequestError(f"inputs[{i}] must be a JSON object")
        name = item.get("name")
        if not isinstance(name, str):
            raise RequestError(f"inputs[{i}] needs a 'name'")
        where, dtype, shape = check_input(name, item.get("datatype"), item.get("shape"), model_inputs, arrays)
        size = _params(item, where).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise RequestError(f"{where}: binary_data_size must be a non-negative integer")
            check_nbytes(size, dtype, shape, where, "binary_data_size")
            if offset + size > len(binary):
                raise RequestError(f"{where}: binary_data_size runs past the end of the body "
                                   f"({len(binary)} bytes of binary data)")
            array = array_from_bytes(binary[offset : offset + size], dtype, shape, where, "binary_data_size")
            offset += size
        else:
            if "data" not in item:
                raise RequestError(f"{where}: needs 'data' or parameters.binary_data_size")
            array = array_from_values(item["data"], dtype, shape, where)
        arrays[name] = check_finite(array, where)
    if offset != len(binary):
        raise RequestError(f"the body has {len(binary) - offset} bytes of binary data that no input claims")
    check_complete(arrays, model_inputs)

    wanted, binary_flags = None, {}
    outputs = request.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise RequestError("'outputs' must be a list")
        wanted = []
        for i, item in enumerate(outputs):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise RequestError(f"outputs[{i}] needs a 'name'")
            wanted.append(check_output(name, model_outputs))
            flag = _params(item, f"output {name!r}").get("binary_data")
            if flag is not None:
                binary_flags[name] = bool(flag)
    return InferRequest(request_id, arrays, wanted, binary_flags, bool(params.get("binary_data_output", False)))


def array_from_values(data, dtype: np.dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Values (JSON ``data``, flat or nested, row-major; or gRPC ``contents``) -> an array of ``shape``.

    Integer tensors take whole numbers in their type's range only: NumPy would cut 1.7 to 1.
    """
    try:
        if np.issubdtype(dtype, np.integer):
            _whole_numbers(data, dtype, where)
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"{where}: data is not a rectangular list of {dtype.name} values "
                           f"({first_line(exc, 120, with_type=False)})") from None
    if array.size != math.prod(shape):
        raise RequestError(f"{where}: data holds {array.size} values but shape {list(shape)} needs {math.prod(shape)}")
    if array.ndim > 1 and array.shape != shape:
        raise RequestError(f"{where}: nested data has shape {list(array.shape)}, not {list(shape)}")
    return array.reshape(shape)


def _whole_numbers(data, dtype: np.dtype, where: str) -> None:
    values = np.asarray(data, dtype=np.float64)
    info = np.iinfo(dtype)
    if values.size and (not np.isfinite(values).all() or (values != np.rint(values)).any()
                        or values.min() < info.min or values.max() > info.max):
        raise RequestError(f"{where}: {dtype.name} data must be whole numbers in {info.min}..{info.max}")


def encode_infer_response(model: str, version: str, request: InferRequest, outputs: dict[str, np.ndarray],
                          datatypes: dict[str, str]) -> tuple[bytes, int | None]:
    """Encode outputs as a V2 response; returns the body and the JSON header's length when binary."""
    names = request.outputs if request.outputs is not None else list(outputs)
    items, chunks = [], []
    for name in names:
        array = np.ascontiguousarray(outputs[name])
        item = {"name": name, "datatype": datatypes[name], "shape": list(array.shape)}
        if request.binary.get(name, request.binary_default):
            raw = array.tobytes()
            item["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            item["data"] = array.ravel().tolist()
        items.append(item)
    response = {"model_name": model, "model_version": version, "outputs": items}
    if request.id is not None:
        response["id"] = request.id
    header = dumps(response)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
