"""What runs in the worker processes of a migration: the source model, the ONNX file, the migrated model.

Each framework gets a process of its own (see :mod:`onnxparity._process`): the source's framework
converts it to ONNX and runs it; the target's framework writes the migrated files, loads them back
safely and runs them. ONNX Runtime runs in the caller's process, which loads no framework.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BATCH = 500


class SourceModel:
    """A Keras or PyTorch model (anything ``convert`` takes), converted to ``onnx_path`` and kept to run."""

    def __init__(self, source: str, onnx_path: str, **convert_options):
        from onnxparity.convert import convert
        from onnxparity.models import resolve

        self.result = convert(source, onnx_path, **convert_options)
        ref = resolve(source)
        target = ref.path if ref.spec is not None else Path(source)
        if ref.framework == "keras":
            from onnxparity.convert.keras import open_source

            self.source = open_source(target, self.result.spec)
        else:
            from onnxparity.convert.torch import open_source
            from onnxparity.trust import Trust

            trust = Trust(convert_options.get("torch_class"), convert_options.get("torch_kwargs"),
                          convert_options.get("trust_recorded", False))
            self.source = open_source(target, self.result.spec, trust,
                                      trust_pickle=convert_options.get("trust_pickle", False))

    def summary(self) -> dict:
        return {"spec": self.result.spec.to_dict(), "onnx_max_abs_diff": self.result.max_abs_diff,
                "framework_version": self.source.framework_version}

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        parts = [self.source.forward([np.ascontiguousarray(x[i:i + BATCH])]) for i in range(0, len(x), BATCH)]
        return [np.concatenate(chunks) for chunks in zip(*parts)]


def run_onnx(path: str | Path, x: np.ndarray) -> list[np.ndarray]:
    """The ONNX file in ONNX Runtime on the CPU (the plain session), all outputs in graph order."""
    from onnxparity.runners.sessions import make_session

    session = make_session(path, ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    parts = [session.run(None, {name: np.ascontiguousarray(x[i:i + BATCH])}) for i in range(0, len(x), BATCH)]
    return [np.concatenate(chunks) for chunks in zip(*parts)]


def write_target(plan, folder: str, x: np.ndarray) -> list[np.ndarray]:
    """In the target framework's process: write the migrated files into ``folder`` and run them on ``x``."""
    if plan.target == "torch":
        from onnxparity.migrate.to_torch import write_and_run
    else:
        from onnxparity.migrate.to_keras import write_and_run
    return write_and_run(plan, folder, x, BATCH)
