"""Small functions the tests run inside worker processes (so no framework leaks into pytest's)."""

from __future__ import annotations


def keras_optimizer_iterations(path) -> int:
    from onnxparity.models.keras_cnn import load

    return int(load(path).optimizer.iterations.numpy())


def keras_saved_model(path, dest) -> None:
    """Export a Keras file as a TensorFlow SavedModel folder (what `model.export` writes)."""
    from onnxparity.models.keras_cnn import load

    load(path).export(str(dest), verbose=False)
