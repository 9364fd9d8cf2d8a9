"""Load benchmark for `onnxparity serve`: single-image V2 requests on loopback, over HTTP and gRPC.

Why a script and not a test: its figures depend on the machine and on whatever else runs on it.
It starts the server itself (127.0.0.1, free ports) once per case, sends V2 requests of one
real digit each, alternating between the served models, from ``--concurrency`` connections for
``--duration`` seconds (and at most ``--max-requests``), then prints requests/s, latency
percentiles, the mean batch size the server reports in /metrics and the CPU time per request.

HTTP bodies are tritonclient's binary form (``--format binary``) or plain JSON (``--format
json``: ``data`` lists in, JSON out), sent by wrk (``wrk -t2``) where installed; gRPC requests
are ``ModelInferRequest`` with ``raw_input_contents`` (what tritonclient.grpc sends), sent by
grpcio's asyncio client in this process (there is no ghz here), which takes CPU from the server
on a small machine. ``--trees`` runs other source trees' servers too (say a checkout of main),
interleaved round by round, so before and after are measured side by side under the same load.

The ceiling (left out with ``--no-ceiling``) runs in the same rounds for HTTP: a bare aiohttp +
orjson app on uvloop that reads the same bodies (orjson for JSON; the header and the raw bytes for
binary) and answers ten floats as JSON, doing nothing else; every HTTP figure is printed with its
share of the ceiling's requests/s in the same round.

    python scripts/load_test.py runs/latest                                  # batching on, then off
    python scripts/load_test.py DIR --models torch --modes on --format json --protocols http,grpc
    python scripts/load_test.py DIR --models torch --modes on --format json --trees /tmp/main,. --rounds 3

``--overload`` measures the server past its capacity instead: the closed-loop capacity first, then
requests sent at a fixed rate (``--overload-factor`` times that capacity, default 2) whatever the
answers, for ``--duration`` seconds: the latency of accepted requests and of refusals, every
status, the server's resident memory each second, and readiness and a correct answer afterwards;
then the same load again with SIGTERM sent halfway, checking that every request that got a 200
got the right outputs and every other one a 503 or a closed connection.

    python scripts/load_test.py DIR --models torch_net --overload --duration 60 \
        --server-args "--max-queue 64 --request-timeout 0.025"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _digit_feeds(folder: str, only: list[str] | None, n: int):
    """(model name, ServedModel, input name, datatype, rows) for each served model that takes digits (or, for
    one named in ``only`` whose input is another image, seeded samples of its shape)."""
    from onnxparity.data import load_digits
    from onnxparity.serve import load_models

    digits = load_digits(None, "test").images[:n]
    out = []
    for name, model in load_models(folder).items():
        if not model.takes_digits or (only and name not in only):
            continue
        (feed_name, info), = model.inputs.items()
        x = model.digits_feed(digits)[feed_name] if model.spec is None or model.spec.input_shape[-2:] == (28, 28) or \
            model.spec.input_shape[:2] == (28, 28) else np.random.default_rng(0).standard_normal(
                (n, *model.spec.input_shape)).astype(np.float32)
        out.append((name, model, feed_name, info.datatype, x))
    if not out:
        raise SystemExit(f"{folder}: no model that takes 28x28 digits" + (f" among {only}" if only else ""))
    return out


def payloads(folder: str, only: list[str] | None = None, n: int = 16, fmt: str = "binary"):
    """(model, body, headers) for n real digits per model: binary V2 (tritonclient's form) or plain JSON."""
    from onnxparity.serve.protocol import HEADER_LENGTH

    out = []
    for name, model, feed_name, datatype, x in _digit_feeds(folder, only, n):
        for row in x:
            if fmt == "json":
                body = json.dumps({"inputs": [{"name": feed_name, "datatype": datatype, "shape": [1, *row.shape],
                                               "data": row.ravel().tolist()}],
                                   "outputs": [{"name": model.digit_output}]}).encode()
                out.append((name, body, {"Content-Type": "application/json"}))
                continue
            raw = np.ascontiguousarray(row[None]).tobytes()
            header = json.dumps({"inputs": [{"name": feed_name, "datatype": datatype, "shape": [1, *row.shape],
                                             "parameters": {"binary_data_size": len(raw)}}],
                                 "outputs": [{"name": model.digit_output, "parameters": {"binary_data": True}}]})
            out.append((name, header.encode() + raw, {HEADER_LENGTH: str(len(header.encode())),
                                                      "Content-Type": "application/octet-stream"}))
    return out


def grpc_requests(folder: str, only: list[str] | None = None, n: int = 16) -> list:
    """ModelInferRequest messages for n real digits per model, with raw_input_contents."""
    from tritonclient.grpc import service_pb2

    out = []
    for name, model, feed_name, datatype, x in _digit_feeds(folder, only, n):
        for row in x:
            request = service_pb2.ModelInferRequest(model_name=name)
            request.inputs.add(name=feed_name, datatype=datatype, shape=[1, *row.shape])
            request.outputs.add(name=model.digit_output)
            request.raw_input_contents.append(np.ascontiguousarray(row[None]).tobytes())
            out.append(request)
    return out


def start_server(folder: str, extra: list[str], tree: Path = ROOT) -> tuple[subprocess.Popen, str, str | None]:
    """`onnxparity serve` from ``tree`` on free ports: (process, HTTP URL, gRPC address or None)."""
    return _start([sys.executable, "-m", "onnxparity", "serve", folder, "--port", "0", *extra], tree)


def start_ceiling() -> tuple[subprocess.Popen, str, str | None]:
    """The ceiling app (:func:`serve_ceiling`) in a process of its own, on a free port."""
    return _start([sys.executable, str(Path(__file__).resolve()), "--serve-ceiling"], ROOT)


def _start(cmd: list[str], tree: Path) -> tuple[subprocess.Popen, str, str | None]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, grpc, deadline, last = None, None, time.time() + 60, ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the server exited ({proc.wait()}): {last.strip()[-300:]}")
        last = line
        m = re.search(r"(http://[\d.]+:\d+)/", line)
        url = url or (m.group(1) if m else None)
        m = re.search(r"grpc ([\d.]+:\d+)", line)
        grpc = grpc or (m.group(1) if m else None)
        if "ready" in line and url:
            # Keep reading what it prints (into proc.lines), so a full pipe never stalls it.
            proc.lines = []
            threading.Thread(target=lambda: proc.lines.extend(proc.stdout), daemon=True).start()
            return proc, url, grpc
    proc.kill()
    raise SystemExit("the server did not become ready in 60 s")


def serve_ceiling() -> None:
    """A bare aiohttp + orjson app on uvloop: reads a V2 request's body (JSON, or the binary form's JSON
    header and raw bytes) and answers ten floats as JSON. No validation, batching, model or metrics:
    what the same framework does with the same bytes when it does nothing else."""
    import socket

    import orjson
    from aiohttp import web

    async def infer(request):
        body = await request.read()
        length = request.headers.get("Inference-Header-Content-Length")
        if length is None:
            orjson.loads(body)
        else:
            orjson.loads(body[: int(length)])
            np.frombuffer(body[int(length):], np.uint8)
        return web.Response(body=orjson.dumps({"model_name": request.match_info["model"], "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 10], "data": [0.1] * 10}]}), content_type="application/json")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/v2/models/{model}/infer", infer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def main():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        print(f"ceiling: http://127.0.0.1:{sock.getsockname()[1]}/ ready", flush=True)
        await asyncio.Event().wait()

    run(main())


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    lat = np.array(latencies or [float("nan")]) * 1000
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "max_ms": round(float(lat.max()), 2)}


async def load(url: str, bodies, concurrency: int, duration: float, max_requests: int) -> dict:
    """HTTP from aiohttp clients in this process."""
    import aiohttp

    latencies: list[float] = []
    errors = sent = 0
    stop_at = time.perf_counter() + duration

    async def client(k: int, session) -> None:
        nonlocal errors, sent
        i = k
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            name, body, headers = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            async with session.post(f"{url}/v2/models/{name}/infer", data=body, headers=headers) as r:
                await r.read()
                ok = r.status == 200
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(k, session) for k in range(concurrency)))
        return _summary(latencies, errors, time.perf_counter() - started)


async def load_grpc(address: str, requests, concurrency: int, duration: float, max_requests: int,
                    channels: int = 4) -> dict:
    """gRPC ModelInfer calls from grpcio's asyncio client: ``concurrency`` callers over ``channels`` connections."""
    import grpc
    from tritonclient.grpc import service_pb2_grpc

    latencies: list[float] = []
    errors = sent = 0
    stop_at = time.perf_counter() + duration
    opened = [grpc.aio.insecure_channel(address) for _ in range(max(1, channels))]
    stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in opened]

    async def client(k: int) -> None:
        nonlocal errors, sent
        stub, i = stubs[k % len(stubs)], k
        while time.perf_counter() < stop_at and sent < max_requests:
            sent += 1
            request = requests[i % len(requests)]
            i += 1
            t0 = time.perf_counter()
            try:
                await stub.ModelInfer(request, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(concurrency)))
        return _summary(latencies, errors, time.perf_counter() - started)
    finally:
        for c in opened:
            await c.close()


WRK_SCRIPT = """
local files, paths, lengths, types = {}, {}, {}, {}
for line in io.lines("%(index)s") do
  local file, path, length, ctype = line:match("^(%%S+) (%%S+) (%%S+) (%%S+)$")
  local f = assert(io.open(file, "rb")); files[#files + 1] = f:read("*a"); f:close()
  paths[#paths + 1] = path; lengths[#lengths + 1] = length; types[#types + 1] = ctype
end
local i = 0
request = function()
  i = i %% #files + 1
  local headers = {["Content-Type"] = types[i]}
  if lengths[i] ~= "-" then headers["Inference-Header-Content-Length"] = lengths[i] end
  return wrk.format("POST", paths[i], headers, files[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, '
    .. '"p99_us": %%d, "max_us": %%d, "errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def load_wrk(url: str, bodies, concurrency: int, duration: float, workdir: Path, threads: int = 2) -> dict:
    """The same requests from wrk (C): a client that leaves the server most of the CPU."""
    import resource

    lines = []
    for k, (name, body, headers) in enumerate(bodies):
        (workdir / f"body{k}.bin").write_bytes(body)
        lines.append(f"{workdir / f'body{k}.bin'} /v2/models/{name}/infer "
                     f"{headers.get('Inference-Header-Content-Length', '-')} {headers['Content-Type']}")
    (workdir / "index.txt").write_text("\n".join(lines) + "\n")
    (workdir / "load.lua").write_text(WRK_SCRIPT % {"index": workdir / "index.txt"})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "5s",
                          "-s", str(workdir / "load.lua"), url], capture_output=True, text=True,
                         timeout=duration + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = re.search(r"WRK_JSON (\{.*\})", out.stdout)
    if not found:
        raise SystemExit(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    w = json.loads(found.group(1))
    seconds = w["duration_us"] / 1e6
    r = {"requests": w["requests"], "errors": w["errors"], "seconds": round(seconds, 2),
         "requests_per_s": round(w["requests"] / seconds, 1), "p50_ms": w["p50_us"] / 1000,
         "p90_ms": w["p90_us"] / 1000, "p99_ms": w["p99_us"] / 1000, "max_ms": w["max_us"] / 1000}
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    r["client_cpu_us_per_request"] = round(cpu / max(1, w["requests"]) * 1e6)
    return r


def mean_batch(url: str) -> float | None:
    import urllib.request

    return _mean_batch(urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode())


def _mean_batch(metrics: str) -> float | None:
    """Rows per ONNX Runtime run so far, from the server's Prometheus text."""
    rows = sum(float(v) for v in re.findall(r"^onnxparity_batch_size_sum\{[^}]*\} (\S+)$", metrics, re.M))
    runs = sum(float(v) for v in re.findall(r"^onnxparity_batch_size_count\{[^}]*\} (\S+)$", metrics, re.M))
    return round(rows / runs, 2) if runs else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(coro):
    """asyncio.run, on uvloop where it is installed (a cheaper client leaves more CPU to the server)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def measure(args, tree: Path | None, mode: str, protocol: str, bodies, requests, duration: float) -> dict:
    """One server from ``tree`` (None: the ceiling app), warmed, under ``duration`` seconds of load."""
    extra = args.server_args.split() + ([] if mode == "on" else ["--no-batching"])
    extra += ["--grpc-port", "0"] if protocol == "grpc" else []
    proc, url, grpc = start_server(args.folder, extra, tree) if tree is not None else start_ceiling()
    try:
        if protocol == "grpc":
            if grpc is None:
                raise SystemExit(f"{tree}: this server has no gRPC (--grpc-port)")
            run(load_grpc(grpc, requests, args.concurrency, 1.0, 2000, args.channels))  # warm the connections
        else:
            run(load(url, bodies, args.concurrency, 1.0, 2000))
        server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
        client = "wrk" if protocol == "http" and args.client == "wrk" else "python"
        if client == "wrk":
            with tempfile.TemporaryDirectory() as tmp:
                r = load_wrk(url, bodies, args.concurrency, duration, Path(tmp), args.wrk_threads)
        elif protocol == "grpc":
            r = run(load_grpc(grpc, requests, args.concurrency, duration, args.max_requests, args.channels))
        else:
            r = run(load(url, bodies, args.concurrency, duration, args.max_requests))
        if client == "python":
            r["client_cpu_us_per_request"] = round((time.process_time() - client_cpu) / max(1, r["requests"]) * 1e6)
        # CPU time per request: a figure that other people's load on the machine moves less.
        r["server_cpu_us_per_request"] = round((cpu_seconds(proc.pid) - server_cpu) / max(1, r["requests"]) * 1e6)
        r["mean_batch"] = mean_batch(url) if tree is not None else None
        r["load_average_1min"] = os.getloadavg()[0]
        r["client"] = client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return r


# -- past capacity: refusals at once, a drain on SIGTERM ----------------------------------------------------
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def expected_outputs(folder: str, only: list[str] | None, n: int = 16) -> list[tuple[str, np.ndarray]]:
    """What each of ``payloads``'s requests must answer: in-process ONNX Runtime on the same file."""
    from onnxparity.runners.sessions import make_session

    out = []
    for name, model, feed_name, _, x in _digit_feeds(folder, only, n):
        session = make_session(model.path)
        for row in x:
            out.append((model.digit_output, session.run([model.digit_output], {feed_name: row[None]})[0][0]))
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request at a time: the least a Python client can spend
    per request (tens of microseconds), so that it can offer a server more than the server can take."""

    def __init__(self):
        self.transport, self.buffer, self.waiter, self.open = None, b"", None, True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = self.buffer[:end]
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        if len(self.buffer) < end + 4 + length:
            return
        body, self.buffer = self.buffer[end + 4 : end + 4 + length], self.buffer[end + 4 + length :]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), head, body))

    def connection_lost(self, exc) -> None:
        self.open = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("closed"))


class RawClient:
    """Requests over a pool of :class:`_Connection` (opened as needed, up to ``max_connections``)."""

    def __init__(self, url: str, max_connections: int = 1024):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port, self.max, self.idle, self.opened = host, int(port), max_connections, [], 0

    async def send(self, request: bytes) -> tuple[int, bytes, bytes]:
        while self.idle and not self.idle[-1].open:
            self.idle.pop()
        if self.idle:
            conn = self.idle.pop()
        else:
            if self.opened >= self.max:
                raise ConnectionRefusedError("client: every connection busy")
            self.opened += 1
            try:
                _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
            except OSError:
                self.opened -= 1
                raise ConnectionRefusedError("refused") from None
        conn.waiter = asyncio.get_running_loop().create_future()
        conn.transport.write(request)
        try:
            status, head, body = await asyncio.wait_for(conn.waiter, 30)
        except BaseException:
            conn.transport.close()
            self.opened -= 1
            raise
        if b"connection: close" in head.lower():
            conn.transport.close()
            self.opened -= 1
        else:
            self.idle.append(conn)
        return status, head, body

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()


def http_requests(bodies) -> list[bytes]:
    """``payloads``'s bodies as whole HTTP/1.1 requests."""
    out = []
    for name, body, headers in bodies:
        lines = [f"POST /v2/models/{name}/infer HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


async def open_loop(url: str, bodies, expected, rate: float, duration: float, max_requests: int, server=None,
                    sigterm_at: float | None = None, closed_loop: int = 0) -> dict:
    """Send requests at ``rate`` a second for ``duration`` s, each on its own, whatever the answers (or, with
    ``closed_loop`` = N, from N clients each waiting for its answer); classify every one and check each
    200's outputs. ``sigterm_at``: seconds in, SIGTERM the server. Latencies are measured from the moment a
    request is due, so a client that falls behind shows as latency, not as a lower rate."""
    from onnxparity.serve.protocol import HEADER_LENGTH

    requests = http_requests(bodies)
    client = RawClient(url)
    records: list[tuple[str, float]] = []  # (what happened, seconds)
    wrong = 0
    rss: list[float] = []
    started = time.perf_counter()

    async def one(k: int, due: float) -> None:
        nonlocal wrong
        output, want = expected[k % len(expected)]
        try:
            status, head, body = await client.send(requests[k % len(requests)])
            what = str(status)
            if status == 200:
                n = int(re.search(rb"(?i)\r\n" + HEADER_LENGTH.encode() + rb": *(\d+)", head).group(1))
                wrong += not np.allclose(np.frombuffer(body[n:], dtype=np.float32), want, rtol=1e-4, atol=1e-5)
        except ConnectionRefusedError:
            what = "refused"
        except (ConnectionError, asyncio.TimeoutError):
            what = "closed"
        records.append((what, time.perf_counter() - due))

    sent, tasks, next_rss = 0, set(), 0.0

    def launch(k: int, due: float) -> None:
        task = asyncio.ensure_future(one(k, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def loop_client(k: int) -> None:
        nonlocal sent
        while time.perf_counter() - started < duration and sent < max_requests:
            sent += 1
            await one(sent, time.perf_counter())

    if closed_loop:
        await asyncio.gather(*(loop_client(k) for k in range(closed_loop)))
    while not closed_loop and (now := time.perf_counter() - started) < duration and sent < max_requests:
        if sigterm_at is not None and now >= sigterm_at:
            server.send_signal(signal.SIGTERM)
            sigterm_at = None
        if now >= next_rss and server is not None and server.poll() is None:
            rss.append(rss_mib(server.pid))
            next_rss += 1.0
        for _ in range(min(int(now * rate), max_requests) - sent):
            launch(sent, started + sent / rate)
            sent += 1
        await asyncio.sleep(0.001)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    client.close()
    elapsed = time.perf_counter() - started
    kinds: dict[str, list[float]] = {}
    for what, seconds in records:
        kinds.setdefault(what, []).append(seconds * 1000)

    def pct(values, q):
        return round(float(np.percentile(values, q)), 2) if values else None

    ok, refused = kinds.get("200", []), kinds.get("503", [])
    return {"offered_per_s": round(sent / min(elapsed, duration), 1), "sent": sent, "answered": len(records),
            "statuses": {k: len(v) for k, v in sorted(kinds.items())},
            "accepted_per_s": round(len(ok) / min(elapsed, duration), 1), "accepted_p50_ms": pct(ok, 50),
            "accepted_p99_ms": pct(ok, 99), "accepted_max_ms": pct(ok, 100), "refused_p50_ms": pct(refused, 50),
            "refused_p99_ms": pct(refused, 99), "refused_max_ms": pct(refused, 100), "wrong_outputs": wrong,
            "server_rss_mib_each_s": rss}


def overload(args, bodies, expected) -> dict:
    """Capacity, then ``--overload-factor`` times it for ``--duration`` s, then the same with SIGTERM halfway."""
    import urllib.request

    duration = min(args.duration, 60.0)
    proc, url, _ = start_server(args.folder, args.server_args.split())
    try:
        run(open_loop(url, bodies, expected, 0, 2.0, 20_000, closed_loop=args.concurrency))  # warm-up
        capacity = run(open_loop(url, bodies, expected, 0, 10.0, args.max_requests, closed_loop=args.concurrency))
        rate = capacity["accepted_per_s"] * args.overload_factor
        print(f"capacity (closed loop, {args.concurrency} clients, 10 s): {capacity['accepted_per_s']} req/s, "
              f"p99 {capacity['accepted_p99_ms']} ms, statuses {capacity['statuses']}; offering {rate:.0f} req/s "
              f"for {duration:.0f} s", flush=True)
        loaded = run(open_loop(url, bodies, expected, rate, duration, args.max_requests, proc))
        ready = urllib.request.urlopen(f"{url}/v2/health/ready", timeout=10).status
        after = run(open_loop(url, bodies, expected, 20, 1.0, 20, proc))
        loaded["afterwards"] = {"ready": ready, "statuses": after["statuses"], "wrong_outputs": after["wrong_outputs"]}
        print(json.dumps({"overload": loaded}), flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    # SIGTERM halfway through the same load, on a fresh server.
    proc, url, _ = start_server(args.folder, args.server_args.split())
    try:
        run(open_loop(url, bodies, expected, 0, 2.0, 20_000, closed_loop=args.concurrency))
        drained = run(open_loop(url, bodies, expected, rate, min(duration, 20.0), args.max_requests, proc,
                                sigterm_at=min(duration, 20.0) / 2))
        drained["server_exit"] = proc.wait(60)
        time.sleep(0.5)  # the reader thread takes the last lines
        drained["server_said"] = [line.strip() for line in proc.lines if "draining" in line]
    finally:
        if proc.poll() is None:
            proc.kill()
    drained["lost"] = drained["wrong_outputs"] + sum(n for k, n in drained["statuses"].items()
                                                     if k not in ("200", "503", "closed", "refused"))
    print(json.dumps({"sigterm_during_load": drained}), flush=True)
    return {"capacity": capacity, "overload": loaded, "sigterm_during_load": drained}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of .onnx files written by onnxparity convert")
    p.add_argument("--modes", default="on,off", help="dynamic batching modes to run (default: on,off)")
    p.add_argument("--protocols", default="http", help="comma-separated: http, grpc (default: http)")
    p.add_argument("--format", choices=("binary", "json"), default="binary",
                   help="HTTP bodies: binary tensor data (tritonclient's form; default) or plain JSON")
    p.add_argument("--models", help="comma-separated models to send to (default: every model that takes digits, "
                                    "in turn)")
    p.add_argument("--concurrency", type=int, default=32, help="connections (HTTP) or callers (gRPC); default 32")
    p.add_argument("--channels", type=int, default=4, help="gRPC connections the callers share (default: 4)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per case (at most 60)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every case, interleaved; medians are printed "
                                                         "(at most 10)")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--server-args", default="", help="extra `onnxparity serve` arguments")
    p.add_argument("--trees", default=str(ROOT),
                   help="comma-separated source trees whose `onnxparity serve` to run, side by side (default: this "
                        "one); e.g. a `git worktree` of main, to measure a change before and after")
    p.add_argument("--client", choices=("auto", "python", "wrk"), default="auto",
                   help="HTTP client. wrk: the wrk tool (apt-get install wrk; C), which leaves the server most of "
                        "the CPU; python: aiohttp clients in this process, which take about as much CPU as the "
                        "server; auto (default): wrk where installed")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (default: 2)")
    p.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                   help="leave out the ceiling app (a bare aiohttp + orjson app answering ten floats)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--overload", action="store_true",
                   help="measure past capacity: refusals, latency of what is accepted, memory, a SIGTERM drain")
    p.add_argument("--overload-factor", type=float, default=2.0, help="times the measured capacity (default 2)")
    if sys.argv[1:] == ["--serve-ceiling"]:
        serve_ceiling()
        return 0
    args = p.parse_args()
    duration = min(args.duration, 60.0)
    rounds = max(1, min(args.rounds, 10))
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
    only = args.models.split(",") if args.models else None
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    if not set(protocols) <= {"http", "grpc"}:
        raise SystemExit(f"--protocols: http, grpc, not {args.protocols}")
    bodies = payloads(args.folder, only, fmt=args.format)
    if args.overload:
        flags = sorted({f for f in ("avx2", "avx512f", "avx512_vnni")
                        if re.search(rf"\b{f}\b", Path("/proc/cpuinfo").read_text())})
        print(f"{os.cpu_count()} CPUs ({', '.join(flags)}), load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        result = overload(args, payloads(args.folder, only, fmt="binary"), expected_outputs(args.folder, only))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        return 0 if result["sigterm_during_load"]["lost"] == 0 and result["overload"]["wrong_outputs"] == 0 else 1
    requests = grpc_requests(args.folder, only) if "grpc" in protocols else None
    trees = [Path(t).resolve() for t in args.trees.split(",") if t.strip()]
    cases = [(tree, mode.strip(), protocol) for mode in args.modes.split(",") if mode.strip()
             for protocol in protocols for tree in trees]
    if args.ceiling and "http" in protocols:
        cases.insert(0, (None, "on", "http"))
    runs: dict[str, list[dict]] = {}
    flags = sorted({f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")
                    if re.search(rf"\b{f}\b", Path("/proc/cpuinfo").read_text())})
    print(f"{os.cpu_count()} CPUs ({', '.join(flags) or 'no avx2'}), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for k in range(rounds):
        ceiling = None
        for tree, mode, protocol in list(cases):
            try:
                r = measure(args, tree, mode, protocol, bodies, requests, duration)
            except SystemExit as exc:
                if protocol != "grpc":
                    raise
                print(f"{tree}: no gRPC measured ({exc})", flush=True)  # a tree from before --grpc-port
                cases.remove((tree, mode, protocol))
                continue
            if tree is None:
                key, ceiling = f"ceiling/{args.format}", r["requests_per_s"]
            else:
                key = f"{tree.name if len(trees) > 1 else ''}{'/' if len(trees) > 1 else ''}{protocol}" \
                      f"{'/' + args.format if protocol == 'http' else ''}/batching_{mode}"
            if ceiling:
                r["of_ceiling"] = round(r["requests_per_s"] / ceiling, 3)
            runs.setdefault(key, []).append(r)
            share = f" ({100 * r['of_ceiling']:.0f}% of the ceiling)" if ceiling else ""
            print(f"{key:36} {r['requests_per_s']:8.1f} req/s{share}  p50 {r['p50_ms']:6.2f} ms  "
                  f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  errors {r['errors']}  "
                  f"mean batch {r['mean_batch']}  ({r['requests']} requests, {args.concurrency} clients, "
                  f"{r['seconds']} s, {r['client']} client; CPU per request: server "
                  f"{r['server_cpu_us_per_request']} us, client {r['client_cpu_us_per_request']} us; "
                  f"load average {r['load_average_1min']:.1f})", flush=True)
    if rounds > 1:
        print("medians:")
        for key, rs in runs.items():
            med = {f: statistics.median(r[f] for r in rs) for f in ("requests_per_s", "p50_ms", "p99_ms",
                                                                   "server_cpu_us_per_request")}
            shares = [r["of_ceiling"] for r in rs if "of_ceiling" in r]
            share = f" ({100 * statistics.median(shares):.0f}% of the ceiling)" if shares else ""
            print(f"{key:36} {med['requests_per_s']:8.1f} req/s{share}  p50 {med['p50_ms']:6.2f} ms  "
                  f"p99 {med['p99_ms']:6.2f} ms  server CPU {med['server_cpu_us_per_request']:.0f} us/request  "
                  f"({len(rs)} rounds)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu_flags": flags, "cpus": os.cpu_count(), "runs": runs},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
