"""A server's life: bind, announce the address, warm up, say ready, serve (REST, and gRPC beside it
when asked) until SIGINT or SIGTERM, then drain and stop both.

Draining is what KServe and Triton do for a rolling restart: readiness turns false at once (REST
and gRPC), new inference requests are refused with 503 / UNAVAILABLE so a load balancer sends
them elsewhere, and the requests in flight finish, for up to ``drain_seconds`` (a second signal
cuts the wait short); then both servers close and the process ends normally (exit 0)."""

from __future__ import annotations

import asyncio
import signal
import sys

from onnxparity.serve.app import InferenceServer, ServeConfig
from onnxparity.serve.repository import ServedModel


async def serve_forever(models: dict[str, ServedModel], config: ServeConfig, announce=print) -> None:
    """Bind, announce the address, warm up, report ready, and serve until SIGINT or SIGTERM."""
    from aiohttp import web

    server = InferenceServer(models, config)
    # handler_cancellation: a client that disconnects cancels its handler, which leaves the queue.
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        from onnxparity.errors import InputError

        raise InputError(f"cannot listen on {config.host}:{config.port} ({exc.strerror or exc})") from None
    grpc_server = None
    if config.grpc_port is not None:
        from onnxparity.serve.grpc_server import start_grpc

        try:
            grpc_server, grpc_port = await start_grpc(server, config.host, config.grpc_port, config.max_request_bytes)
        except BaseException:
            await runner.cleanup()
            raise
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    announce(f"onnxparity serve: http://{shown}:{port}/ ({len(models)} model{'s' if len(models) != 1 else ''}: "
             f"{', '.join(models)}; "
             f"providers {', '.join(config.providers or [])}; batching "
             f"{'on, max ' + str(config.max_batch_size) if config.batching else 'off'})")
    if grpc_server is not None:
        announce(f"onnxparity serve: grpc {shown}:{grpc_port} (inference.GRPCInferenceService)")
    signals: list[int] = []
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal(sig: int) -> None:
        signals.append(sig)
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        await server.warm_up()
        announce("onnxparity serve: ready")
        await stop.wait()
        server.drain()
        waiting = server.in_flight
        left = await server.drained(config.drain_seconds, hurry)
        announce(f"onnxparity serve: {signal.Signals(signals[0]).name if signals else 'stop'}: draining ended, "
                 f"{waiting - left} of {waiting} requests in flight finished"
                 + (f", {left} cut off" if left else ""))
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=0.5)
        await runner.cleanup()


def serve(models: dict[str, ServedModel], config: ServeConfig) -> None:
    """Serve until interrupted (blocking)."""
    def announce(line: str) -> None:
        print(line, flush=True)

    try:
        import uvloop  # noqa: F401  (faster loop where installed; not required)

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve_forever(models, config, announce))
    sys.stdout.flush()
