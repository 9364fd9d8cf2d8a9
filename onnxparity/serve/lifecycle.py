"""A server's life: bind, announce the address, warm up, say ready, serve (REST, and gRPC beside it
when asked) until SIGINT or SIGTERM, then stop both."""

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
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        await server.warm_up()
        announce("onnxparity serve: ready")
        await stop.wait()
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=1)
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
