"""What an output is, and how each kind is judged, through ``onnxparity.compare``'s public functions.

Class scores only where the spec or the graph marks them or the name says so; other float outputs
element-wise (1-D, (N, 1), 3-D: boundary and NaN cases), integer and bool outputs exact; cosine and
SNR for every float output; a variant judged by :class:`VariantGate` on its outputs' kinds.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxparity.compare import (Tolerance, VariantGate, class_output, compare, holds_classes, judge_variant,
                                names_classes, tolerance_for)
from onnxparity.compare.metrics import cosine_per_sample, snr_db

TOL = tolerance_for("cpu")


def run(outputs, name="y", label="x") -> dict:
    outputs = np.asarray(outputs)
    return {"outputs": outputs, "output_name": name, "label": label, "indices": np.arange(len(outputs))}


def judge(ref, cand, name="y", tol=TOL, **kw):
    return compare("m", run(ref, name, "ref"), run(cand, name, "cand"), tol, **kw)


# -- the rule ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["logits", "probabilities", "probs", "log_probs", "log_probabilities",
                                  "class_logits", "output/Softmax", "start_logits"])
def test_names_that_say_class_scores(name):
    assert names_classes(name) and holds_classes(np.zeros((4, 3), np.float32), name)


@pytest.mark.parametrize("name", ["pooler_output", "last_hidden_state", "embedding", "boxes", "output_1", "y",
                                  "problem", "logistic"])
def test_other_names_are_not_class_scores_whatever_the_shape(name):
    embedding = np.random.default_rng(0).normal(size=(8, 384)).astype(np.float32)
    assert not holds_classes(embedding, name)
    assert judge(embedding, embedding, name).judged_as == "element-wise"


def test_marked_outputs_are_class_scores_and_shape_still_matters():
    scores = np.random.default_rng(0).normal(size=(8, 384)).astype(np.float32)
    assert holds_classes(scores, "pooler_output", marked=True)
    assert judge(scores, scores, "pooler_output", classes=True).judged_as == "class scores"
    assert not holds_classes(np.zeros((8, 1), np.float32), "logits", marked=True)  # one column: no classes
    assert not holds_classes(np.zeros(8, np.float32), "logits", marked=True)
    assert not holds_classes(np.zeros((8, 3), np.int64), "logits", marked=True)
    assert class_output({"emb": scores, "head": scores}, marked=("head",)) == "head"
    assert class_output({"emb": scores}) is None


def test_softmax_in_the_graph_marks_the_output_through_shape_only_ops():
    from onnx import TensorProto, helper

    from onnxparity.onnx_model import softmax_outputs

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("head", "feature", "logp")]
    graph = helper.make_graph([
        helper.make_node("Softmax", ["x"], ["s"]), helper.make_node("Identity", ["s"], ["head"]),
        helper.make_node("Relu", ["x"], ["feature"]),
        helper.make_node("LogSoftmax", ["x"], ["ls"]), helper.make_node("Flatten", ["ls"], ["logp"]),
    ], "g", [x], outs)
    assert softmax_outputs(graph) == ["head", "logp"]


# -- element-wise outputs: 1-D, (N, 1), 3-D ----------------------------------------------------------------
SHAPES = [(50,), (50, 1), (10, 4, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_element_wise_boundary(shape):
    ref = np.random.default_rng(1).uniform(-2, 2, shape).astype(np.float64)
    limit = TOL.atol + TOL.rtol * np.abs(ref)
    inside = judge(ref, ref + 0.9 * limit)
    assert inside.passed and inside.judged_as == "element-wise" and inside.top1_agreement is None
    beyond = ref.copy()
    beyond.flat[7] += 1.1 * limit.flat[7]
    c = judge(ref, beyond)
    assert not c.passed and c.outside_tolerance == 1 and "1 of" in c.reasons[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_element_wise_nan_where_the_reference_has_none_fails(shape):
    ref = np.ones(shape, np.float32)
    cand = ref.copy()
    cand.flat[3] = np.nan
    c = judge(ref, cand)
    assert not c.passed and c.judged_as == "element-wise" and any("NaN/Inf" in r for r in c.reasons)
    assert judge(cand, cand.copy()).passed  # the same NaN in the same place is exact


@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
def test_integer_and_bool_outputs_are_exact(dtype):
    ref = (np.arange(40).reshape(20, 2) % 3).astype(dtype)
    assert judge(ref, ref.copy(), "logits").judged_as == "exact"  # a name does not make integers class scores
    cand = ref.copy()
    cand[5, 1] = not cand[5, 1] if dtype is np.bool_ else cand[5, 1] + 1
    c = judge(ref, cand, tol=Tolerance(atol=10.0, rtol=10.0))  # no tolerance loosens an exact output
    assert not c.passed and c.judged_as == "exact" and c.atol == 0.0 and c.outside_tolerance == 1
    assert c.cosine_min is None and c.snr_db is None


# -- cosine and SNR ------------------------------------------------------------------------------------
def test_cosine_per_sample_and_snr():
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    cand = np.array([[0.0, 1.0], [0.0, 5.0], [0.0, 0.0], [1.0, 0.0]])
    assert cosine_per_sample(ref, cand).tolist() == [0.0, 1.0, 1.0, 0.0]  # both zero: 1; one zero: 0
    assert snr_db(ref, ref) == np.inf
    assert snr_db(ref, cand) == pytest.approx(10 * np.log10(5.0 / (1 + 1 + 9 + 1)))
    c = judge(ref, cand)
    assert c.cosine_min == 0.0 and c.cosine_median == 0.5 and c.snr_db == pytest.approx(snr_db(ref, cand))


# -- variants --------------------------------------------------------------------------------------------
def variant(ref, cand, name, labels=None, gate=None, **kw):
    labels = np.full(len(ref), -1) if labels is None else labels
    return judge_variant("m", run(ref, name, "fp32"), run(cand, name, "int8"), labels, TOL,
                         variant={"precision": "int8", "gate": gate or {}}, **kw)


def embeddings(n=32, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, 64)).astype(np.float32)
    return ref, (ref + noise * rng.normal(size=ref.shape)).astype(np.float32)


def test_variant_embedding_by_cosine_and_snr():
    gate = VariantGate()
    ref, close = embeddings(noise=0.1)  # cosine about 0.995, SNR 20 dB: far beyond 1e-5, a good int8
    c = variant(ref, close, "pooler_output")
    assert c.passed and c.judged_as == "element-wise" and c.max_abs_diff > 0.1 and c.cosine_median > 0.99
    _, far = embeddings(noise=1.5)  # cosine about 0.55, SNR -3.5 dB
    c = variant(ref, far, "pooler_output")
    assert not c.passed and c.cosine_median < gate.min_cosine_median
    assert c.reasons[0].startswith("output pooler_output: cosine similarity median")
    assert any("SNR" in r for r in c.reasons)
    one_ruined = close.copy()
    one_ruined[3] = -ref[3]  # one sample turned around: the median holds, the lowest does not
    c = variant(ref, one_ruined, "pooler_output")
    assert not c.passed and c.cosine_min == pytest.approx(-1.0) and c.cosine_median > 0.99


def test_variant_gate_thresholds_are_the_boundary():
    ref, cand = embeddings(noise=0.3)
    c = variant(ref, cand, "emb")
    assert c.passed
    assert not variant(ref, cand, "emb", gate={"min_cosine_median": c.cosine_median + 1e-6}).passed
    assert variant(ref, cand, "emb", gate={"min_cosine_median": c.cosine_median - 1e-6}).passed
    assert not variant(ref, cand, "emb", gate={"min_snr_db": c.snr_db + 0.01}).passed
    assert not variant(ref, cand, "emb", gate={"min_cosine": c.cosine_min + 1e-6}).passed


def two_way(n=100, flipped=0, margin=0.2):
    """Class scores (two classes) where ``flipped`` rows' top class changes in the variant; the
    reference's own margin on those rows is ``margin``."""
    ref = np.tile(np.array([[0.9, 0.1]], np.float32), (n, 1))
    ref[:flipped] = [0.5 + margin / 2, 0.5 - margin / 2]
    cand = ref.copy()
    cand[:flipped] = cand[:flipped, ::-1]
    return ref, cand


def test_variant_class_scores_count_disagreements_by_the_fp32_margins():
    ref, cand = two_way(flipped=1)
    assert variant(ref, cand, "probabilities").passed  # 99% agreement: the gate's minimum
    ref, cand = two_way(flipped=2)
    c = variant(ref, cand, "probabilities")
    assert not c.passed and c.real_disagreements == 2 and c.near_ties == []
    assert c.reasons == ["output probabilities: top-1 agreement 98.00% is below 99.00% (2 real disagreements)"]
    ref, cand = two_way(flipped=5, margin=0.5 * TOL.atol)  # exact ties in float32 terms: any wobble flips them
    c = variant(ref, cand, "probabilities")
    assert c.passed and len(c.near_ties) == 5 and c.real_disagreements == 0
    assert variant(*two_way(flipped=2), "probabilities", min_agreement=0.98).passed  # --min-agreement decides


def test_variant_accuracy_drop_where_labels_exist():
    ref, cand = two_way(flipped=1)
    labels = np.zeros(len(ref), np.int64)  # the fp32 file right everywhere, the variant wrong once
    c = variant(ref, cand, "probabilities", labels=labels, gate={"max_accuracy_drop": 0.005})
    assert not c.passed and "accuracy drops by 0.0100" in c.reasons[0]
    assert c.checks["variant"]["accuracy"] == {"reference": 1.0, "variant": 0.99}
    assert variant(ref, cand, "probabilities", labels=labels, gate={"max_accuracy_drop": 0.011}).passed


def test_variant_with_another_shape_or_nan_fails():
    ref, cand = embeddings()
    assert not variant(ref, cand[:, :10], "emb").passed
    cand = cand.copy()
    cand[0, 0] = np.nan
    assert any("NaN/Inf" in r for r in variant(ref, cand, "emb").reasons)
