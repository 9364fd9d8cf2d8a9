"""`onnxparity serve` under overload and shutdown: bounded queues, refusals at once, a drain on SIGTERM.

The queue's rules are tested on the batcher alone with a model whose runs the test holds and
releases (deterministic, no timing); the HTTP and gRPC answers on a real server holding the
PyTorch Net in ONNX Runtime; the drain on `onnxparity serve` itself, sent SIGTERM while a request
is in flight (its body half sent).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from onnxparity.serve.batching import Batcher
from onnxparity.serve.protocol import RequestError

ROOT = Path(__file__).resolve().parents[1]


class Held:
    """A model whose runs wait until the test releases them; it records the rows it ran."""

    name = "held"

    def __init__(self):
        self.gate, self.running = threading.Event(), threading.Event()
        self.ran: list[list[float]] = []

    def run(self, feeds):
        self.running.set()
        self.gate.wait(10)
        self.ran.append(feeds["x"][:, 0].tolist())
        return {"y": feeds["x"] * 2}


def _row(i: float) -> dict:
    return {"x": np.full((1, 2), i, np.float32)}


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_full_queue_refuses_at_once_and_a_cancelled_request_leaves_it():
    async def scenario():
        model = Held()
        batcher = Batcher(model, ThreadPoolExecutor(1), max_batch_size=4, max_queue_delay_s=0, max_queue=2)
        batcher.start()
        try:
            running = asyncio.ensure_future(batcher.infer(_row(1)))
            await _until(model.running.is_set)  # taken into a batch, held
            queued = [asyncio.ensure_future(batcher.infer(_row(i))) for i in (2, 3)]
            await _until(lambda: batcher.queued == 2)
            with pytest.raises(RequestError) as refused:
                await batcher.infer(_row(4))  # answered before anything runs
            assert refused.value.status == 503 and refused.value.retry_after == 1
            assert "overloaded" in str(refused.value) and "--max-queue 2" in str(refused.value)
            queued[0].cancel()  # its client went away
            await _until(lambda: batcher.queued == 1)
            late = asyncio.ensure_future(batcher.infer(_row(5)))  # the freed place is taken
            await _until(lambda: batcher.queued == 2)
            model.gate.set()
            results = await asyncio.gather(running, queued[1], late)
            return model.ran, [r["y"][0, 0] for r in results]
        finally:
            await batcher.stop()

    ran, answers = asyncio.run(scenario())
    assert answers == [2.0, 6.0, 10.0]
    assert ran == [[1.0], [3.0, 5.0]]  # the cancelled request never ran


def test_a_request_that_would_wait_or_waited_past_the_timeout_is_refused():
    async def scenario():
        model = Held()
        batcher = Batcher(model, ThreadPoolExecutor(1), max_batch_size=1, max_queue_delay_s=0, max_queue=8,
                          timeout_s=0.05)
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.infer(_row(1)))
            await _until(model.running.is_set)
            waiting = asyncio.ensure_future(batcher.infer(_row(2)))
            await asyncio.sleep(0.1)  # longer than the timeout, in the queue
            model.gate.set()
            assert (await first)["y"][0, 0] == 2.0
            with pytest.raises(RequestError, match="waited longer than --request-timeout") as waited:
                await waiting
            assert waited.value.status == 503
            # The first run took about 0.1 s a row: behind a running row, a request would wait longer than 0.05 s.
            model.gate.clear()
            model.running.clear()
            held = asyncio.ensure_future(batcher.infer(_row(3)))
            await _until(model.running.is_set)
            assert batcher.expected_wait(next(iter(batcher._row_s))) > 0.05
            with pytest.raises(RequestError, match="would wait about") as predicted:
                await batcher.infer(_row(4))
            assert predicted.value.retry_after == 1
            model.gate.set()
            await held
            return model.ran
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == [[1.0], [3.0]]  # neither refused request ran


# -- the real server: HTTP and gRPC answers of an overloaded server ---------------------------------
def _body(x: np.ndarray) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]}).encode()


@pytest.mark.slow
def test_overloaded_server_answers_503_with_retry_after_and_unavailable(torch_onnx, test_digits):
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from onnxparity.runners.sessions import make_session
    from onnxparity.serve import load_models
    from onnxparity.serve.app import InferenceServer, ServeConfig
    from onnxparity.serve.grpc_server import start_grpc

    models = load_models(torch_onnx)
    (model,) = models.values()
    gate, running, real_run = threading.Event(), threading.Event(), model.run
    model.run = lambda feeds: (running.set(), gate.wait(10), real_run(feeds))[2]  # held until the test says
    x = np.stack([model.spec.preprocess(test_digits.images[i : i + 1])[0] for i in range(3)])
    (want,) = make_session(torch_onnx).run(None, {"input": x})[:1]

    async def scenario():
        srv = InferenceServer(models, ServeConfig(port=0, max_batch_size=1, max_queue=1, workers=1))
        model.ready = True
        from aiohttp.test_utils import TestClient, TestServer

        aio, port = await start_grpc(srv, "127.0.0.1", 0, 1 << 20)
        async with TestClient(TestServer(srv.app())) as client, \
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            url = f"/v2/models/{model.name}/infer"
            held = [asyncio.ensure_future(client.post(url, data=_body(x[:1])))]
            await _until(running.is_set)
            held.append(asyncio.ensure_future(client.post(url, data=_body(x[1:2]))))
            await _until(lambda: srv.batchers[model.name].queued == 1)
            started = time.perf_counter()
            r = await client.post(url, data=_body(x[2:3]))
            refused_in = time.perf_counter() - started
            assert r.status == 503 and r.headers["Retry-After"] == "1"
            body = await r.json()
            assert set(body) == {"error"} and "overloaded" in body["error"]
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            request = service_pb2.ModelInferRequest(model_name=model.name)
            request.inputs.add(name="input", datatype="FP32", shape=[1, 1, 28, 28])
            request.raw_input_contents.append(x[2:3].tobytes())
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ModelInfer(request)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and caught.value.details() == body["error"]
            gate.set()
            answers = [await (await h).json() for h in held]
            assert [(await h).status for h in held] == [200, 200]
            got = np.array([a["outputs"][0]["data"] for a in answers], np.float32)
            np.testing.assert_allclose(got, want[:2], rtol=1e-5, atol=1e-6)
            response = await stub.ModelInfer(request)  # the queue is free again
            np.testing.assert_allclose(np.frombuffer(response.raw_output_contents[0], np.float32), want[2],
                                       rtol=1e-5, atol=1e-6)
        await aio.stop(None)
        await srv._stop()
        return refused_in

    refused_in = asyncio.run(scenario())
    assert refused_in < 5.0  # answered while the worker was still held (the gate waits up to 10 s)


# -- SIGTERM: a drain --------------------------------------------------------------------------
def _start(folder, tmp: Path, *args: str):
    log = tmp / "server.log"
    env = {**os.environ, "TMPDIR": str(tmp / "tmp")}
    (tmp / "tmp").mkdir()
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "onnxparity", "serve", str(folder), "--port", "0",
                                 "--grpc-port", "0", "--choose-s", "0", *args], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text()
        http, grpc_port = re.search(r"http://127\.0\.0\.1:(\d+)/", text), re.search(r"grpc 127\.0\.0\.1:(\d+) ", text)
        if http and grpc_port and "ready" in text:
            return proc, log, int(http.group(1)), int(grpc_port.group(1))
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server did not start:\n{log.read_text()[-2000:]}")


@pytest.mark.slow
def test_sigterm_drains_the_request_in_flight_refuses_new_ones_and_exits_0(torch_onnx, test_digits, tmp_path):
    import grpc
    import requests
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    from onnxparity.runners.sessions import make_session
    from onnxparity.serve import load_models

    proc, log, port, grpc_port = _start(torch_onnx, tmp_path, "--drain-seconds", "20")
    at_start = sorted((tmp_path / "tmp").iterdir())  # ONNX Runtime's own session-id file (.ses), if it writes one
    try:
        (model,) = load_models(torch_onnx).values()
        x = model.spec.preprocess(test_digits.images[:1])
        (want,) = make_session(torch_onnx).run(None, {"input": x})[:1]
        body = _body(x)
        # A request in flight: headers and half its body sent, the handler waiting for the rest.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"POST /v2/models/{model.name}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        url = f"http://127.0.0.1:{port}"
        r = requests.get(f"{url}/v2/health/ready", timeout=5)
        assert r.status_code == 503 and "shutting down" in r.json()["error"]
        assert requests.get(f"{url}/v2/health/live", timeout=5).status_code == 200
        r = requests.post(f"{url}/v2/models/{model.name}/infer", data=body, timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json() == {
            "error": "the server is shutting down"}
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert not stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=5).ready
            assert not stub.ModelReady(service_pb2.ModelReadyRequest(name=model.name), timeout=5).ready
            request = service_pb2.ModelInferRequest(model_name=model.name)
            request.inputs.add(name="input", datatype="FP32", shape=[1, 1, 28, 28])
            request.raw_input_contents.append(x.tobytes())
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request, timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.poll() is None  # still draining: the request in flight holds it
        sock.sendall(body[len(body) // 2 :])
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < int(
                re.search(rb"Content-Length: (\d+)", answer, re.I).group(1)):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        sock.close()
        head, payload = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        np.testing.assert_allclose(json.loads(payload)["outputs"][0]["data"], want[0], rtol=1e-5, atol=1e-6)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "SIGTERM: draining ended, 1 of 1 requests in flight finished" in text and "Traceback" not in text, text
    assert sorted((tmp_path / "tmp").iterdir()) == at_start  # no files left behind
