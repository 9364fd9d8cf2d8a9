"""Small functions the tests run inside worker processes (so no framework leaks into pytest's)."""

from __future__ import annotations


def keras_optimizer_iterations(path) -> int:
    from onnxparity.models.keras_cnn import load

    return int(load(path).optimizer.iterations.numpy())


def print_then_fail(message: str) -> None:
    print(message, flush=True)
    raise RuntimeError("failed after printing")


def runner_details(path, **options) -> dict:
    from onnxparity.runners import open_runner

    return open_runner(path, **options).details()
