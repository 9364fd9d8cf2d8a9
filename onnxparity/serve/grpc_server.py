"""The V2 protocol over gRPC: ``inference.GRPCInferenceService``, as Triton and KServe serve it.

grpcio's asyncio server runs on the HTTP server's event loop and calls into the same
:class:`~onnxparity.serve.app.InferenceServer`: the same models, the same dynamic batchers and
worker threads, the same metrics. The service is Triton's generated servicer
(``tritonclient.grpc.service_pb2_grpc``), so ``tritonclient.grpc`` works unchanged; calls not
served here (shared memory, statistics, model load) answer UNIMPLEMENTED, as the base class does.
A refused request aborts with INVALID_ARGUMENT, NOT_FOUND or UNAVAILABLE (warming up, overloaded,
shutting down) and the message REST would send.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from onnxparity.errors import InputError
from onnxparity.serve.grpc_protocol import encode_model_infer, parse_model_infer, status_code
from onnxparity.serve.protocol import RequestError, server_metadata

log = logging.getLogger(__name__)


def _rpc(route: str):
    """Count the call in /metrics and turn a RequestError into the gRPC status it maps to."""
    def wrap(method):
        @functools.wraps(method)
        async def call(self, request, context):
            started = time.perf_counter()
            model = getattr(request, "model_name", None) or getattr(request, "name", "")
            model = model if model in self.server.models else ""  # no label per made-up name
            code, message = "OK", None
            try:
                return await method(self, request, context)
            except asyncio.CancelledError:  # the client went away
                code = "CANCELLED"
                raise
            except RequestError as exc:
                code, message = status_code(exc.status), str(exc)
            except Exception as exc:  # noqa: BLE001  (logged here, never sent to the client)
                log.exception("internal error in %s", method.__name__)
                code, message = "INTERNAL", f"internal server error ({type(exc).__name__})"
            finally:
                self.server.metrics.request(route, model, code,
                                            time.perf_counter() - started if route == "grpc_infer" else None)
            import grpc

            await context.abort(getattr(grpc.StatusCode, code), message)

        return call

    return wrap


def servicer(server):
    """A ``GRPCInferenceServiceServicer`` answering from ``server`` (an InferenceServer)."""
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc

    class Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
        def __init__(self):
            self.server = server

        @_rpc("grpc")
        async def ServerLive(self, request, context):
            return pb.ServerLiveResponse(live=True)

        @_rpc("grpc")
        async def ServerReady(self, request, context):
            return pb.ServerReadyResponse(ready=self.server.ready)

        @_rpc("grpc")
        async def ModelReady(self, request, context):
            # As Triton: an unknown model or version is "not ready", not an error.
            model = self.server.models.get(request.name)
            ready = (model is not None and model.ready and request.version in ("", model.version)
                     and not self.server.draining)
            return pb.ModelReadyResponse(ready=ready)

        @_rpc("grpc")
        async def ServerMetadata(self, request, context):
            return pb.ServerMetadataResponse(**server_metadata())

        @_rpc("grpc")
        async def ModelMetadata(self, request, context):
            model = self.server.model(request.name, request.version or None)
            return json_format.ParseDict(model.metadata(), pb.ModelMetadataResponse())

        @_rpc("grpc")
        async def ModelConfig(self, request, context):
            config = self.server.triton_config(self.server.model(request.name, request.version or None))
            return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.ModelConfigResponse().config))

        @_rpc("grpc")
        async def RepositoryIndex(self, request, context):
            models = [m for m in self.server.repository_index() if not request.ready or m["state"] == "READY"]
            return json_format.ParseDict({"models": models}, pb.RepositoryIndexResponse())

        @_rpc("grpc_infer")
        async def ModelInfer(self, request, context):
            model = self.server.model(request.model_name, request.model_version or None)
            if not model.ready:
                raise RequestError(f"model {model.name!r} is still warming up", 503)
            with self.server.admitted():
                self.server.batcher(model).check_room()
                parsed = parse_model_infer(request, model.inputs, model.outputs)
                outputs = await self.server.run(model, parsed.inputs)
            datatypes = {n: t.datatype for n, t in model.outputs.items()}
            return encode_model_infer(model.name, model.version, parsed, outputs, datatypes)

    return Servicer()


async def start_grpc(server, host: str, port: int, max_message_bytes: int):
    """Bind and start the gRPC server on the running loop: (the grpc.aio server, the port bound)."""
    try:
        import grpc
        from tritonclient.grpc import service_pb2_grpc
    except ImportError as exc:  # both are dependencies; a trimmed install may lack them
        raise InputError(f"gRPC needs grpcio and tritonclient[grpc] ({exc}): pip install grpcio "
                         "'tritonclient[grpc]'") from None
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    _check_free(host, port, address)
    aio = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a port in use is an error, never a silent second listener
    ])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer(server), aio)
    try:
        bound = aio.add_insecure_port(address)
    except RuntimeError:  # lost a race for the port since _check_free
        bound = 0
    if not bound:
        await aio.stop(None)
        raise InputError(f"cannot listen for gRPC on {address}")
    await aio.start()
    return aio, bound


def _check_free(host: str, port: int, address: str) -> None:
    """A one-line error for a port in use, before gRPC's core logs its own multi-line one."""
    import os
    import socket

    if port == 0:
        return
    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise InputError(f"cannot listen for gRPC on {address} ({reason})") from None
