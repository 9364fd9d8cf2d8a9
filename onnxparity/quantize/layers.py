"""Which layers cost the int8 variant its agreement: per-node quantization error, worst first.

ONNX Runtime's own debugging tools (``onnxruntime.quantization.qdq_loss_debug``) run the fp32 and
the QDQ model with every intermediate tensor saved; each node is scored by the quantization noise
of what it consumes: its activation inputs (before against after their QuantizeLinear /
DequantizeLinear pair) and its weights (float against dequantized), as one signal-to-quantization-
noise ratio in dB. Keeping the lowest-scoring nodes in float (``nodes_to_exclude``) removes the
largest noise sources first.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SAMPLES = 16  # calibration samples the activations are compared on (every intermediate tensor of each is kept)


def rank(fp32: str | Path, qdq: str | Path, feeds_batches, tmp: str | Path) -> list[tuple[str, float]]:
    """``[(node name, SQNR dB)]`` of the quantized nodes of ``fp32``, the noisiest first."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as debug

    from onnxparity.quantize.int8 import FeedReader

    batches = list(feeds_batches)
    tmp = Path(tmp)
    saved = {}
    for label, path in (("float", fp32), ("qdq", qdq)):
        augmented = tmp / f"{label}.augmented.onnx"
        debug.modify_model_output_intermediate_tensors(str(path), str(augmented))
        saved[label] = debug.collect_activations(str(augmented), FeedReader(batches))
    activation = debug.compute_activation_error(debug.create_activation_matching(saved["qdq"], saved["float"]))
    # Scalars as 1-element arrays: ORT's error function concatenates them and fails on 0-d arrays.
    weights = {name: {k: np.atleast_1d(v) for k, v in match.items()}
               for name, match in debug.create_weight_matching(str(fp32), str(qdq)).items()}
    weight = debug.compute_weight_error(weights)
    scored = []
    for node in onnx.load(str(fp32), load_external_data=False).graph.node:
        sources = [activation[i]["qdq_err"] for i in node.input if i in activation]
        sources += [weight[i] for i in node.input if i in weight]
        if node.name and sources:
            noise = sum(10 ** (-s / 10) for s in sources)
            scored.append((node.name, round(-10 * math.log10(noise), 2) if noise > 0 else math.inf))
    return sorted(scored, key=lambda item: item[1])
