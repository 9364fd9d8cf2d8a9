"""Edges of the comparison functions that a mutation run (mutmut over onnxparity/compare/) found
unpinned: each test here fails under one or more of the mutants it names (docs/parity.md lists the
survivors left). NumPy only, no framework: these run in well under a second."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxparity.compare import Tolerance, VariantGate, calibrate, compare, scaled_to, within
from onnxparity.compare.calibration import EPS32, FLOOR_ULPS, K, beyond, smallest_tolerances
from onnxparity.compare.metrics import (cosine_per_sample, log_loss, max_abs_diff, max_rel, snr_db, sqnr_db,
                                        top1_agreement)
from onnxparity.compare.tolerances import scaled_atol


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
