"""Edges of the comparison functions that a mutation run (scripts/mutation.sh: mutmut over
onnxparity/compare/ and the input code) found unpinned: each test here fails under mutants that every
other fast test let live (docs/parity.md lists the survivors left, and why each may stay). NumPy
only, no framework: these run in well under a second."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from onnxparity.compare import (HIST_EDGES, Calibration, Tolerance, VariantGate, accuracy, calibrate, class_outputs,
                                compare, holds_classes, judge_variant, scaled_to, within)
from onnxparity.compare.calibration import EPS32, FLOOR_ULPS, K, beyond, smallest_tolerances
from onnxparity.compare.judges import positions
from onnxparity.compare.metrics import (cosine_per_sample, finite_or_none, log10_histogram, log_loss, max_abs_diff,
                                        max_rel, snr_db, sqnr_db, top1_agreement)
from onnxparity.compare.streaming import ErrorStats, batch_stats, merge, summarize
from onnxparity.compare.streaming import within as stream_within
from onnxparity.compare.tolerances import scaled_atol
from onnxparity.errors import InputError


def run(array, label="ref", name="y"):
    array = np.asarray(array)
    return {"outputs": array, "indices": np.arange(len(array)), "output_name": name, "label": label}


# -- within(): the element-wise verdict alone ----------------------------------------------------
def test_within_passes_inside_fails_outside_and_on_a_lone_nan():
    ref = np.array([[1.0, -2.0, 3.0]])
    tol = Tolerance(atol=0.1, rtol=0.0)
    assert within(ref, ref + 0.09, tol)
    assert not within(ref, ref + np.array([[0.0, 0.0, 0.11]]), tol)
    assert not within(ref, -ref, Tolerance(atol=0.1, rtol=0.0))  # the sign matters: |c - r|, not |c + r|
    nan = ref.copy()
    nan[0, 1] = np.nan
    assert not within(ref, nan, tol)
    assert within(nan, nan, tol)


# -- the variant gate: each threshold at its boundary --------------------------------------------
def _element_wise(median, lowest, snr):
    base = compare("m", run(np.ones((4, 3))), run(np.ones((4, 3)), "c"), Tolerance(1.0, 0.0))
    from dataclasses import replace

    return replace(base, judged_as="element-wise", cosine_median=median, cosine_min=lowest, snr_db=snr, n=4)


def test_gate_thresholds_pass_at_the_limit_and_fail_just_below():
    gate = VariantGate()
    assert gate.reasons(_element_wise(gate.min_cosine_median, gate.min_cosine, gate.min_snr_db)) == []
    assert gate.reasons(_element_wise(gate.min_cosine_median - 1e-9, 0.99, 40.0))
    assert gate.reasons(_element_wise(0.99, gate.min_cosine - 1e-9, 40.0))
    assert gate.reasons(_element_wise(0.99, 0.99, gate.min_snr_db - 1e-9))
    assert VariantGate().min_snr_db == 6.0 and VariantGate().max_accuracy_drop == 0.005


def test_gate_accuracy_drop_at_the_limit_passes_and_beyond_fails():
    ref = np.eye(4, dtype=np.float32)
    c = compare("m", run(ref, name="logits"), run(ref, "c", name="logits"), Tolerance(1e-5, 1e-5))
    gate = VariantGate()
    assert gate.reasons(c, (0.9, 0.9 - 0.004)) == []
    assert gate.reasons(c, (0.9, 0.9 - 0.0051)) and "0.9000 -> 0.8949" in gate.reasons(c, (0.9, 0.8949))[0]


def test_gate_does_not_judge_an_exact_output_by_cosine():
    ints = compare("m", run(np.arange(8).reshape(4, 2)), run(np.arange(8).reshape(4, 2), "c"), Tolerance(0, 0))
    assert ints.judged_as == "exact" and VariantGate(min_cosine_median=2.0).reasons(ints) == []


# -- the calibrated rule ------------------------------------------------------------------------
def test_calibration_boundary_floor_and_an_exact_reference():
    # Powers of two throughout, so "exactly at the allowance" is exact in float64.
    truth = np.array([[0.5, 0.25, 1.0]])
    own = 2.0 ** -20
    ref = truth + np.array([[own, 0.0, 0.0]])
    floor = FLOOR_ULPS * EPS32 * 1.0
    allowance = K * own + floor
    at = truth + np.array([[0.0, allowance, 0.0]])
    cal = calibrate(ref, at, truth)
    assert cal.floor == floor and cal.allowance == allowance and cal.ratio == allowance / own
    assert cal.passed and not beyond(at, truth, cal).any()  # exactly at the allowance passes
    past = truth + np.array([[0.0, 1.01 * allowance, 0.0]])
    assert not calibrate(ref, past, truth).passed and beyond(past, truth, cal).sum() == 1
    exact = calibrate(truth, truth + 1e-9, truth)
    assert exact.reference_error == 0 and exact.ratio is None and "infinitely" in exact.summary()
    assert calibrate(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2))).floor == 0.0


def test_calibration_ignores_places_where_any_side_is_not_finite():
    truth = np.array([[1.0, np.nan, 3.0]])
    ref = np.array([[1.0, 5.0, 3.0]])
    cand = np.array([[1.0, 2.0, np.inf]])
    cal = calibrate(ref, cand, truth)
    assert cal.reference_error == 0.0 and cal.candidate_error == 0.0


def test_smallest_tolerances():
    ref = np.array([2.0, 4.0, -8.0])
    diff = np.array([0.2, 0.2, 0.4])
    atol, rtol = smallest_tolerances(diff, ref)
    assert atol == pytest.approx(0.4) and rtol == pytest.approx(0.1)
    assert smallest_tolerances(np.array([0.1, 0.0]), np.array([0.0, 1.0])) == (pytest.approx(0.1), None)
    assert smallest_tolerances(np.array([0.0, 0.5]), np.array([0.0, 1.0]))[1] == pytest.approx(0.5)
    assert smallest_tolerances(np.array([]), np.array([])) == (0.0, 0.0)
    one = smallest_tolerances(np.array([0.25]), np.array([0.5]))
    assert one == (pytest.approx(0.25), pytest.approx(0.5))
    assert smallest_tolerances(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == (0.0, 0.0)


def test_a_calibrated_class_output_counts_a_flip_beyond_the_allowance_as_real():
    truth = np.array([[0.9, 0.1], [0.6, 0.4]])
    ref = truth.astype(np.float32)
    cand = ref.copy()
    cand[1] = [0.4, 0.6]  # a flip with a reference margin of 0.2, far beyond any float32 allowance
    c = compare("m", run(ref, name="probabilities"), run(cand, "c", name="probabilities"),
                Tolerance(1e-5, 1e-5, 0.0), truth=truth)
    assert c.tolerance_source == "float64-calibrated" and c.rtol == 0.0
    assert c.real_disagreements == 1 and c.near_ties == []


# -- metrics ------------------------------------------------------------------------------------
def test_max_abs_and_max_rel():
    assert max_abs_diff(np.array([1.0, -2.0]), np.array([1.5, -2.0])) == 0.5
    assert max_abs_diff(np.array([1.0]), np.array([-1.0])) == 2.0
    assert max_abs_diff(np.zeros(0), np.zeros(0)) == 0.0
    assert max_abs_diff(np.array([1.0]), np.array([np.inf])) is None
    assert max_abs_diff(np.zeros(2), np.zeros(3)) is None
    assert max_abs_diff(np.zeros(2), np.zeros(2)) == 0.0
    assert max_rel(np.array([1e-7, 0.5]), np.array([1e-6, 1.0])) == pytest.approx(0.5)
    assert max_rel(np.array([1e-6]), np.array([1e-6])) == pytest.approx(1.0)  # at REL_FLOOR: counted
    assert max_rel(np.array([1.0]), np.array([1e-7])) is None


def test_sqnr_snr_and_cosine_edges():
    assert sqnr_db(1.0, 0.0) == math.inf and sqnr_db(0.0, 1.0) == -math.inf
    assert sqnr_db(100.0, 1.0) == pytest.approx(20.0)
    ref = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    cand = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    cos = cosine_per_sample(ref, cand)
    assert cos.tolist() == pytest.approx([1.0, 1.0, 0.0, -1.0])
    three = cosine_per_sample(np.ones((2, 2, 3)), np.ones((2, 2, 3)))
    assert three.shape == (2,)
    assert snr_db(np.array([[10.0]]), np.array([[11.0]])) == pytest.approx(20.0)


def test_top1_agreement_and_log_loss():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    cand = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    assert top1_agreement(ref, cand) == pytest.approx(2 / 3)
    assert log_loss(np.array([[0.5, 0.5], [0.25, 0.75]]), np.array([0, 1])) == pytest.approx(
        -(math.log(0.5) + math.log(0.75)) / 2)
    assert log_loss(np.array([[0.0, 1.0]]), np.array([0])) == pytest.approx(-math.log(1e-12))


def test_scaled_tolerances():
    assert scaled_atol(1e-4, 0.5) == 1e-4 and scaled_atol(1e-4, 30.0) == pytest.approx(3e-3)
    tol = Tolerance(1e-4, 1e-3)
    assert scaled_to(tol, np.array([-50.0, 2.0])).atol == pytest.approx(5e-3)
    assert scaled_to(tol, np.array([np.nan, 2.0])).atol == 1e-4
    assert scaled_to(tol, np.array([1.5, np.inf])).atol == 1e-4
    assert scaled_to(tol, np.array([3.0])).rtol == 1e-3


def test_metrics_take_float32_values_in_float64():
    big = np.full((1, 2), 3e38, np.float32)  # its square overflows in float32
    assert cosine_per_sample(big, big).tolist() == [1.0]
    assert snr_db(np.float32([[1e20]]), np.float32([[1.1e20]])) == pytest.approx(20.0, abs=1e-3)
    # |c - r| = 2**-20 against a limit just below it, which float32 arithmetic would round up to it
    assert not within(np.float32([1.0]), np.float32([1.0 + 2 ** -20]), Tolerance(atol=0.0, rtol=2 ** -20 - 2 ** -50))
    assert finite_or_none(np.inf) is None and finite_or_none(np.float32(2.0)) == 2.0


def test_cosine_is_clipped_to_its_range_and_zero_rows_warn_nothing():
    v = [0.1, 0.1, 0.3]  # float64 rounding puts the raw cosine of v with itself a hair above 1
    assert cosine_per_sample(np.array([v, v]), np.array([v, [-x for x in v]])).tolist() == [1.0, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cosine_per_sample(np.zeros((1, 2)), np.zeros((1, 2))).tolist() == [1.0]
        assert log10_histogram(np.zeros(3))[0] == 3


def test_log10_histogram_bins():
    # exact and below 1e-12 in the first bin, then one bin per decade, at least 1 in the last
    counts = log10_histogram(np.array([0.0, 1e-13, 5e-6, 0.5, 10.0, 1e3]))
    assert counts == [2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2]
    assert len(counts) == len(HIST_EDGES) - 1


def test_top1_agreement_of_identical_rows_and_accuracy_counts():
    ref = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert top1_agreement(ref, ref) == 1.0
    assert accuracy(ref, np.array([0, 0, -1])) == {"accuracy": 0.5, "correct": 1, "n": 2}


# -- calibration: what the report says -----------------------------------------------------------
def test_calibration_summary_and_k():
    cal = Calibration(reference_error=2e-6, candidate_error=3e-6, ratio=1.5, floor=0.0, allowance=8e-6)
    assert cal.summary() == "the candidate is 1.5x as far from float64 as the original (3e-06 vs 2e-06)"
    assert Calibration(0.0, 0.0, None, 0.0, 0.0).summary("a", "b") == "a is 0x as far from float64 as b (0 vs 0)"
    assert Calibration(0.0, 1e-3, None, 0.0, 0.0).summary("a", "b") == \
        "a is infinitely as far from float64 as b (0.001 vs 0)"
    assert calibrate(np.ones(2), np.ones(2), np.ones(2), k=2.0).k == 2.0


def test_calibration_errors_in_float64_and_over_no_finite_place():
    one, tiny = np.float32([1.0]), np.float32([2 ** -30])  # 1 - 2**-30 rounds to 1 in float32
    assert calibrate(one, one, tiny).reference_error == 1.0 - 2 ** -30
    nan = np.array([[np.nan]])
    cal = calibrate(nan, nan, nan)
    assert (cal.reference_error, cal.candidate_error, cal.floor) == (0.0, 0.0, 0.0)


# -- compare(): the fields a comparison reports --------------------------------------------------
def test_a_comparison_reports_its_sides_tolerance_and_worst_input():
    ref = np.zeros(200)  # 1-D: one value per input
    cand = np.arange(200) * 1e-6
    c = compare("m", run(ref), run(cand, "c"), Tolerance(1e-4, 1e-3, 0.5))
    assert (c.model, c.reference, c.candidate, c.device, c.output, c.n) == ("m", "ref", "c", "cpu", "y", 200)
    assert (c.atol, c.rtol, c.min_agreement, c.judged_as) == (1e-4, 1e-3, 0.5, "element-wise")
    assert c.tolerance_source == "fixed: no float64 truth" and c.float64 is None
    assert c.checks == {"name": {"ok": True, "reference": "y", "candidate": "y"},
                        "shape": {"ok": True, "reference": [200], "candidate": [200]},
                        "dtype": {"ok": True, "reference": "float64", "candidate": "float64"}}
    assert c.outside_tolerance == 99 and c.worst_index == 199 and c.max_abs_diff == pytest.approx(199e-6)
    assert c.mean_abs_diff == pytest.approx(99.5e-6) and c.p99_abs_diff == pytest.approx(197.01e-6)
    assert c.max_rel_diff is None and c.smallest_rtol is None  # no reference value to be relative to
    assert sum(c.histogram) == 200 and c.nonfinite["candidate"] == {"nan": 0, "inf": 0}
    assert c.to_dict()["checks"] == c.checks and c.to_dict()["worst_index"] == 199  # the JSON's comparison
    one = compare("m", run(np.zeros((1, 4))), run(np.array([[0.0, 0.0, 0.0, 1.0]]), "c"), Tolerance(0.0, 0.0))
    assert one.worst_index == 0


def test_an_output_with_no_values_per_input_passes_with_zero_figures():
    c = compare("m", run(np.zeros((3, 0), np.float32)), run(np.zeros((3, 0), np.float32), "c"), Tolerance(0.0, 0.0))
    assert c.passed and (c.max_abs_diff, c.mean_abs_diff, c.p99_abs_diff, c.worst_index) == (0.0, 0.0, 0.0, 0)


def test_reasons_name_what_differs():
    ref = np.ones((2, 3))
    assert compare("m", run(ref), run(ref, "c", name="z"), Tolerance(0.0, 0.0)).reasons == \
        ["output name differs: z (reference y)"]
    nan = ref.copy()
    nan[1, 2] = np.nan
    assert compare("m", run(ref), run(nan, "c"), Tolerance(1.0, 0.0)).reasons == \
        ["NaN/Inf: 1 in the candidate, 0 in the reference"]
    ints = compare("m", run(np.arange(4)), run(np.arange(4), "c"), Tolerance(1.0, 1.0))
    assert ints.tolerance_source == "exact" and (ints.atol, ints.rtol) == (0.0, 0.0)


def test_a_candidate_input_the_reference_did_not_run_is_an_input_error():
    ref = {"outputs": np.ones((5, 2)), "indices": np.arange(5), "output_name": "y", "label": "ref"}
    cand = {"outputs": np.ones((6, 2)), "indices": np.arange(6), "output_name": "y", "label": "c"}
    with pytest.raises(InputError, match=r"^ref has no output for 1 of the inputs c ran \(first: input 5\); "):
        compare("m", ref, cand, Tolerance(0.0, 0.0))
    with pytest.raises(InputError, match="no output for 1 of the inputs"):
        positions(np.array([], np.int64), np.array([3]), "ref", "c")


def test_the_calibrated_allowance_is_the_atol_and_the_near_tie_margin():
    truth = np.array([[0.52, 0.48], [0.6, 0.4], [1.0, 0.0]])
    ref = truth.copy()
    ref[2, 0] += 0.01  # the reference's own error: allowance = K * 0.01 + floor
    cand = ref.copy()
    cand[:2] = cand[:2, ::-1]  # two flips: margin 0.04 (within the allowance), margin 0.2 (beyond)
    c = compare("m", run(ref, name="probs"), run(cand, "c", name="probs"), Tolerance(1e-9, 0.5, 0.0), truth=truth)
    allowance = K * 0.01 + FLOOR_ULPS * EPS32 * 1.0
    assert c.atol == pytest.approx(allowance) and c.rtol == 0.0
    assert c.near_ties == [0] and c.real_disagreements == 1  # by the allowance, not the fixed atol or rtol
    assert "c is 20x as far from float64 as ref (0.2 vs 0.01)" in c.reasons[0]


def test_class_scores_over_a_middle_axis_and_other_winners_than_the_first():
    ref = np.zeros((2, 3, 4))
    ref[:, np.arange(3), [1, 3, 2]] = 1.0  # winners vary along the middle axis
    cand = ref.copy()
    cand[1, 2] = [0.0, 0.0, 0.0, 1.0]
    c = compare("m", run(ref, name="logits"), run(cand, "c", name="logits"), Tolerance(0.1, 0.0))
    assert c.judged_as == "class scores" and c.disagreements == [1] and c.top1_agreement == 0.5
    same = compare("m", run(ref[:, 0], name="logits"), run(ref[:, 0], "c", name="logits"), Tolerance(0.0, 0.0))
    assert same.disagreements == [] and same.top1_agreement == 1.0


def test_which_outputs_hold_class_scores():
    assert holds_classes(np.zeros((2, 1, 10), np.float32), "logits")  # the last axis counts, not the second
    assert not holds_classes(np.zeros((2, 5, 1), np.float32), "logits")
    arrays = {"logits": np.zeros((2, 3)), "hidden": np.zeros((2, 3))}
    assert class_outputs(arrays) == ["logits"] and class_outputs(arrays, ["hidden"]) == ["logits", "hidden"]


# -- a variant: its gate, judged on the labelled inputs ------------------------------------------
def test_the_gate_accuracy_drop_exactly_at_the_limit_passes():
    c = compare("m", run(np.eye(2), name="logits"), run(np.eye(2), "c", name="logits"), Tolerance(0.0, 0.0))
    assert VariantGate(max_accuracy_drop=0.25).reasons(c, (1.0, 0.75)) == []
    assert VariantGate().reasons(c, (199 / 200, 198 / 200)) == []  # one input of 200: 0.005, not 0.0050000000000000044
    assert VariantGate().reasons(c, (199 / 200, 197 / 200))


def _variant(ref, cand, labels, **kw):
    return judge_variant("m", run(ref, "fp32"), run(cand, "int8"), labels, Tolerance(1e-5, 1e-5),
                         variant={"precision": "int8", "gate": {}}, classes=True, **kw)


def test_a_variant_is_judged_on_its_labelled_inputs_by_the_kind_it_is_marked():
    # Inputs 0-2 labelled (0 is a label too), 3-5 edge cases. Marked class scores although named "y".
    ref = np.array([[0.52, 0.48], [0.48, 0.52], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    labels = np.array([0, 1, 0, -1, -1, -1])
    cand = ref.copy()
    cand[[0, 1, 3]] = cand[[0, 1, 3], ::-1]  # small-margin flips (cosine 0.997) on 0, 1; a wide one on 3
    c = _variant(ref, cand, labels, device="cuda")
    assert not c.passed and c.judged_as == "class scores"  # by top-1, not by cosine
    assert c.reasons == ["output y: top-1 agreement 33.33% is below 99.00% (2 real disagreements)",
                         "output y: accuracy drops by 0.6667 (1.0000 -> 0.3333), more than 0.0050"]
    assert (c.model, c.device, c.n, c.atol, c.rtol, c.min_agreement, c.outside_tolerance) == \
        ("m", "cuda", 6, None, None, 0.99, 0)
    assert (c.top1_agreement, c.top1_agree_count, c.disagreements, c.near_ties, c.real_disagreements) == \
        (pytest.approx(1 / 3), 1, [0, 1], [], 2)
    labelled = cosine_per_sample(ref[:3], cand[:3])
    assert c.cosine_min == pytest.approx(labelled.min()) and c.cosine_median == pytest.approx(np.median(labelled))
    assert c.snr_db == pytest.approx(snr_db(ref[:3], cand[:3]))
    check = c.checks["variant"]
    assert set(check) == {"ok", "precision", "gate", "judged_by", "top1_agreement_all_inputs",
                          "cosine_min_all_inputs", "accuracy"}
    assert check["ok"] is False and check["precision"] == "int8" and check["gate"] == VariantGate().to_dict()
    assert check["judged_by"].startswith("int8 variant: class scores") and "on the 3 judged inputs" in check["judged_by"]
    assert check["top1_agreement_all_inputs"] == 0.5
    assert check["cosine_min_all_inputs"] == pytest.approx(cosine_per_sample(ref, cand).min())
    assert check["accuracy"] == {"reference": 1.0, "variant": pytest.approx(1 / 3)}
    edge_only = ref.copy()
    edge_only[3] = edge_only[3, ::-1]
    passed = _variant(ref, edge_only, labels)
    assert passed.passed and passed.device == "cpu" and passed.checks["variant"]["ok"] is True


# -- streaming: the same metrics merged batch by batch (locate's layers) -------------------------
def test_batch_statistics_merge_into_the_whole_runs():
    first = batch_stats(np.array([[1.0, -2.0], [4.0, 0.0]]), np.array([[1.0, -2.0], [4.25, 0.5]]), rtol=0.5)
    assert first == ErrorStats(n=4, max_abs=0.5, max_rel=0.0625, max_excess=0.5, peak_ref=4.0, sum_sq_ref=21.0,
                               sum_sq_err=0.3125, nonfinite_mismatch=0, worst_input=1)
    assert type(first.worst_input) is int
    exact = batch_stats(np.array([[-8.0, 0.5]]), np.array([[-8.0, 0.5]]), rtol=0.5, offset=2)
    assert (exact.max_abs, exact.max_rel, exact.max_excess, exact.worst_input) == (0.0, 0.0, -0.25, 2)
    both = ErrorStats(n=6, max_abs=0.5, max_rel=0.0625, max_excess=0.5, peak_ref=8.0, sum_sq_ref=85.25,
                      sum_sq_err=0.3125, nonfinite_mismatch=0, worst_input=1)
    assert merge(first, exact) == both and merge(exact, first) == both
    assert merge(None, first) == first and merge(ErrorStats(), first) == first and merge(first, ErrorStats()) == first
    single = batch_stats(np.ones(1), np.array([3.0]), rtol=0.0, offset=9)  # one value: merged like any other
    assert merge(single, exact).max_abs == 2.0 and merge(exact, single).worst_input == 9
    tied = batch_stats(np.zeros(3), np.array([0.0, 0.5, 0.0]), rtol=0.0, offset=6)  # 1-D: one value per input
    assert tied.worst_input == 7 and tied.max_rel is None and merge(first, tied).worst_input == 1  # the first wins
    assert merge(tied, tied).max_rel is None
    assert batch_stats(np.zeros((1, 4)), np.array([[0.0, 0.0, 0.0, 1.0]]), rtol=0.0, offset=5).worst_input == 5
    assert batch_stats(np.float64(1.0), np.float64(3.0), rtol=0.0, offset=4).worst_input == 4
    assert batch_stats(np.zeros((0, 3)), np.zeros((0, 3)), rtol=0.5) == ErrorStats()
    with pytest.raises(ValueError, match=r"shapes differ: reference \(2, 2\), candidate \(2, 3\)"):
        batch_stats(np.zeros((2, 2)), np.zeros((2, 3)), rtol=0.0)


def test_streamed_verdict_scales_atol_with_the_peak_and_fails_a_lone_nan():
    stats = merge(batch_stats(np.array([[1.0, -2.0], [4.0, 0.0]]), np.array([[1.0, -2.0], [4.25, 0.5]]), rtol=0.5),
                  batch_stats(np.array([[-8.0, 0.5]]), np.array([[-8.0, 0.5]]), rtol=0.5, offset=2))
    assert stream_within(stats, atol=0.5 / 8) and not stream_within(stats, atol=0.06)  # max_excess vs atol * peak
    assert stream_within(ErrorStats(), atol=0.0)
    assert not stream_within(batch_stats(np.ones(1), np.array([3.0]), rtol=0.0), atol=0.0)
    nan = batch_stats(np.ones(2), np.array([1.0, np.nan]), rtol=0.0)
    assert nan.nonfinite_mismatch == 1 and not stream_within(nan, atol=1e9)
    assert merge(nan, nan).nonfinite_mismatch == 2
    assert summarize(stats, atol=0.5 / 8) == {
        "max_abs_diff": 0.5, "max_rel_diff": 0.0625, "sqnr_db": round(10 * math.log10(85.25 / 0.3125), 2),
        "exact": False, "peak_reference": 8.0, "nonfinite_mismatch": 0, "worst_input": 1, "n_elements": 6,
        "within_tolerance": True}
    assert summarize(None, atol=0.0) == {
        "max_abs_diff": 0.0, "max_rel_diff": None, "sqnr_db": None, "exact": True, "peak_reference": 0.0,
        "nonfinite_mismatch": 0, "worst_input": None, "n_elements": 0, "within_tolerance": True}
    assert summarize(nan, atol=1.0)["exact"] is False
