"""The check before a converted file is moved into place: the file as it is, in plain ONNX Runtime,
against the original at batch N and batch 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnxparity.errors import ParityFailure


def verify(path: Path, feeds: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, float]:
    """Run the file as it is (plain ORT) at batch N and 1; each output must match the original's
    within :data:`onnxparity.compare.CONVERT_TOLERANCE` (scaled to the output's
    magnitude: a converter reorders float sums) and the batch-1 run must match batch N."""
    from onnxparity.compare import CONVERT_TOLERANCE, compare, scaled_to
    from onnxparity.onnx_model import OnnxModel

    session = OnnxModel(path).session()
    names = list(reference)
    n = len(next(iter(feeds.values())))
    full = dict(zip(names, session.run(names, feeds)))
    single = dict(zip(names, session.run(names, {k: v[:1] for k, v in feeds.items()})))
    diffs = {}
    for name in names:
        got, want = full[name], reference[name]
        if got.shape != want.shape:
            raise ParityFailure(f"output {name}: ONNX Runtime gives shape {list(got.shape)}, the original {list(want.shape)}")
        tol = scaled_to(CONVERT_TOLERANCE, want)
        idx = np.arange(n)
        c = compare("convert", {"outputs": want, "indices": idx, "output_name": name, "label": "original"},
                    {"outputs": got, "indices": idx, "output_name": name, "label": "onnxruntime"}, tol, output=name)
        diffs[name] = c.max_abs_diff or 0.0
        if not c.passed:
            raise ParityFailure(f"output {name}: ONNX Runtime differs from the original: {'; '.join(c.reasons)}")
        one = compare("convert", {"outputs": got[:1], "indices": idx[:1], "output_name": name, "label": f"batch {n}"},
                      {"outputs": single[name], "indices": idx[:1], "output_name": name, "label": "batch 1"}, tol,
                      output=name)
        if not one.passed:
            raise ParityFailure(f"output {name}: batch 1 gives other results than batch {n}; the batch axis is not dynamic")
    return diffs
