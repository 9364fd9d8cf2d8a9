"""The HTTP server: the V2 REST routes, the convenience route, the page and ``/metrics`` (aiohttp).

aiohttp because one asyncio event loop holds thousands of open connections cheaply, its C HTTP
parser keeps per-request cost low on two cores, the dynamic batcher is a few lines of asyncio, and
it enforces the request-size limit itself. ONNX Runtime runs in worker threads (it releases the
GIL), so the loop keeps accepting requests while a batch computes. Nothing here imports a
training framework: the server process holds ONNX Runtime only.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

import numpy as np

from onnxparity.errors import first_line
from onnxparity.serve.batching import RETRY_AFTER_S, Batcher
from onnxparity.serve.metrics import Metrics
from onnxparity.serve.protocol import (HEADER_LENGTH, RequestError, dumps, encode_infer_response, parse_infer_request,
                                       server_metadata)
from onnxparity.serve.repository import ServedModel, warm_up

log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    """How to serve: where, on what, and how requests are batched and bounded."""

    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int | None = None  # the V2 gRPC service too, on this port of the same host (0: any free one)
    providers: list[str] | None = None  # as the sessions started them, for the startup line
    workers: int = 2  # threads that run ONNX Runtime
    batching: bool = True
    max_batch_size: int = 64
    max_queue_delay_us: int = 0
    instances: int = 1  # concurrent batches per model, all on one session (Triton's instance_group)
    inline_below_us: int = 1000  # a batch expected to run faster than this runs on the event loop (batching.py)
    max_request_bytes: int = 8 * 1024 * 1024
    max_queue: int = 256  # requests that may wait per model; more are refused at once (503)
    request_timeout_s: float | None = 5.0  # the longest a request may wait in its model's queue (None: no limit)
    drain_seconds: float = 20.0  # after SIGTERM, how long requests in flight may take to finish


class InferenceServer:
    """Routes and state of one server: the models, their batchers, the worker threads."""

    def __init__(self, models: dict[str, ServedModel], config: ServeConfig):
        self.models = models
        self.config = config
        self.metrics = Metrics(config.max_batch_size)
        self.executor = ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="onnxruntime")
        self.batchers: dict[str, Batcher] = {}
        self.draining = False  # SIGTERM came: not ready, new requests refused, those in flight finish
        self.in_flight = 0

    @property
    def ready(self) -> bool:
        return not self.draining and all(m.ready for m in self.models.values())

    @contextlib.contextmanager
    def admitted(self):
        """An inference request, counted in flight; refused (503) once the server drains."""
        if self.draining:
            raise RequestError("the server is shutting down", 503, retry_after=RETRY_AFTER_S)
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def drain(self) -> None:
        """Turn not ready and refuse new inference requests; those in flight go on (:meth:`drained`)."""
        self.draining = True

    async def drained(self, seconds: float, stop_early: asyncio.Event | None = None) -> int:
        """Wait until no request is in flight, at most ``seconds`` (or until ``stop_early`` is set);
        returns how many are still in flight."""
        deadline = time.monotonic() + seconds
        while self.in_flight and time.monotonic() < deadline and not (stop_early and stop_early.is_set()):
            await asyncio.sleep(0.01)
        return self.in_flight

    # -- the application ------------------------------------------------------------------
    def app(self):
        from aiohttp import web

        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[self._errors])
        r = app.router
        r.add_get("/", self.page)
        r.add_get("/v2", self.server_metadata)
        r.add_get("/v2/health/live", self.live)
        r.add_get("/v2/health/ready", self.server_ready)
        r.add_post("/v2/repository/index", self.index)
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            r.add_get(prefix, self.model_metadata)
            r.add_get(prefix + "/ready", self.model_ready)
            r.add_get(prefix + "/config", self.model_config)
            r.add_post(prefix + "/infer", self.infer)
        r.add_post("/predict", self.predict)
        r.add_get("/metrics", self.prometheus)
        app.on_cleanup.append(self._stop)
        return app

    def batcher(self, model: ServedModel) -> Batcher:
        """The model's queue and batcher (made on first use, on the running loop). A model that cannot
        stack requests, or any model with batching off, gets one that runs each request alone,
        ``workers`` at a time, under the same queue bounds."""
        b = self.batchers.get(model.name)
        if b is None:
            c = self.config
            stack = c.batching and model.batched
            b = Batcher(model, self.executor, c.max_batch_size if stack else 1,
                        c.max_queue_delay_us / 1e6 if stack else 0, c.instances if stack else max(1, c.workers),
                        self.metrics.batch, c.inline_below_us / 1e6 if stack else 0, max_queue=c.max_queue,
                        timeout_s=c.request_timeout_s, stack=stack)
            b.start()
            self.batchers[model.name] = b
        return b

    async def _stop(self, app=None) -> None:
        for b in self.batchers.values():
            await b.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def warm_up(self) -> None:
        """Run every model once at batch 1 and at the largest batch, then report ready."""
        loop = asyncio.get_running_loop()
        for model in self.models.values():
            await loop.run_in_executor(self.executor, warm_up, model, self.config.max_batch_size)

    # -- errors: one JSON line, never a traceback -------------------------------------------
    def _json(self, obj, status: int = 200):
        from aiohttp import web

        return web.Response(body=dumps(obj), status=status,
                            content_type="application/json")

    @property
    def _errors(self):
        from aiohttp import web

        @web.middleware
        async def middleware(request, handler):
            started = time.perf_counter()
            route, model = _route_of(request)
            model = model if model in self.models else ""  # no label per made-up name
            try:
                response = await handler(request)
            except RequestError as exc:
                response = self._json({"error": str(exc)}, exc.status)
                if exc.retry_after is not None:
                    response.headers["Retry-After"] = str(exc.retry_after)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
                if exc.status == 405:
                    message = f"{request.method} is not allowed on {request.path}"
                elif exc.status == 404:
                    message = f"no route {request.path}"
                response = self._json({"error": message}, exc.status)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (logged here, never sent to the client)
                log.exception("internal error on %s %s", request.method, request.path)
                response = self._json({"error": f"internal server error ({type(exc).__name__})"}, 500)
            if route is not None:
                self.metrics.request(route, model, str(response.status),
                                     time.perf_counter() - started if route in ("infer", "predict") else None)
            return response

        return middleware

    def model(self, name: str, version: str | None = None) -> ServedModel:
        """The served model by name (and version, where given), or a 404."""
        model = self.models.get(name)
        if model is None:
            raise RequestError(f"unknown model {name!r} (served: {', '.join(self.models)})", 404)
        if version is not None and version != model.version:
            raise RequestError(f"model {name!r} has no version {version!r} (it has {model.version})", 404)
        return model

    def triton_config(self, model: ServedModel) -> dict:
        """The model's configuration as Triton reports it, with this server's batching."""
        config = model.triton_config(self.config.max_batch_size)
        if self.config.batching:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": self.config.max_queue_delay_us}
        return config

    def _model(self, request) -> ServedModel:
        return self.model(request.match_info["model"], request.match_info.get("version"))

    # -- health and metadata ------------------------------------------------------------------
    async def live(self, request):
        return self._json({"live": True})

    def _not_ready(self) -> str:
        return "the server is shutting down" if self.draining else "the server is still warming up its models"

    async def server_ready(self, request):
        if not self.ready:
            raise RequestError(self._not_ready(), 503)
        return self._json({"ready": True})

    async def model_ready(self, request):
        model = self._model(request)
        if self.draining:
            raise RequestError(self._not_ready(), 503)
        if not model.ready:
            raise RequestError(f"model {model.name!r} is still warming up", 503)
        return self._json({"name": model.name, "ready": True})

    async def server_metadata(self, request):
        return self._json(server_metadata())

    async def model_metadata(self, request):
        return self._json(self._model(request).metadata())

    async def model_config(self, request):
        return self._json(self.triton_config(self._model(request)))

    def repository_index(self) -> list[dict]:
        return [{"name": m.name, "version": m.version, "state": "READY" if m.ready else "LOADING"}
                for m in self.models.values()]

    async def index(self, request):
        return self._json(self.repository_index())

    async def prometheus(self, request):
        from aiohttp import web

        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def page(self, request):
        from aiohttp import web

        html = resources.files("onnxparity.serve").joinpath("static/index.html").read_bytes()
        return web.Response(body=html, content_type="text/html", charset="utf-8")

    # -- inference ----------------------------------------------------------------------------
    async def run(self, model: ServedModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run through the model's queue and batcher (:meth:`batcher`)."""
        if model.batched:
            rows = {a.shape[0] for a in feeds.values()}
            if len(rows) > 1:
                raise RequestError(f"inputs differ in batch size ({sorted(rows)})")
            (n,) = rows
            if n < 1:
                raise RequestError("the batch is empty (first dimension 0)")
            if n > self.config.max_batch_size:
                raise RequestError(f"batch of {n} exceeds the model's max_batch_size {self.config.max_batch_size}")
        try:
            return await self.batcher(model).infer(feeds)
        except RequestError:
            raise
        except Exception as exc:  # ONNX Runtime's own error types
            status = 400 if type(exc).__name__ in ("InvalidArgument", "NotImplemented") else 500
            raise RequestError(f"model {model.name!r} could not run the request ({first_line(exc, 300)})",
                               status) from None

    async def infer(self, request):
        from aiohttp import web

        model = self._model(request)
        if not model.ready:
            raise RequestError(f"model {model.name!r} is still warming up", 503)
        with self.admitted():
            self.batcher(model).check_room()  # before the body is read and decoded: a refusal costs little
            body = await request.read()
            parsed = parse_infer_request(body, request.headers.get(HEADER_LENGTH), model.inputs, model.outputs)
            outputs = await self.run(model, parsed.inputs)
        datatypes = {n: t.datatype for n, t in model.outputs.items()}
        payload, header_length = encode_infer_response(model.name, model.version, parsed, outputs, datatypes)
        if header_length is None:
            return web.Response(body=payload, content_type="application/json")
        return web.Response(body=payload, headers={HEADER_LENGTH: str(header_length),
                                                   "Content-Type": "application/octet-stream"})

    async def predict(self, request):
        """An image file in (raw body or a multipart form's file), each model's digit out."""
        if not self.ready:
            raise RequestError(self._not_ready(), 503, retry_after=RETRY_AFTER_S if self.draining else None)
        with self.admitted():
            data = await _image_bytes(request)
            # Decoding and resizing take milliseconds (more for a large photo): off the event loop.
            digit = await asyncio.get_running_loop().run_in_executor(self.executor, _digit_of, data)
            models = [m for m in self.models.values() if m.takes_digits]
            if not models:
                raise RequestError("no served model takes 28x28 digits (none carries an onnxparity model spec)", 404)
            results = await asyncio.gather(*(self.run(m, m.digits_feed(digit[None])) for m in models))
        answers = []
        for m, out in zip(models, results):
            p = m.probabilities(out[m.digit_output])[0]
            best = int(np.argmax(p))
            answers.append({"model": m.name, "digit": m.labels[best] if best < len(m.labels) else str(best),
                            "probability": float(p[best]), "probabilities": [round(float(v), 6) for v in p]})
        return self._json({"image": digit.tolist(), "predictions": answers})


def _route_of(request) -> tuple[str | None, str]:
    path = request.path
    if path.endswith("/infer"):
        return "infer", request.match_info.get("model", "")
    if path == "/predict":
        return "predict", ""
    if path.startswith("/v2"):
        return "v2", request.match_info.get("model", "")
    return None, ""


async def _image_bytes(request) -> bytes:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if part.filename is not None or part.name in ("image", "file"):
                return bytes(await part.read(decode=True))
        raise RequestError("the form holds no image file (send it as field 'image')")
    data = await request.read()
    if not data:
        raise RequestError("the body is empty; POST an image file (PNG, JPEG...)")
    return data


def _digit_of(data: bytes) -> np.ndarray:
    """An uploaded image file -> the (28, 28) digit the models see; a 400 for what is not one."""
    from onnxparity.data.images import decode_gray, to_mnist
    from onnxparity.errors import InputError

    try:
        return to_mnist(decode_gray(io.BytesIO(data), "the body"))
    except InputError as exc:
        raise RequestError(str(exc)) from None
