"""`onnxparity serve --grpc-port`: the V2 gRPC API with tritonclient.grpc, against the same server's REST.

One server subprocess for the module (as users run it, on free loopback ports) answers both
wires; every answer over gRPC must equal the REST one: metadata, config, tensors, and the
message of each refused request, with its gRPC status code.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_serve import MAX_BATCH, _feed, _metric, served_models  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # every test here serves the reference models, trained and converted once a session


class Servers:
    def __init__(self, proc: subprocess.Popen, http: str, grpc: str, log: Path):
        self.proc, self.http, self.grpc, self.log = proc, http, grpc, log

    def get(self, path: str):
        import requests

        return requests.get(self.http + path, timeout=10)


@pytest.fixture(scope="module")
def server(served_models, tmp_path_factory):  # noqa: F811
    log = tmp_path_factory.mktemp("grpc") / "server.log"
    cmd = [sys.executable, "-m", "onnxparity", "serve", str(served_models), "--port", "0", "--grpc-port", "0",
           "--max-batch-size", str(MAX_BATCH), "--max-queue-delay-us", "2000", "--choose-s", "0"]
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    deadline, srv = time.monotonic() + 60, None
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        http = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
        grpc = re.search(r"grpc 127\.0\.0\.1:(\d+) ", text)
        if http and grpc and "ready" in text:
            srv = Servers(proc, f"http://127.0.0.1:{http.group(1)}", f"127.0.0.1:{grpc.group(1)}", log)
            break
        time.sleep(0.1)
    if srv is None:
        proc.kill()
        raise AssertionError(f"the server did not start:\n{log.read_text()[-2000:]}")
    yield srv
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(10) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def clients(server):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    g = grpcclient.InferenceServerClient(server.grpc)
    h = httpclient.InferenceServerClient(server.http.removeprefix("http://"))
    yield g, h
    g.close()
    h.close()


@pytest.fixture(scope="module")
def reference(served_models):  # noqa: F811
    from onnxparity.runners.sessions import make_session
    from onnxparity.serve import load_models

    return {name: (m, make_session(m.path)) for name, m in load_models(served_models).items()}


def _ints(obj):
    """tritonclient.grpc's as_json writes int64 fields as strings (protobuf's JSON rule): shapes back to ints."""
    if isinstance(obj, dict):
        return {k: [int(d) for d in v] if k in ("shape", "dims") else _ints(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ints(v) for v in obj]
    return obj


def test_health_metadata_and_config_equal_rest(clients, reference):
    g, h = clients
    assert g.is_server_live() and g.is_server_ready()
    assert g.get_server_metadata(as_json=True) == h.get_server_metadata()
    for name in reference:
        assert g.is_model_ready(name) and g.is_model_ready(name, "1")
        assert _ints(g.get_model_metadata(name, as_json=True)) == h.get_model_metadata(name)
        assert _ints(g.get_model_metadata(name, "1", as_json=True)) == h.get_model_metadata(name, "1")
        config, want = _ints(g.get_model_config(name, as_json=True)["config"]), h.get_model_config(name)
        assert config["max_batch_size"] == MAX_BATCH == want["max_batch_size"]
        assert config["input"] == want["input"] and config["output"] == want["output"]
        delay = {k: int(v) for k, v in config["dynamic_batching"].items()}  # a uint64: a string in protobuf's JSON
        assert delay == want["dynamic_batching"] == {"max_queue_delay_microseconds": 2000}
    # As Triton: an unknown model or version is not ready, not an error.
    assert not g.is_model_ready("no_such_model") and not g.is_model_ready("torch_net", "7")
    index = g.get_model_repository_index(as_json=True)["models"]
    assert index == [{"name": n, "version": "1", "state": "READY"} for n in reference]


def test_infer_equals_rest_and_in_process_onnxruntime(clients, reference, test_digits):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    g, h = clients
    digits = test_digits.images[:12]
    for name, (model, session) in reference.items():
        x = _feed(model, digits)
        datatype = "UINT8" if x.dtype == np.uint8 else "FP32"
        gi = grpcclient.InferInput("input", list(x.shape), datatype)
        gi.set_data_from_numpy(x)
        hi = httpclient.InferInput("input", list(x.shape), datatype)
        hi.set_data_from_numpy(x)
        out = model.digit_output
        got = g.infer(name, [gi], outputs=[grpcclient.InferRequestedOutput(out)], request_id=f"g-{name}",
                      model_version="1")
        want = h.infer(name, [hi], outputs=[httpclient.InferRequestedOutput(out)], request_id=f"g-{name}")
        assert got.as_numpy(out).dtype == np.float32 and got.as_numpy(out).shape == (12, 10)
        np.testing.assert_array_equal(got.as_numpy(out), want.as_numpy(out), err_msg=name)
        (direct,) = session.run([out], {"input": x})
        np.testing.assert_allclose(got.as_numpy(out), direct, rtol=1e-5, atol=1e-6, err_msg=name)
        response = got.get_response()
        assert (response.id, response.model_name, response.model_version) == (f"g-{name}", name, "1")
        assert [o.name for o in response.outputs] == [out] and list(response.outputs[0].shape) == [12, 10]
        # No outputs asked for: every output, in the model's order, as REST gives them.
        every = g.infer(name, [gi]).get_response()
        assert [o.name for o in every.outputs] == [o["name"] for o in h.get_model_metadata(name)["outputs"]]


def test_typed_contents_are_read_like_raw_bytes(server, reference, test_digits):
    """Not what tritonclient sends, but the protocol allows it: tensors in InferTensorContents."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    try:
        for name, field in (("torch_net", "fp32_contents"), ("torch_net_uint8", "uint_contents")):
            model, session = reference[name]
            x = _feed(model, test_digits.images[:3])
            request = service_pb2.ModelInferRequest(model_name=name)
            tensor = request.inputs.add(name="input", datatype="UINT8" if x.dtype == np.uint8 else "FP32",
                                        shape=x.shape)
            getattr(tensor.contents, field).extend(x.ravel().tolist())
            response = stub.ModelInfer(request, timeout=10)
            got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(3, 10)
            np.testing.assert_allclose(got, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-6)
        request = service_pb2.ModelInferRequest(model_name="torch_net_uint8")
        tensor = request.inputs.add(name="input", datatype="UINT8", shape=[1, 28, 28])
        tensor.contents.uint_contents.extend([300] * 784)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "uint8" in caught.value.details()
    finally:
        channel.close()


def _grpc_input(shape, datatype="FP32", name="input", fill=0.0, raw: bytes | None = None):
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput(name, list(shape), datatype)
    if raw is not None:
        inp._raw_content = raw
    else:
        inp.set_data_from_numpy(np.full(shape, fill, dtype=np.uint8 if datatype == "UINT8" else np.float32))
    return inp


BAD = {  # case -> (model, version, inputs, outputs, gRPC status, words)
    "unknown model": ("resnet50", "", lambda: [_grpc_input([1, 1, 28, 28])], None, "NOT_FOUND",
                      "unknown model 'resnet50'"),
    "unknown version": ("torch_net", "7", lambda: [_grpc_input([1, 1, 28, 28])], None, "NOT_FOUND", "no version '7'"),
    "unknown input": ("torch_net", "", lambda: [_grpc_input([1, 1, 28, 28], name="image")], None, "INVALID_ARGUMENT",
                      "no such input"),
    "wrong shape": ("torch_net", "", lambda: [_grpc_input([1, 28, 28, 1])], None, "INVALID_ARGUMENT", "does not fit"),
    "wrong datatype": ("torch_net", "", lambda: [_grpc_input([1, 28, 28], "UINT8")], None, "INVALID_ARGUMENT",
                       "datatype must be FP32"),
    "NaN": ("torch_net", "", lambda: [_grpc_input([1, 1, 28, 28], fill=np.nan)], None, "INVALID_ARGUMENT", "NaN"),
    "raw bytes short": ("torch_net", "", lambda: [_grpc_input([1, 1, 28, 28], raw=b"\0" * 100)], None,
                        "INVALID_ARGUMENT", "raw_input_contents is 100 bytes"),
    "unknown output": ("torch_net", "", lambda: [_grpc_input([1, 1, 28, 28])], "logits", "INVALID_ARGUMENT",
                       "no such output"),
    "batch too large": ("torch_net", "", lambda: [_grpc_input([MAX_BATCH + 1, 1, 28, 28])], None,
                        "INVALID_ARGUMENT", "max_batch_size"),
    "empty batch": ("torch_net", "", lambda: [_grpc_input([0, 1, 28, 28])], None, "INVALID_ARGUMENT", "empty"),
}


def _rest_equivalent(model: str, version: str, inputs, output: str | None) -> tuple[str, bytes, dict]:
    """The same request as REST sends it: the inputs' bytes as binary tensor data."""
    header = {"inputs": [{"name": i.name(), "datatype": i.datatype(), "shape": [int(d) for d in i.shape()],
                          "parameters": {"binary_data_size": len(i._raw_content)}} for i in inputs]}
    if output:
        header["outputs"] = [{"name": output}]
    head = json.dumps(header).encode()
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return path, head + b"".join(i._raw_content for i in inputs), {"Inference-Header-Content-Length": str(len(head))}


@pytest.mark.parametrize("case", list(BAD))
def test_refused_request_gets_the_status_code_and_rest_message(clients, server, case):
    import requests
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    g, _ = clients
    model, version, make_inputs, output, code, words = BAD[case]
    inputs = make_inputs()
    outputs = [grpcclient.InferRequestedOutput(output)] if output else None
    before = _metric(server, "onnxparity_requests_total", f'status="{code}"')
    with pytest.raises(InferenceServerException) as caught:
        g.infer(model, inputs, outputs=outputs, model_version=version)
    assert caught.value.status() == f"StatusCode.{code}", caught.value
    message = caught.value.message()
    assert words.lower() in message.lower() and "\n" not in message
    assert _metric(server, "onnxparity_requests_total", f'status="{code}"') == before + 1  # this request, counted
    # REST refuses the same request with the same words (its binary field has its own name).
    path, body, headers = _rest_equivalent(model, version, inputs, output)
    r = requests.post(server.http + path, data=body, headers=headers, timeout=10)
    assert r.status_code == {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400}[code]
    assert r.json()["error"].replace("binary_data_size", "raw_input_contents") == message
    assert g.is_server_live() and g.is_server_ready()  # and it goes on


def test_concurrent_grpc_requests_share_the_batcher(server, reference, test_digits):
    import tritonclient.grpc.aio as aioclient

    model, session = reference["torch_net"]
    x = _feed(model, test_digits.images[:40])
    before = _metric(server, "onnxparity_batch_size_count", 'model="torch_net"')

    async def all_at_once():
        client = aioclient.InferenceServerClient(server.grpc)
        try:
            async def one(row):
                inp = aioclient.InferInput("input", [1, *row.shape], "FP32")
                inp.set_data_from_numpy(row[None])
                return (await client.infer("torch_net", [inp])).as_numpy("log_probabilities")[0]

            return await asyncio.gather(*(one(row) for row in x))
        finally:
            await client.close()

    got = np.stack(asyncio.run(all_at_once()))
    np.testing.assert_allclose(got, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-5)
    runs = _metric(server, "onnxparity_batch_size_count", 'model="torch_net"') - before
    assert 1 <= runs <= 0.75 * len(x), f"{len(x)} concurrent requests ran as {runs} batches"


def test_unavailable_until_warm(served_models):  # noqa: F811
    """Before warm-up: ServerReady false, ModelInfer UNAVAILABLE; after it, answers (in process)."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from onnxparity.serve import load_models
    from onnxparity.serve.app import InferenceServer, ServeConfig
    from onnxparity.serve.grpc_server import start_grpc

    models = load_models(served_models / "torch_net.onnx")

    async def check():
        srv = InferenceServer(models, ServeConfig(batching=False))
        aio, port = await start_grpc(srv, "127.0.0.1", 0, 1 << 20)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
                request = service_pb2.ModelInferRequest(model_name="torch_net")
                request.inputs.add(name="input", datatype="FP32", shape=[1, 1, 28, 28])
                request.raw_input_contents.append(bytes(784 * 4))
                assert (await stub.ServerLive(service_pb2.ServerLiveRequest())).live
                assert not (await stub.ServerReady(service_pb2.ServerReadyRequest())).ready
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.ModelInfer(request)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "warming up" in caught.value.details()
                await srv.warm_up()
                assert (await stub.ServerReady(service_pb2.ServerReadyRequest())).ready
                response = await stub.ModelInfer(request)
                assert len(response.raw_output_contents[0]) == 10 * 4
                request.ClearField("raw_input_contents")  # neither raw nor typed contents: no data
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.ModelInfer(request)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await aio.stop(None)
            srv.executor.shutdown(wait=False)

    asyncio.run(check())


def test_grpc_port_in_use_is_a_one_line_error(served_models):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "onnxparity", "serve", str(served_models / "torch_net.onnx"),
                            "--port", "0", "--grpc-port", str(port), "--choose-s", "0"], cwd=ROOT,
                           capture_output=True, text=True,
                           timeout=60)
    assert r.returncode == 2 and r.stderr == f"onnxparity: error: cannot listen for gRPC on 127.0.0.1:{port} " \
                                             "(Address already in use)\n", r.stderr
    assert "ready" not in r.stdout


def test_kserve_manifest_names_the_grpc_port(served_models, tmp_path):  # noqa: F811
    yaml = pytest.importorskip("yaml")
    from onnxparity.serve.triton import GRPC_PORT, inference_service

    rest = inference_service("digits", "s3://b/r")
    assert yaml.safe_load(rest)["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    assert f"containerPort: {GRPC_PORT}" in rest and "grpc-v2" in rest  # said, in a comment
    r = subprocess.run([sys.executable, "-m", "onnxparity", "export-triton", str(served_models / "torch_net.onnx"),
                        str(tmp_path / "repo"), "--grpc"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    model = yaml.safe_load((tmp_path / "repo" / "inferenceservice.yaml").read_text())["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "grpc-v2" and model["runtime"] == "kserve-tritonserver"
    assert model["ports"] == [{"containerPort": 9000, "name": "h2c", "protocol": "TCP"}]


def test_grpc_service_imports_no_training_framework(served_models):  # noqa: F811
    code = ("import sys; from onnxparity.serve import load_models; from onnxparity.serve.app import InferenceServer, "
            "ServeConfig; from onnxparity.serve.grpc_server import servicer; "
            f"servicer(InferenceServer(load_models({str(served_models)!r}), ServeConfig())); "
            "bad = [m for m in ('torch', 'tensorflow', 'keras', 'torchvision', 'tf2onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
