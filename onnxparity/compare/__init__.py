"""Comparing arrays: the one home of every metric, tolerance and verdict (NumPy only).

- :mod:`.metrics`: plain metrics over a reference and a candidate (max abs, max rel, SQNR/SNR,
  cosine per sample, top-1 agreement, accuracy...), one definition of each;
- :mod:`.streaming`: the same metrics merged batch by batch (``locate``'s layers);
- :mod:`.tolerances`: :class:`Tolerance`, the defaults by device, their scaling by magnitude;
- :mod:`.calibration`: the calibrated verdict, a candidate's error against the reference's float64
  run within K times the reference's own (:class:`Calibration`);
- :mod:`.judges`: the compare functions that give a :class:`Comparison` and its verdict
  (element-wise, class scores, exact, a quantized variant by :class:`VariantGate`), and the one rule of
  which outputs hold class scores (:func:`holds_classes`).

    from onnxparity.compare import compare, tolerance_for
    c = compare("m", {"outputs": ref, "indices": idx, "output_name": "y", "label": "ref"},
                {"outputs": cand, "indices": idx, "output_name": "y", "label": "cand"}, tolerance_for("cpu"))
    c.passed, c.max_abs_diff, c.top1_agreement
"""

from onnxparity.compare.calibration import Calibration, calibrate
from onnxparity.compare.judges import (Comparison, VariantGate, class_output, class_outputs, compare, holds_classes,
                                       judge_variant, names_classes, within)
from onnxparity.compare.metrics import HIST_EDGES, REL_FLOOR, accuracy
from onnxparity.compare.tolerances import (CONVERT_TOLERANCE, DEFAULT_TOLERANCES, Tolerance, scaled_to,
                                           tolerance_for)

__all__ = ["calibrate", "Calibration", "compare", "within", "judge_variant", "VariantGate", "Comparison", "holds_classes",
           "class_output", "class_outputs", "names_classes",
           "accuracy", "Tolerance", "DEFAULT_TOLERANCES", "CONVERT_TOLERANCE", "tolerance_for", "scaled_to",
           "HIST_EDGES", "REL_FLOOR"]
