"""Serve ONNX models with ONNX Runtime behind the KServe Open Inference Protocol (V2).

The V2 REST protocol as Triton, KServe and MLServer speak it (so ``tritonclient`` works
unchanged), with the binary tensor data extension, dynamic batching, ``/metrics``, a convenience
``POST /predict`` for image files and a drawing page at ``/``; with ``grpc_port``, the same API
over gRPC too (``grpc_server``). ``export_triton`` writes the same models as a Triton model
repository plus a KServe ``InferenceService``, for scaling out. The server imports ONNX Runtime,
aiohttp and Pillow (and grpcio), never a training framework (with a CUDA provider, torch's
import may load the CUDA libraries its wheels bring: ``make_session``).

    from onnxparity.serve import ServeConfig, load_models, serve
    serve(load_models("runs/latest"), ServeConfig(port=8000))
"""

from __future__ import annotations

import os


def load_models(folder: str | os.PathLike, providers: list[str] | None = None, intra_op_threads: int = 1,
                inter_op_threads: int = 1, choose_s: float = 0.0, batch_sizes: tuple[int, ...] = (1, 64)) -> dict:
    """Open every ONNX file under ``folder`` in its own session: name -> ServedModel. With ``choose_s``
    seconds per model, on the CPU, the session that ran fastest at ``batch_sizes`` here (and passed
    parity with the file as it is); else the toolkit's tuned ONNX Runtime session."""
    from onnxparity.runners.sessions import resolve_providers
    from onnxparity.serve.repository import default_providers, find_models, load_model

    providers = resolve_providers(providers) if providers else default_providers()
    return {name: load_model(name, path, providers, intra_op_threads, inter_op_threads, choose_s, batch_sizes)
            for name, path in find_models(folder).items()}


def __getattr__(name: str):
    # Lazy: importing onnxparity.serve loads neither aiohttp nor ONNX Runtime.
    if name in ("ServeConfig", "InferenceServer"):
        from onnxparity.serve import app

        return getattr(app, name)
    if name in ("serve", "serve_forever"):
        from onnxparity.serve import lifecycle

        return getattr(lifecycle, name)
    if name == "export_triton":
        from onnxparity.serve.triton import export_triton

        return export_triton
    raise AttributeError(name)
