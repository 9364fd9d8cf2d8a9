"""`onnxparity serve` against a real V2 peer: KServe's own model server on the same ONNX file.

The peer (``tests/kserve_peer.py``) runs in an environment of its own (kserve pins versions of
its own), which `.ci/run` makes and names in ``ONNXPARITY_KSERVE_PYTHON``; without it the module
skips, except under CI, where it must run. Both servers get the same requests, over REST (the
V2 spec's examples, JSON and binary bodies, every refused request of test_serve.py) and gRPC;
status codes, output names, shapes, datatypes, data and error shapes must agree, except where
docs/serve.md ("Against KServe") lists a deliberate difference: each is pinned here, so a
change on either side shows.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.test_serve import BAD_REQUESTS, MAX_BATCH

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = os.environ.get("ONNXPARITY_KSERVE_PYTHON")
MODEL = "torch_net"
pytestmark = pytest.mark.slow


def _peer_missing() -> str | None:
    if PEER_PYTHON and Path(PEER_PYTHON).is_file():
        return None
    return (f"the KServe peer's environment is absent (ONNXPARITY_KSERVE_PYTHON={PEER_PYTHON!r}); "
            ".ci/run makes it: python3 -m venv ENV && ENV/bin/pip install -r tests/kserve-peer-requirements.txt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{url} did not become ready:\n{log.read_text()[-2000:]}")


class Peers:
    def __init__(self, ours: str, theirs: str, ours_grpc: str, theirs_grpc: str):
        self.ours, self.theirs, self.ours_grpc, self.theirs_grpc = ours, theirs, ours_grpc, theirs_grpc

    def both(self, method: str, path: str, **kw) -> tuple[requests.Response, requests.Response]:
        return tuple(requests.request(method, base + path, timeout=10, **kw) for base in (self.ours, self.theirs))


if _peer_missing() and not os.environ.get("CI"):  # before any fixture trains a model for nothing
    pytest.skip(_peer_missing(), allow_module_level=True)


@pytest.fixture(scope="module")
def peers(request, tmp_path_factory):
    if _peer_missing():
        pytest.fail(_peer_missing())  # under CI, the peer must run
    torch_onnx = request.getfixturevalue("torch_onnx")
    folder = tmp_path_factory.mktemp("peer")
    model = folder / f"{MODEL}.onnx"
    shutil.copy(torch_onnx, model)
    ports = [_free_port() for _ in range(4)]
    logs = [folder / "ours.log", folder / "kserve.log"]
    commands = [
        [sys.executable, "-m", "onnxparity", "serve", str(model), "--port", str(ports[0]), "--grpc-port",
         str(ports[1]), "--max-batch-size", str(MAX_BATCH), "--max-request-mb", "1", "--choose-s", "0"],
        [PEER_PYTHON, str(ROOT / "tests" / "kserve_peer.py"), str(model), "--http_port", str(ports[2]),
         "--grpc_port", str(ports[3])],
    ]
    procs = []
    for command, log in zip(commands, logs):
        with open(log, "w") as sink:
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT))
    try:
        urls = [f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[2]}"]
        for proc, url, log in zip(procs, urls, logs):
            _wait_ready(proc, url, log)
        yield Peers(urls[0], urls[1], f"127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[3]}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def x(torch_onnx, test_digits) -> np.ndarray:
    from onnxparity.onnx_model import OnnxModel

    return OnnxModel(torch_onnx).spec.preprocess(test_digits.images[:3])


# -- REST ---------------------------------------------------------------------------------------------
def _tensors(response: requests.Response) -> tuple[dict, dict[str, np.ndarray]]:
    """A V2 response (JSON, or JSON + binary tensors) -> its header and each output's array."""
    length = response.headers.get("Inference-Header-Content-Length")
    raw = response.content
    header = json.loads(raw[: int(length)] if length else raw)
    arrays, offset = {}, int(length or 0)
    for out in header["outputs"]:
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arrays[out["name"]] = np.asarray(out["data"], np.float32).reshape(out["shape"])
        else:
            arrays[out["name"]] = np.frombuffer(raw[offset : offset + size], np.float32).reshape(out["shape"])
            offset += size
    return header, arrays


def _binary(header: dict, x: np.ndarray) -> dict:
    head = json.dumps(header).encode()
    return {"data": head + x.tobytes(), "headers": {"Inference-Header-Content-Length": str(len(head)),
                                                     "Content-Type": "application/octet-stream"}}


def _json_input(x: np.ndarray, nested: bool = False) -> dict:
    return {"name": "input", "datatype": "FP32", "shape": list(x.shape),
            "data": x.tolist() if nested else x.ravel().tolist()}


def _binary_input(x: np.ndarray) -> dict:
    return {"name": "input", "datatype": "FP32", "shape": list(x.shape), "parameters": {"binary_data_size": x.nbytes}}


GOOD = {  # case -> (request kwargs from x, binary outputs expected)
    "spec example: JSON, id, named output": (lambda x: {"json": {"id": "42", "inputs": [_json_input(x)],
                                                                 "outputs": [{"name": "log_probabilities"}]}}, False),
    "JSON, nested data, every output": (lambda x: {"json": {"inputs": [_json_input(x, nested=True)]}}, False),
    "binary in, binary output asked by name": (lambda x: _binary(
        {"id": "b", "inputs": [_binary_input(x)],
         "outputs": [{"name": "log_probabilities", "parameters": {"binary_data": True}}]}, x), True),
    "binary in, binary_data_output": (lambda x: _binary(
        {"inputs": [_binary_input(x)], "parameters": {"binary_data_output": True}}, x), True),
    "binary in, JSON out": (lambda x: _binary({"inputs": [_binary_input(x)]}, x), False),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_answers_agree(peers, x, case):
    make, binary = GOOD[case]
    ours, theirs = peers.both("POST", f"/v2/models/{MODEL}/infer", **make(x))
    assert ours.status_code == theirs.status_code == 200, (ours.text[:300], theirs.text[:300])
    (our_header, our_arrays), (their_header, their_arrays) = _tensors(ours), _tensors(theirs)
    assert ("Inference-Header-Content-Length" in ours.headers) == binary
    assert ("Inference-Header-Content-Length" in theirs.headers) == binary
    describe = [{k: o[k] for k in ("name", "shape", "datatype")} for o in our_header["outputs"]]
    assert describe == [{k: o[k] for k in ("name", "shape", "datatype")} for o in their_header["outputs"]]
    assert describe == [{"name": "log_probabilities", "shape": [3, 10], "datatype": "FP32"}]
    np.testing.assert_allclose(our_arrays["log_probabilities"], their_arrays["log_probabilities"], rtol=1e-5,
                               atol=1e-6)
    assert our_header["model_name"] == their_header["model_name"] == MODEL
    asked = make(x).get("json", {}).get("id") or ("b" if "by name" in case else None)
    if asked:
        assert our_header["id"] == their_header["id"] == asked
    else:  # deliberate: KServe makes up an id; we, as Triton, send one only when the request has one
        assert "id" not in our_header and len(their_header["id"]) == 36
    # deliberate: our model has version "1" (Triton's layout); KServe has no versions
    assert (our_header["model_version"], their_header["model_version"]) == ("1", None)


def test_health_and_metadata_agree(peers):
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        ours, theirs = peers.both("GET", path)
        assert ours.status_code == theirs.status_code == 200 and ours.json() == theirs.json(), path
    ours, theirs = (r.json() for r in peers.both("GET", f"/v2/models/{MODEL}"))
    assert ours["name"] == theirs["name"] and ours["inputs"] == theirs["inputs"] and ours["outputs"] == theirs["outputs"]
    # deliberate: versions and platform as Triton reports them; KServe's custom model leaves them empty
    assert (ours["versions"], ours["platform"], theirs["versions"], theirs["platform"]) == (
        ["1"], "onnxruntime_onnx", None, "")
    ours, theirs = (r.json() for r in peers.both("GET", "/v2"))
    assert set(ours) == set(theirs) == {"name", "version", "extensions"}


# The requests one side refuses with another status than the other (docs/serve.md lists why):
# case -> KServe's status. Every other case of test_serve.py gets the same status from both.
KSERVE_DIFFERS = {
    "NaN": 200,  # KServe runs it; we refuse a NaN or infinity by name
    "too few values": 500,  # KServe's reshape fails inside; a client's error is a 400 here
    "strings for floats": 500,
    "binary size wrong": 500,
    "binary data short": 500,
    "binary data left over": 200,  # KServe ignores the extra bytes; we refuse bytes no input claims
    "header length past body": 200,  # KServe reads what is there
    "batch too large": 200,  # KServe has no max_batch_size
    "empty batch": 200,  # KServe runs a batch of 0 rows
    "malformed JSON": 422,  # FastAPI's validation error, {"detail": [...]}
    "missing data": 422,
    "oversize body": 422,  # KServe has no body limit; it then fails to parse the bytes
    "unknown version": 501,  # KServe has no versions; we serve version 1 and 404 others, as Triton
}
FASTAPI_SHAPED = {"malformed JSON", "missing data", "oversize body"}  # {"detail": ...}, not V2's {"error"}


@pytest.mark.parametrize("case", [c for c, (path, *_) in BAD_REQUESTS.items()
                                  if path.startswith(f"/v2/models/{MODEL}/") or "resnet50" in path])
def test_refused_requests_agree_or_differ_as_documented(peers, case):
    path, kwargs, status, _ = BAD_REQUESTS[case]
    ours, theirs = peers.both("POST", path, **kwargs)
    assert ours.status_code == status and set(ours.json()) == {"error"}
    assert theirs.status_code == KSERVE_DIFFERS.get(case, status), (case, theirs.status_code, theirs.text[:300])
    if theirs.status_code >= 400:
        assert set(theirs.json()) == ({"detail"} if case in FASTAPI_SHAPED else {"error"}), theirs.text[:300]


def test_route_errors_have_the_v2_shape_here_and_fastapis_there(peers):
    for method, path, status in (("GET", f"/v2/models/{MODEL}/infer", 405), ("GET", "/v3/anything", 404)):
        ours, theirs = peers.both(method, path)
        assert ours.status_code == theirs.status_code == status
        assert set(ours.json()) == {"error"} and set(theirs.json()) == {"detail"}


# -- gRPC -------------------------------------------------------------------------------------------
def _grpc_request(x: np.ndarray, typed: bool = False, **fields):
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=fields.pop("model", MODEL), **fields)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    if typed:
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
    else:
        request.raw_input_contents.append(x.tobytes())
    return request


def _grpc_outputs(response) -> dict[str, np.ndarray]:
    if response.raw_output_contents:
        return {o.name: np.frombuffer(raw, np.float32).reshape(o.shape)
                for o, raw in zip(response.outputs, response.raw_output_contents)}
    return {o.name: np.asarray(o.contents.fp32_contents, np.float32).reshape(o.shape) for o in response.outputs}


def test_grpc_answers_and_refusals_agree(peers, x):
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channels = [grpc.insecure_channel(a) for a in (peers.ours_grpc, peers.theirs_grpc)]
    ours, theirs = (service_pb2_grpc.GRPCInferenceServiceStub(c) for c in channels)
    try:
        for typed in (False, True):
            a, b = (stub.ModelInfer(_grpc_request(x, typed, id="g"), timeout=10) for stub in (ours, theirs))
            assert [(o.name, o.datatype, list(o.shape)) for o in a.outputs] == \
                   [(o.name, o.datatype, list(o.shape)) for o in b.outputs] == [("log_probabilities", "FP32", [3, 10])]
            np.testing.assert_allclose(_grpc_outputs(a)["log_probabilities"], _grpc_outputs(b)["log_probabilities"],
                                       rtol=1e-5, atol=1e-6)
            assert a.id == b.id == "g"
            # deliberate: outputs always in raw_output_contents, as Triton; KServe mirrors the request's form
            assert len(a.raw_output_contents) == 1 and len(b.raw_output_contents) == (0 if typed else 1)
        assert ours.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
        assert theirs.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready
        # deliberate: an unknown model is "not ready" (Triton); KServe answers NOT_FOUND
        assert not ours.ModelReady(service_pb2.ModelReadyRequest(name="nope"), timeout=10).ready
        with pytest.raises(grpc.RpcError) as caught:
            theirs.ModelReady(service_pb2.ModelReadyRequest(name="nope"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        nan = np.full_like(x, np.nan)
        cases = {  # case -> (request, our code, KServe's code)
            "unknown model": (_grpc_request(x, model="nope"), "NOT_FOUND", "NOT_FOUND"),
            "wrong shape": (_grpc_request(x.reshape(3, 28, 28, 1)), "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
            "NaN": (_grpc_request(nan), "INVALID_ARGUMENT", "OK"),
            "empty batch": (_grpc_request(x[:0]), "INVALID_ARGUMENT", "OK"),
            "unknown version": (_grpc_request(x, model_version="7"), "NOT_FOUND", "OK"),  # KServe ignores it
        }
        short = _grpc_request(x)
        short.raw_input_contents[0] = b"\0" * 100
        cases["raw bytes short"] = (short, "INVALID_ARGUMENT", "INTERNAL")
        unknown_output = _grpc_request(x)
        unknown_output.outputs.add(name="logits")
        cases["unknown output"] = (unknown_output, "INVALID_ARGUMENT", "OK")  # KServe's gRPC ignores it
        for case, (request, want_ours, want_theirs) in cases.items():
            got = []
            for stub in (ours, theirs):
                try:
                    stub.ModelInfer(request, timeout=10)
                    got.append("OK")
                except grpc.RpcError as exc:
                    got.append(exc.code().name)
            assert got == [want_ours, want_theirs], case
    finally:
        for c in channels:
            c.close()
