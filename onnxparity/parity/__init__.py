"""Parity: the originals and their ONNX files, on every backend and device here, compared on real digits.

The reference is the original on CPU in its own framework (Keras on TensorFlow, PyTorch eager);
the candidates are the original on GPU, the Keras file under Keras 3's torch backend, and the ONNX
file in ONNX Runtime per execution provider and at batch size 1. Each backend runs in a worker
process of its own (:mod:`onnxparity.parity.matrix`); comparisons are plain functions over saved
outputs (:mod:`onnxparity.parity.metrics`); results are plain data saved as JSON
(:mod:`onnxparity.parity.result`); the console table and the HTML page are views of them
(:mod:`onnxparity.parity.report`).

    from onnxparity.parity import check
    result = check("runs/latest/torch", "runs/latest/torch.onnx", data=None, n=500)
    result.passed, [(c.candidate, c.max_abs_diff) for c in result.comparisons]
"""

from __future__ import annotations

from pathlib import Path

from onnxparity.parity.compare import compare_runs
from onnxparity.parity.inputs import ParityInputs, load_inputs
from onnxparity.parity.matrix import Target, run
from onnxparity.parity.metrics import DEFAULT_TOLERANCES, Comparison, Tolerance, compare
from onnxparity.parity.result import BackendRun, ParityResult, load_outputs, save_outputs

__all__ = ["check", "check_many", "compare_runs", "write_reports", "Target", "ParityResult", "Comparison",
           "BackendRun", "Tolerance", "DEFAULT_TOLERANCES", "ParityInputs", "load_inputs", "compare", "run",
           "save_outputs", "load_outputs"]


def check_many(targets: list[Target], *, data: str | None = None, n: int | None = None, synthetic: bool = True,
               json_path: str | Path | None = None, html_path: str | Path | None = None,
               save_outputs_path: str | Path | None = None, require_devices=None, **options) -> ParityResult:
    """Parity for several (original, ONNX) pairs in one matrix; writes the reports asked for.

    ``options`` go to :func:`onnxparity.parity.matrix.run` (providers, gpu, atol, rtol,
    min_agreement, batch_size, batch1_limit, jobs, timeout). ``require_devices`` ("cuda"): a
    device where a model's original or ONNX file did not run fails the check
    (:mod:`onnxparity.parity.require`).
    """
    from onnxparity.parity import require

    require.parse(require_devices)  # a bad name is an input error before anything runs
    inputs = load_inputs(data, n, synthetic=synthetic)
    result, outputs = run(targets, inputs, **options)
    require.apply(result, require_devices)
    write_reports(result, inputs, outputs, json_path=json_path, html_path=html_path,
                  save_outputs_path=save_outputs_path)
    return result


def check(original: str | Path, onnx: str | Path, **options) -> ParityResult:
    """Parity for one model: ``original`` (checkpoint folder, .keras, model.pth) against ``onnx``."""
    return check_many([Target(str(original), str(onnx))], **options)


def write_reports(result: ParityResult, inputs: ParityInputs, outputs: dict, *, json_path=None, html_path=None,
                  save_outputs_path=None) -> None:
    if json_path:
        result.save(json_path)
    if html_path:
        from onnxparity.parity.report import write_html

        write_html(html_path, result, inputs, outputs)
    if save_outputs_path:
        save_outputs(save_outputs_path, result, outputs, inputs)

