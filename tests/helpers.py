"""Small functions the tests run inside worker processes (so no framework leaks into pytest's)."""

from __future__ import annotations


def keras_optimizer_iterations(path) -> int:
    from onnxparity.models.keras_cnn import load

    return int(load(path).optimizer.iterations.numpy())


def print_then_fail(message: str) -> None:
    print(message, flush=True)
    raise RuntimeError("failed after printing")
