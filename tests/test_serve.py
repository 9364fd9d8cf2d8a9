"""`onnxparity serve`: the V2 protocol with a client no one here wrote, bad requests, batching, the page.

The server runs once for the module, as users run it (a subprocess: ONNX Runtime only, no
training framework), on a free port of 127.0.0.1, serving the reference models as
``onnxparity.convert`` writes them: the Keras CNN, the PyTorch Net and the Net with its
preprocessing embedded (raw uint8 input).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MAX_BATCH = 16
_CONVERTED: dict[str, Path] = {}


# -- fixtures: converted models and one running server ------------------------------------------
@pytest.fixture(scope="session")
def served_models(tmp_path_factory, keras_checkpoint, torch_checkpoint) -> Path:
    """A folder as `onnxparity run` leaves it: the converted reference models (and a uint8 variant)."""
    from onnxparity._process import Worker

    if "served" in _CONVERTED:  # test_triton_export imports this fixture: convert once per session
        return _CONVERTED["served"]
    out = tmp_path_factory.mktemp("served")
    workers = [  # one fresh interpreter per framework, side by side: none enters pytest's process
        Worker("onnxparity.convert:convert", keras_checkpoint, out / "keras_cnn.onnx", timeout=300),
        Worker("tests.test_serve:convert_torch_twice", torch_checkpoint, out, timeout=300),
    ]
    for w in workers:
        w.result()
    _CONVERTED["served"] = out
    return out


def convert_torch_twice(checkpoint: Path, out: Path) -> None:
    """The Net as float input and with preprocessing embedded (uint8), in one worker."""
    from onnxparity.convert import convert

    convert(checkpoint, out / "torch_net.onnx")
    convert(checkpoint, out / "torch_net_uint8.onnx", embed_preprocessing=True)


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, log: Path):
        self.proc, self.url, self.log = proc, url, log

    def get(self, path: str, **kw):
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw):
        return requests.post(self.url + path, timeout=10, **kw)


def start_server(folder: Path, log: Path, *args: str, timeout: float = 60) -> Server:
    """Start `onnxparity serve` on a free port and wait until it reports ready."""
    cmd = [sys.executable, "-m", "onnxparity", "serve", str(folder), "--port", "0", *args]
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", text)
        if found and "ready" in text:
            return Server(proc, f"http://127.0.0.1:{found.group(1)}", log)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the server did not start:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def server(served_models, tmp_path_factory):
    srv = start_server(served_models, tmp_path_factory.mktemp("server") / "server.log",
                       "--max-batch-size", str(MAX_BATCH), "--max-queue-delay-us", "2000", "--max-request-mb", "1",
                       "--choose-s", "0.3")
    yield srv
    srv.proc.send_signal(signal.SIGTERM)
    try:
        assert srv.proc.wait(10) == 0, srv.log.read_text()[-2000:]
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    assert "Traceback" not in srv.log.read_text()


@pytest.fixture(scope="module")
def reference(served_models):
    """In-process ONNX Runtime sessions on the same files: what the server must answer."""
    from onnxparity.runners.sessions import make_session
    from onnxparity.serve import load_models

    models = load_models(served_models)
    return {name: (m, make_session(m.path)) for name, m in models.items()}


@pytest.fixture(scope="module")
def triton(server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"), concurrency=8)
    yield client
    client.close()


def _feed(model, digits: np.ndarray) -> np.ndarray:
    (x,) = model.digits_feed(digits).values()
    return x


# -- a real client: tritonclient -------------------------------------------------------------
def test_tritonclient_health_and_metadata(triton, reference):
    assert triton.is_server_live() and triton.is_server_ready()
    assert set(reference) == {"keras_cnn", "torch_net", "torch_net_uint8"}
    for name, (model, session) in reference.items():
        assert triton.is_model_ready(name) and triton.is_model_ready(name, "1")
        meta = triton.get_model_metadata(name)
        assert meta["name"] == name and meta["versions"] == ["1"]
        (arg,) = session.get_inputs()
        assert meta["inputs"] == [{"name": arg.name, "datatype": "UINT8" if "uint8" in arg.type else "FP32",
                                   "shape": [-1, *arg.shape[1:]]}]
        assert [o["name"] for o in meta["outputs"]] == [o.name for o in session.get_outputs()]
        assert meta["outputs"][0]["shape"] == [-1, 10]
        config = triton.get_model_config(name)
        assert config["max_batch_size"] == MAX_BATCH and config["input"][0]["dims"] == meta["inputs"][0]["shape"][1:]
    assert reference["keras_cnn"][0].inputs["input"].shape == (-1, 28, 28, 1)
    assert reference["torch_net"][0].inputs["input"].shape == (-1, 1, 28, 28)
    assert reference["torch_net_uint8"][0].inputs["input"].shape == (-1, 28, 28)
    assert not triton.is_model_ready("no_such_model")
    assert triton.get_server_metadata()["name"] == "onnxparity"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_equals_in_process_onnxruntime(triton, reference, test_digits, binary):
    import tritonclient.http as httpclient

    digits = test_digits.images[:12]
    for name, (model, session) in reference.items():
        x = _feed(model, digits)
        out_name = model.digit_output
        inp = httpclient.InferInput("input", list(x.shape), "UINT8" if x.dtype == np.uint8 else "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        result = triton.infer(name, [inp], outputs=[httpclient.InferRequestedOutput(out_name, binary_data=binary)],
                              request_id=f"req-{name}", model_version="1" if binary else "")
        got = result.as_numpy(out_name)
        (want,) = session.run([out_name], {"input": x})
        assert got.dtype == np.float32 and got.shape == (12, 10)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        assert result.get_response()["id"] == f"req-{name}"
        assert result.get_response()["model_name"] == name
    # Every output at once, unasked: tritonclient then asks for binary outputs.
    model, session = reference["keras_cnn"]
    x = _feed(model, digits[:1])
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    assert triton.infer("keras_cnn", [inp]).as_numpy("probabilities").shape == (1, 10)


def test_models_agree_on_real_digits(triton, reference, test_digits):
    """The served models predict real digits well, and the uint8 variant as its float twin."""
    import tritonclient.http as httpclient

    digits, labels = test_digits.images[:64], test_digits.labels[:64]
    probs = {}
    for name, (model, _) in reference.items():
        x = _feed(model, digits)
        parts = []
        for i in range(0, len(x), MAX_BATCH):
            inp = httpclient.InferInput("input", list(x[i:i + MAX_BATCH].shape), "UINT8" if x.dtype == np.uint8 else "FP32")
            inp.set_data_from_numpy(x[i:i + MAX_BATCH])
            parts.append(triton.infer(name, [inp]).as_numpy(model.digit_output))
        probs[name] = model.probabilities(np.concatenate(parts))
        assert (probs[name].argmax(1) == labels).mean() > 0.8, name
    np.testing.assert_allclose(probs["torch_net_uint8"], probs["torch_net"], atol=1e-5)


def test_concurrent_requests_are_batched_and_answered_right(reference, test_digits, server):
    import aiohttp

    model, session = reference["torch_net"]
    x = _feed(model, test_digits.images[:40])
    before = _metric(server, "onnxparity_batch_size_count", 'model="torch_net"')

    async def one(client, row):
        body, headers = _binary({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, *row.shape],
                                             "parameters": {"binary_data_size": row.nbytes}}],
                                 "outputs": [{"name": "log_probabilities", "parameters": {"binary_data": True}}]},
                                row.tobytes())
        async with client.post(server.url + TORCH, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            raw = await r.read()
            n = int(r.headers["Inference-Header-Content-Length"])
            return np.frombuffer(raw[n:], dtype=np.float32)

    async def all_at_once():
        async with aiohttp.ClientSession() as client:
            return await asyncio.gather(*(one(client, row) for row in x))

    got = np.stack(asyncio.run(all_at_once()))
    (want,) = session.run(["log_probabilities"], {"input": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    runs = _metric(server, "onnxparity_batch_size_count", 'model="torch_net"') - before
    assert 1 <= runs <= 0.75 * len(x), f"{len(x)} concurrent requests ran as {runs} batches"


def test_batcher_combines_up_to_the_limit_and_splits_results_back():
    """The batcher alone, on a model that records what it ran: deterministic batch composition."""
    from concurrent.futures import ThreadPoolExecutor

    from onnxparity.serve.batching import Batcher

    class Recorder:
        name, runs = "rec", []

        def run(self, feeds):
            self.runs.append({k: v.shape for k, v in feeds.items()})
            return {"y": feeds["x"].sum(axis=tuple(range(1, feeds["x"].ndim)))}

    async def scenario():
        batcher = Batcher(Recorder(), ThreadPoolExecutor(1), max_batch_size=4, max_queue_delay_s=0.05)
        batcher.start()
        rows = [np.full((1, 3), i, np.float32) for i in range(10)] + [np.full((2, 5), 7, np.float32)]
        try:
            return await asyncio.gather(*(batcher.infer({"x": r}) for r in rows))
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert [float(r["y"][0]) for r in results[:10]] == [3.0 * i for i in range(10)]
    assert results[10]["y"].tolist() == [35.0, 35.0]
    assert [run["x"] for run in Recorder.runs] == [(4, 3), (4, 3), (2, 3), (2, 5)]


def _metric(server, name: str, labels: str) -> float:
    text = server.get("/metrics").text
    return sum(float(m.group(2)) for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M)
               if labels in m.group(1))


# -- the protocol by hand: every bad request a clear 4xx, and the server goes on -------------------
def _body(shape, data=None, name="input", datatype="FP32", **extra) -> dict:
    if data is None:
        data = [0.0] * int(np.prod(shape))
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}], **extra}


def _binary(header: dict, raw: bytes, length: int | None = None) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head) if length is None else length)}


TORCH = "/v2/models/torch_net/infer"


def _blank_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (60, 40), 235).save(buf, format="PNG")
    return buf.getvalue()


BAD_REQUESTS = {
    "unknown input": (TORCH, {"json": _body([1, 1, 28, 28], name="image")}, 400, "no such input"),
    "wrong shape": (TORCH, {"json": _body([1, 28, 28, 1])}, 400, "does not fit"),
    "wrong rank": (TORCH, {"json": _body([784])}, 400, "does not fit"),
    "wrong datatype": (TORCH, {"json": _body([1, 1, 28, 28], datatype="FP64")}, 400, "datatype must be FP32"),
    "uint8 for float": ("/v2/models/torch_net_uint8/infer", {"json": _body([1, 28, 28])}, 400, "UINT8"),
    "NaN": (TORCH, {"data": json.dumps(_body([1, 1, 28, 28], [float("nan")] * 784)),
                    "headers": {"Content-Type": "application/json"}}, 400, "NaN"),
    "too few values": (TORCH, {"json": _body([2, 1, 28, 28], [0.0] * 784)}, 400, "holds 784 values"),
    "strings for floats": (TORCH, {"json": _body([1, 1, 28, 28], ["a"] * 784)}, 400, "not a rectangular list"),
    "out-of-range uint8": ("/v2/models/torch_net_uint8/infer", {"json": _body([1, 28, 28], [300] * 784, datatype="UINT8")},
                           400, "uint8"),
    "malformed JSON": (TORCH, {"data": b'{"inputs": [', "headers": {"Content-Type": "application/json"}}, 400,
                       "not valid JSON"),
    "no inputs": (TORCH, {"json": {"inputs": []}}, 400, "inputs"),
    "missing data": (TORCH, {"json": {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28]}]}},
                     400, "needs 'data'"),
    "binary size wrong": (TORCH, dict(zip(("data", "headers"), _binary(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                     "parameters": {"binary_data_size": 3000}}]}, b"\0" * 3000))), 400, "binary_data_size is 3000"),
    "binary data short": (TORCH, dict(zip(("data", "headers"), _binary(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                     "parameters": {"binary_data_size": 3136}}]}, b"\0" * 100))), 400, "runs past the end"),
    "binary data left over": (TORCH, dict(zip(("data", "headers"), _binary(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                     "parameters": {"binary_data_size": 3136}}]}, b"\0" * 3200))), 400, "no input claims"),
    "header length past body": (TORCH, dict(zip(("data", "headers"), _binary(_body([1, 1, 28, 28]), b"", 10**6))), 400,
                                "Inference-Header-Content-Length"),
    "unknown output": (TORCH, {"json": _body([1, 1, 28, 28], outputs=[{"name": "logits"}])}, 400, "no such output"),
    "batch too large": (TORCH, {"json": _body([MAX_BATCH + 1, 1, 28, 28])}, 400, "max_batch_size"),
    "empty batch": (TORCH, {"json": _body([0, 1, 28, 28], [])}, 400, "empty"),
    "unknown model": ("/v2/models/resnet50/infer", {"json": _body([1, 1, 28, 28])}, 404, "unknown model 'resnet50'"),
    "unknown version": ("/v2/models/torch_net/versions/7/infer", {"json": _body([1, 1, 28, 28])}, 404, "no version '7'"),
    "oversize body": (TORCH, {"data": b"x" * (2 * 1024 * 1024), "headers": {"Content-Type": "application/json"}}, 413,
                      "size"),
    "not an image": ("/predict", {"data": b"GIF89a but not really"}, 400, "not a readable image"),
    "empty image": ("/predict", {"data": b""}, 400, "empty"),
    "blank page": ("/predict", {"data": _blank_png()}, 400, "no digit found"),
    "fractional UINT8": ("/v2/models/torch_net_uint8/infer",
                         {"json": _body([1, 28, 28], [1.7] + [0] * 783, datatype="UINT8")}, 400, "whole numbers"),
    "UINT8 past 255": ("/v2/models/torch_net_uint8/infer",
                       {"json": _body([1, 28, 28], [256] + [0] * 783, datatype="UINT8")}, 400, "0..255"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_clear_error(server, case):
    path, kwargs, status, words = BAD_REQUESTS[case]
    r = server.post(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and words.lower() in body["error"].lower(), body
    assert "Traceback" not in r.text and "\n" not in body["error"]


def test_wrong_method_and_route_are_json_errors_and_server_goes_on(server, reference, test_digits):
    r = server.get("/v2/models/torch_net/infer")
    assert r.status_code == 405 and "not allowed" in r.json()["error"]
    r = server.get("/v3/anything")
    assert r.status_code == 404 and "no route" in r.json()["error"]
    r = server.get("/v2/models/resnet50/ready")
    assert r.status_code == 404
    # After every bad request above, it still answers, and right.
    assert server.get("/v2/health/live").status_code == 200
    assert server.get("/v2/health/ready").status_code == 200
    model, session = reference["torch_net"]
    x = _feed(model, test_digits.images[:2])
    r = server.post("/v2/models/torch_net/versions/1/infer",
                    json={"id": "nested", "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape),
                                                      "data": x.tolist(), "parameters": {"unknown": 1}}],
                          "parameters": {"also_unknown": True}})
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    assert r.json()["id"] == "nested" and out["shape"] == [2, 10] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.reshape(out["data"], (2, 10)), session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-6)


def test_metrics_in_prometheus_format(server, reference, test_digits):
    def refused() -> int:
        found = re.search(r'onnxparity_requests_total\{model="torch_net",route="infer",status="400"\} (\d+)',
                          server.get("/metrics").text)
        return int(found.group(1)) if found else 0

    before = refused()  # counters grow across the module: each count is read before and after
    bad = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    assert server.post("/v2/models/torch_net/infer", json=bad).status_code == 400
    assert refused() == before + 1
    x = _feed(reference["torch_net"][0], test_digits.images[:1])
    good = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    assert server.post("/v2/models/torch_net/infer", json=good).status_code == 200
    r = server.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    for name in ("onnxparity_requests_total", "onnxparity_request_duration_seconds_bucket",
                 "onnxparity_batch_size_bucket", "onnxparity_inference_duration_seconds_bucket"):
        assert name in r.text
    assert 'model="resnet50"' not in r.text  # made-up names make no series


# -- the convenience route ----------------------------------------------------------------------
def _png(digit: np.ndarray, invert: bool = True, size: int = 140) -> bytes:
    """A digit as a person might photograph it: larger, dark ink on white paper."""
    from PIL import Image

    im = Image.fromarray(255 - digit if invert else digit).resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_predict_route_gives_each_model_digit(server, reference, test_digits):
    from onnxparity.data.images import to_mnist
    from PIL import Image

    png = _png(test_digits.images[3])
    raw = server.post("/predict", data=png, headers={"Content-Type": "image/png"})
    form = server.post("/predict", files={"image": ("digit.png", png, "image/png")})
    assert raw.status_code == 200 and form.status_code == 200, raw.text + form.text
    assert raw.json() == form.json()
    answer = raw.json()
    digit = to_mnist(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32))
    assert np.array_equal(np.array(answer["image"], dtype=np.uint8), digit)
    assert {p["model"] for p in answer["predictions"]} == set(reference)
    for p in answer["predictions"]:
        model, session = reference[p["model"]]
        want = model.probabilities(session.run([model.digit_output], {"input": _feed(model, digit[None])})[0])[0]
        np.testing.assert_allclose(p["probabilities"], want, atol=2e-6)
        assert p["digit"] == str(int(np.argmax(want))) and abs(sum(p["probabilities"]) - 1) < 1e-3


# -- in-process: not ready until warmed up --------------------------------------------------------
def test_each_model_runs_in_the_session_measured_fastest_here(server):
    """`serve` timed the candidate sessions of each model at start-up and says which it chose, with the figures."""
    log = server.log.read_text()
    for name in ("keras_cnn", "torch_net", "torch_net_uint8"):
        found = re.search(rf"onnxparity serve: {name} runs in (\w+), .* Speed over plain .*: plain 1\.00x, "
                          "options", log)
        assert found and found.group(1) in {"plain", "options", "rewrites", "openvino"}, log


def test_not_ready_until_warm(served_models):
    """Until warm-up ends, readiness and inference answer 503 (liveness 200): what Triton clients expect."""
    from aiohttp.test_utils import TestClient, TestServer

    from onnxparity.serve import load_models
    from onnxparity.serve.app import InferenceServer, ServeConfig

    models = load_models(served_models / "torch_net.onnx")

    async def check():
        srv = InferenceServer(models, ServeConfig(max_batch_size=4))
        async with TestClient(TestServer(srv.app())) as client:
            assert (await client.get("/v2/health/live")).status == 200
            for path in ("/v2/health/ready", "/v2/models/torch_net/ready"):
                r = await client.get(path)
                assert r.status == 503 and "warming up" in (await r.json())["error"]
            r = await client.post("/v2/models/torch_net/infer", json=_body([1, 1, 28, 28]))
            assert r.status == 503
            await srv.warm_up()
            assert (await client.get("/v2/health/ready")).status == 200
            r = await client.post("/v2/models/torch_net/infer", json=_body([1, 1, 28, 28]))
            assert r.status == 200

    asyncio.run(check())


def test_server_imports_no_training_framework(served_models):
    code = ("import sys; from onnxparity.serve import load_models; from onnxparity.serve.app import InferenceServer, "
            f"ServeConfig; InferenceServer(load_models({str(served_models)!r}), ServeConfig()).app(); "
            "bad = [m for m in ('torch', 'tensorflow', 'keras', 'torchvision', 'tf2onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_model_names_are_file_stems_made_unique(tmp_path):
    from onnxparity.serve.repository import find_models

    for rel in ("keras/model.onnx", "torch/model.onnx", "torch_net v2.onnx", ".tmp.onnx", ".cache/x.onnx", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    names = find_models(tmp_path)
    assert sorted(names) == ["keras-model", "torch-model", "torch_net_v2"]
    assert names["torch_net_v2"] == tmp_path / "torch_net v2.onnx"


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "onnxparity", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)

    r = run("serve", str(tmp_path / "missing"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr
    r = run("serve", str(tmp_path))
    assert r.returncode == 2 and "no .onnx files" in r.stderr
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    r = run("serve", str(tmp_path))
    assert r.returncode == 2 and "not a readable ONNX file" in r.stderr and "Traceback" not in r.stderr
    r = run("serve", str(tmp_path), "--providers", "NoSuchExecutionProvider")
    assert r.returncode == 2 and "NoSuchExecutionProvider" in r.stderr


# -- the page, in a real browser ---------------------------------------------------------------
def _chromium_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


READ_PAGE = """() => [...document.querySelectorAll('section.model')].map(s => ({
    model: s.dataset.model, digit: s.querySelector('.digit').textContent,
    probabilities: [...s.querySelectorAll('.row')].map(r => parseFloat(r.dataset.probability)),
    widths: [...s.querySelectorAll('.bar')].map(b => parseFloat(b.style.width))}))"""


def _page_agrees_with_server(page, server, reference) -> list[dict]:
    """Wait for the answer to the last stroke; check that the page shows what /predict says for its canvas."""
    import base64

    page.wait_for_function(f"document.querySelectorAll('section.model[data-digit]').length == {len(reference)}",
                           timeout=15000)
    page.wait_for_timeout(400)  # the answer to the last stroke
    shown = page.evaluate(READ_PAGE)
    png = page.evaluate("() => document.getElementById('pad').toDataURL('image/png')")
    answer = requests.post(server.url + "/predict", data=base64.b64decode(png.split(",", 1)[1]), timeout=10).json()
    expected = {p["model"]: p for p in answer["predictions"]}
    assert {s["model"] for s in shown} == set(reference)
    for s in shown:
        p = expected[s["model"]]
        assert s["digit"] == p["digit"], (s, p)
        np.testing.assert_allclose(s["probabilities"], p["probabilities"], atol=1e-5)
        np.testing.assert_allclose(s["widths"], 100 * np.array(p["probabilities"]), atol=0.06)
        assert abs(sum(s["probabilities"]) - 1) < 1e-3
    assert np.array(answer["image"]).max() == 255  # the stroke reached the models
    return shown


@pytest.mark.skipif(_chromium_missing() is not None, reason=str(_chromium_missing()))
def test_drawing_page_shows_live_predictions(server, reference):
    """Draw with the mouse, then with a finger: each model's digit and bars appear, as /predict says."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 700}, has_touch=True)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url + "/", timeout=15000)
            box = page.locator("canvas#pad").bounding_box()

            def at(fx, fy):
                return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

            # The mouse draws a "7": a bar across the top, then a stroke down to the bottom left.
            page.mouse.move(*at(0.25, 0.2))
            page.mouse.down()
            for fx, fy in ((0.75, 0.2), (0.45, 0.85)):
                page.mouse.move(*at(fx, fy), steps=12)
            page.mouse.up()
            _page_agrees_with_server(page, server, reference)

            page.click("#clear")
            assert page.locator("section.model").count() == 0
            # A finger draws a "1": touch events, as a phone sends them.
            cdp = context.new_cdp_session(page)
            for i in range(13):
                x, y = at(0.5, 0.15 + 0.06 * i)
                cdp.send("Input.dispatchTouchEvent", {"type": "touchStart" if i == 0 else "touchMove",
                                                      "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            shown = _page_agrees_with_server(page, server, reference)
            assert sum(s["digit"] == "1" for s in shown) >= 2, shown
            assert not errors, errors
        finally:
            browser.close()
