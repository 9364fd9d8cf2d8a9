"""Property-based tests: whatever a client or a file holds, the decoders answer with a clean error.

Hypothesis makes the inputs: V2 inference requests (JSON and binary over REST, ModelInferRequest
over gRPC) and the files the tools read (.npz/.npy arrays, ONNX test data, spec.json). Each must
be decoded or refused with the toolkit's own error (RequestError, InputError), never another
exception (a traceback, a 500) and never a hang (each example runs under an alarm). The example
counts are kept small for CI; the strategies start from valid inputs and break them, so most
examples reach deep into the decoders.
"""

from __future__ import annotations

import contextlib
import json
import signal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxparity.errors import InputError
from onnxparity.serve.protocol import DATATYPES, RequestError, TensorInfo, parse_infer_request
from onnxparity.signature import Signature, TensorSpec

EXAMPLES = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INPUTS = {"x": TensorInfo("x", "FP32", (-1, 3)), "ids": TensorInfo("ids", "INT64", (-1, 2))}
OUTPUTS = {"y": TensorInfo("y", "FP32", (-1,))}
SIGNATURE = Signature((TensorSpec("x", "float32", ("batch", 3)), TensorSpec("ids", "int64", ("batch", 2))),
                      (TensorSpec("y", "float32", ("batch",)),))


@contextlib.contextmanager
def no_hang(seconds: float = 5.0):
    """A decoder that runs longer than this on one input fails the test instead of hanging CI."""
    def ring(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def clean(call, *errors):
    """Run ``call``: it succeeds or raises one of ``errors`` with a one-line message."""
    with no_hang():
        try:
            return call()
        except errors as exc:
            assert str(exc) and "\n" not in str(exc) and "Traceback" not in str(exc), repr(exc)
            return exc


# -- values to break valid requests with -----------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
shapes = st.lists(st.integers(-3, 2**40), max_size=4) | st.just([2, 3]) | st.just([1, 2]) | json_values
datatypes = st.sampled_from([*DATATYPES, "BYTES", "BF16", "fp32", ""]) | json_values


@st.composite
def v2_tensors(draw, name: str, shape: list[int], datatype: str):
    """One input of a V2 request: valid most of the time, then with one field replaced or dropped."""
    rows = int(np.prod(shape)) if all(isinstance(d, int) and d >= 0 for d in shape) else 0
    data = draw(st.lists(st.floats(-1e6, 1e6) | st.integers(-300, 300), min_size=rows, max_size=rows))
    item = {"name": name, "datatype": datatype, "shape": shape, "data": data}
    field = draw(st.sampled_from(["", "", "name", "datatype", "shape", "data", "parameters", "drop"]))
    if field == "drop":
        del item[draw(st.sampled_from(sorted(item)))]
    elif field == "parameters":
        item["parameters"] = draw(st.dictionaries(st.sampled_from(["binary_data_size", "x"]), json_values, max_size=2)
                                  | json_values)
    elif field:
        item[field] = draw({"name": st.text(max_size=5) | json_values, "datatype": datatypes, "shape": shapes,
                            "data": json_values | st.lists(json_values, max_size=8)}[field])
    return item


@st.composite
def v2_bodies(draw):
    """(body bytes, Inference-Header-Content-Length or None) of a V2 REST request, JSON or binary."""
    n = draw(st.integers(0, 3))
    inputs = [draw(v2_tensors("x", [n, 3], "FP32")), draw(v2_tensors("ids", [n, 2], "INT64"))]
    request = {"inputs": draw(st.permutations(inputs) | st.lists(json_values, max_size=3))}
    for key in draw(st.lists(st.sampled_from(["id", "outputs", "parameters", "extra"]), max_size=3)):
        request[key] = draw(json_values | st.just([{"name": "y", "parameters": {"binary_data": True}}]))
    binary = b""
    if draw(st.booleans()):  # the binary tensor data extension: some inputs' data as raw bytes after the JSON
        for item in request["inputs"] if isinstance(request["inputs"], list) else []:
            if isinstance(item, dict) and draw(st.booleans()):
                raw = draw(st.binary(max_size=64))
                item.pop("data", None)
                item["parameters"] = {"binary_data_size": draw(st.sampled_from([len(raw), len(raw) + 4, -1, 0]))}
                binary += raw
    header = json.dumps(request, allow_nan=True).encode()
    if draw(st.integers(0, 9)) == 0:  # now and then, not JSON at all
        header = draw(st.binary(max_size=40))
    length = None
    if binary or draw(st.integers(0, 4)) == 0:
        length = draw(st.sampled_from([str(len(header)), str(len(header) + 3), "-1", "x", str(2**70)]))
    return header + binary, length


@EXAMPLES
@given(v2_bodies())
def test_any_rest_request_is_decoded_or_refused_cleanly(body):
    data, length = body
    parsed = clean(lambda: parse_infer_request(data, length, INPUTS, OUTPUTS), RequestError)
    if not isinstance(parsed, RequestError):
        assert set(parsed.inputs) == set(INPUTS)
        assert parsed.inputs["x"].dtype == np.float32 and parsed.inputs["x"].shape[1:] == (3,)


@EXAMPLES
@given(st.binary(max_size=200), st.none() | st.text(max_size=6))
def test_any_bytes_are_refused_cleanly(data, length):
    clean(lambda: parse_infer_request(data, length, INPUTS, OUTPUTS), RequestError)


def test_deeply_nested_json_is_refused_cleanly():
    for body in (b"[" * 100_000, b'{"inputs": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}"):
        clean(lambda: parse_infer_request(body, None, INPUTS, OUTPUTS), RequestError)


@st.composite
def grpc_requests(draw):
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name="m", id=draw(st.text(max_size=4)))
    n = draw(st.integers(0, 3))
    raw = draw(st.booleans())
    for name, dims, datatype, dtype in (("x", [n, 3], "FP32", np.float32), ("ids", [n, 2], "INT64", np.int64)):
        if draw(st.integers(0, 5)) == 0:
            continue
        name = draw(st.sampled_from([name, name, "z", ""]))
        datatype = draw(st.sampled_from([datatype, datatype, *DATATYPES, "BYTES", "nope"]))
        dims = draw(st.just(dims) | st.lists(st.integers(-2, 2**40), max_size=4))
        tensor = request.inputs.add(name=name, datatype=datatype, shape=dims)
        count = int(np.prod(dims)) if all(0 <= d < 64 for d in dims) else 3
        if raw:
            request.raw_input_contents.append(draw(st.just(np.zeros(count, dtype).tobytes()) | st.binary(max_size=64)))
        else:
            field = draw(st.sampled_from(["fp32_contents", "int64_contents", "int_contents", "bool_contents",
                                          "fp64_contents", "uint_contents"]))
            values = {"fp32_contents": st.floats(width=32), "fp64_contents": st.floats(),
                      "int64_contents": st.integers(-2**63, 2**63 - 1), "int_contents": st.integers(-2**31, 2**31 - 1),
                      "uint_contents": st.integers(0, 2**32 - 1), "bool_contents": st.booleans()}[field]
            getattr(tensor.contents, field).extend(draw(st.lists(values, min_size=0, max_size=count + 1)))
    for name in draw(st.lists(st.sampled_from(["y", "q", ""]), max_size=2)):
        request.outputs.add(name=name)
    return request


@EXAMPLES
@given(grpc_requests())
def test_any_grpc_request_is_decoded_or_refused_cleanly(request):
    from onnxparity.serve.grpc_protocol import parse_model_infer

    parsed = clean(lambda: parse_model_infer(request, INPUTS, OUTPUTS), RequestError)
    if not isinstance(parsed, RequestError):
        assert set(parsed.inputs) == set(INPUTS)


# -- the files the tools read ------------------------------------------------------------------------
@st.composite
def npz_files(draw):
    """The bytes of an .npz: arrays of any dtype and shape under good and bad names, or garbage."""
    import io

    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    arrays = {}
    for name in draw(st.lists(st.sampled_from(["x", "ids", "labels", "y", "other"]), unique=True, max_size=4)):
        dtype = draw(st.sampled_from(["float32", "float64", "int64", "int8", "uint8", "bool", "float16", "<U3",
                                      "complex64"]))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        arrays[name] = np.zeros(shape, dtype)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    if draw(st.booleans()):  # a truncated or corrupted file
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8))
    return data


@EXAMPLES
@given(npz_files(), st.sampled_from([".npz", ".npy"]))
def test_any_npz_or_npy_file_is_read_or_refused_cleanly(tmp_path, data, suffix):
    from onnxparity.inputs.files import load_arrays

    path = tmp_path / f"inputs{suffix}"
    path.write_bytes(data)
    clean(lambda: load_arrays(path, SIGNATURE), InputError)
    clean(lambda: load_arrays(path, None), InputError)


@EXAMPLES
@given(npz_files())
def test_any_saved_reference_npz_is_read_or_refused_cleanly(tmp_path, data):
    from onnxparity.inputs.testdata import load_reference

    path = tmp_path / "reference.npz"
    path.write_bytes(data)
    clean(lambda: load_reference(path, SIGNATURE), InputError)


@st.composite
def tensor_protos(draw):
    """The bytes of an ONNX TensorProto: valid ones of any dtype and shape, broken ones, garbage."""
    from onnx import TensorProto, numpy_helper

    kind = draw(st.sampled_from(["array", "array", "fields", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=100))
    if kind == "array":
        dtype = draw(st.sampled_from(["float32", "int64", "float64", "uint8", "bool", "float16"]))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        name = draw(st.sampled_from(["x", "ids", "y", "", "zz"]))
        return numpy_helper.from_array(np.zeros(shape, dtype), name).SerializeToString()
    tensor = TensorProto(name=draw(st.sampled_from(["x", "y"])), data_type=draw(st.sampled_from([1, 7, 8, 16, 0, 99])),
                         dims=draw(st.lists(st.integers(-1, 3), max_size=3)), raw_data=draw(st.binary(max_size=40)))
    return tensor.SerializeToString()


@EXAMPLES
@given(st.lists(tensor_protos(), min_size=1, max_size=3), st.lists(tensor_protos(), max_size=2), st.booleans())
def test_any_onnx_test_data_is_read_or_refused_cleanly(tmp_path_factory, inputs, outputs, in_sets):
    from onnxparity.inputs.testdata import load_reference

    root = tmp_path_factory.mktemp("testdata")
    folder = root / "test_data_set_0" if in_sets else root
    folder.mkdir(exist_ok=True)
    for kind, protos in (("input", inputs), ("output", outputs)):
        for i, data in enumerate(protos):
            (folder / f"{kind}_{i}.pb").write_bytes(data)
    clean(lambda: load_reference(root, SIGNATURE), InputError)


spec_fields = st.fixed_dictionaries({}, optional={
    "name": json_values, "framework": st.sampled_from(["keras", "torch", "onnx"]) | json_values,
    "input_shape": st.lists(st.integers(-1, 64), max_size=4) | json_values,
    "layout": st.sampled_from(["NCHW", "NHWC"]) | json_values, "scale": json_values, "mean": json_values,
    "std": json_values, "labels": json_values, "output": json_values, "input_dtype": json_values,
    "signature": json_values, "architecture": json_values, "torch_kwargs": json_values, "extra": json_values})


@EXAMPLES
@given(spec_fields | json_values, st.booleans())
def test_any_spec_file_is_read_or_refused_cleanly(tmp_path, content, garbage):
    from onnxparity.spec import ModelSpec

    path = tmp_path / "spec.json"
    path.write_bytes(b"\xff{not json" if garbage else json.dumps(content, allow_nan=True).encode())
    spec = clean(lambda: ModelSpec.read(path), InputError)
    if isinstance(spec, ModelSpec):  # what it read, it can use: describe itself and its input
        clean(lambda: (spec.to_dict(), spec.signature, spec.to_metadata()), InputError)
