"""Load benchmark for `onnxparity serve`: single-image V2 requests on loopback, batching on and off.

Why a script and not a test: its figures depend on the machine and on whatever else runs on it.
It starts the server itself (127.0.0.1, a free port) once per mode, sends binary-form V2
requests (tritonclient's wire format) of one real digit each, alternating between the served
models, from ``--concurrency`` client connections for ``--duration`` seconds (and at most
``--max-requests``), then prints requests/s and latency percentiles, and the mean batch size
the server reports in /metrics.

    python scripts/load_test.py runs/latest                # batching on, then off; 32 clients, 10 s
    python scripts/load_test.py DIR --modes on --models torch_net --client python --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def payloads(folder: str, only: list[str] | None = None, n: int = 16) -> list[tuple[str, bytes, dict]]:
    """(model, body, headers) for n real digits per model that takes digits, in binary V2 form."""
    from onnxparity.data import load_digits
    from onnxparity.serve import load_models
    from onnxparity.serve.protocol import HEADER_LENGTH

    digits = load_digits(None, "test").images[:n]
    out = []
    for name, model in load_models(folder).items():
        if not model.takes_digits or (only and name not in only):
            continue
        (feed_name, x), = model.digits_feed(digits).items()
        datatype = next(iter(model.inputs.values())).datatype
        for row in x:
            raw = np.ascontiguousarray(row[None]).tobytes()
            header = json.dumps({"inputs": [{"name": feed_name, "datatype": datatype, "shape": [1, *row.shape],
                                             "parameters": {"binary_data_size": len(raw)}}],
                                 "outputs": [{"name": model.digit_output, "parameters": {"binary_data": True}}]})
            out.append((name, header.encode() + raw, {HEADER_LENGTH: str(len(header.encode())),
                                                      "Content-Type": "application/octet-stream"}))
    if not out:
        raise SystemExit(f"{folder}: no model that takes 28x28 digits")
    return out


def start_server(folder: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "onnxparity", "serve", folder, "--port", "0", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, deadline = None, time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the server exited ({proc.wait()})")
        m = re.search(r"(http://[\d.]+:\d+)/", line)
        url = url or (m.group(1) if m else None)
        if "ready" in line and url:
            # Keep reading what it prints, so a full pipe never stalls it.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, url
    proc.kill()
    raise SystemExit("the server did not become ready in 60 s")


async def load(url: str, bodies, concurrency: int, duration: float, max_requests: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
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
        elapsed = time.perf_counter() - started
        async with session.get(f"{url}/metrics") as r:
            metrics = await r.text()
    lat = np.array(latencies) * 1000
    return {"requests": len(lat), "errors": errors, "seconds": round(elapsed, 2),
            "requests_per_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p90_ms": round(float(np.percentile(lat, 90)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "max_ms": round(float(lat.max()), 2),
            "mean_batch": _mean_batch(metrics)}


WRK_SCRIPT = """
local files, paths, lengths = {}, {}, {}
for line in io.lines("%(index)s") do
  local file, path, length = line:match("^(%%S+) (%%S+) (%%S+)$")
  local f = assert(io.open(file, "rb")); files[#files + 1] = f:read("*a"); f:close()
  paths[#paths + 1] = path; lengths[#lengths + 1] = length
end
local i = 0
request = function()
  i = i %% #files + 1
  return wrk.format("POST", paths[i], {["Inference-Header-Content-Length"] = lengths[i],
                    ["Content-Type"] = "application/octet-stream"}, files[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, '
    .. '"p99_us": %%d, "max_us": %%d, "errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def load_wrk(url: str, bodies, concurrency: int, duration: float, workdir: Path) -> dict:
    """The same requests from wrk (C, one thread): a client that leaves the server most of the CPU."""
    import resource

    lines = []
    for k, (name, body, headers) in enumerate(bodies):
        (workdir / f"body{k}.bin").write_bytes(body)
        lines.append(f"{workdir / f'body{k}.bin'} /v2/models/{name}/infer {headers['Inference-Header-Content-Length']}")
    (workdir / "index.txt").write_text("\n".join(lines) + "\n")
    (workdir / "load.lua").write_text(WRK_SCRIPT % {"index": workdir / "index.txt"})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "5s",
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="folder of .onnx files written by onnxparity convert")
    p.add_argument("--modes", default="on,off", help="dynamic batching modes to run (default: on,off)")
    p.add_argument("--models", help="comma-separated models to send to (default: every model that takes digits, "
                                    "in turn)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per mode (at most 60)")
    p.add_argument("--max-requests", type=int, default=200_000)
    p.add_argument("--server-args", default="", help="extra `onnxparity serve` arguments")
    p.add_argument("--client", choices=("auto", "python", "wrk"), default="auto",
                   help="wrk: the wrk tool (apt-get install wrk; C, one thread), which leaves the server most of "
                        "the CPU; python: aiohttp clients in this process, which take about as much CPU as the "
                        "server; auto (default): wrk where installed")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    duration = min(args.duration, 60.0)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    if args.client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --client python")
    bodies = payloads(args.folder, args.models.split(",") if args.models else None)
    results = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        extra = args.server_args.split() + ([] if mode == "on" else ["--no-batching"])
        proc, url = start_server(args.folder, extra)
        try:
            run(load(url, bodies, args.concurrency, 1.0, 2000))  # warm the connections
            server_cpu, client_cpu = cpu_seconds(proc.pid), time.process_time()
            if args.client == "wrk":
                with tempfile.TemporaryDirectory() as tmp:
                    r = load_wrk(url, bodies, args.concurrency, duration, Path(tmp))
                r["mean_batch"] = mean_batch(url)
            else:
                r = run(load(url, bodies, args.concurrency, duration, args.max_requests))
                r["client_cpu_us_per_request"] = round((time.process_time() - client_cpu) / r["requests"] * 1e6)
            # CPU time per request: a figure that other people's load on the machine moves less.
            r["server_cpu_us_per_request"] = round((cpu_seconds(proc.pid) - server_cpu) / r["requests"] * 1e6)
            r["load_average_1min"] = os.getloadavg()[0]
            r["client"] = args.client
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        results[f"batching_{mode}"] = r
        print(f"batching {mode:3}: {r['requests_per_s']:8.1f} req/s  p50 {r['p50_ms']:6.2f} ms  "
              f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  errors {r['errors']}  "
              f"mean batch {r['mean_batch']}  ({r['requests']} requests, {args.concurrency} clients, "
              f"{r['seconds']} s, {r['client']} client; CPU per request: server {r['server_cpu_us_per_request']} us, client "
              f"{r['client_cpu_us_per_request']} us; {os.cpu_count()} CPUs, load average {r['load_average_1min']:.1f})",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
