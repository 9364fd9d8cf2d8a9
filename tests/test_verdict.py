"""The verdict, pinned down at its edges: tolerance boundary, agreement threshold, near ties, NaN/Inf.

Every case goes through onnxparity.compare's public functions (``compare``, ``tolerance_for``,
``Tolerance``) on hand-made outputs whose distance to the limit is known, so a loosened or switched-off check
changes a verdict here.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxparity.errors import InputError
from onnxparity.compare import DEFAULT_TOLERANCES, Tolerance, compare, tolerance_for

N, CLASSES = 100, 10


def reference_outputs(seed: int = 0) -> np.ndarray:
    """Softmax rows with a clear winner (margin >= 0.1), float32, as a model's probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (N, CLASSES))
    logits[np.arange(N), rng.integers(0, CLASSES, N)] += 4.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p.astype(np.float32)


def run(outputs, indices=None, name="probabilities", label="x") -> dict:
    outputs = np.asarray(outputs)
    return {"outputs": outputs, "output_name": name, "label": label,
            "indices": np.arange(len(outputs)) if indices is None else np.asarray(indices)}


def verdict(ref: np.ndarray, cand: np.ndarray, tol: Tolerance, **kw):
    return compare("m", run(ref, label="ref"), run(cand, label="cand", **kw), tol)


def limit(ref: np.ndarray, tol: Tolerance) -> np.ndarray:
    return tol.atol + tol.rtol * np.abs(ref.astype(np.float64))


# -- tolerance boundary ----------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("sign", [1, -1])
def test_every_value_at_0_9_of_the_limit_passes_and_at_1_1_fails(device, sign):
    tol = tolerance_for(device)
    ref = reference_outputs()
    inside = verdict(ref, (ref + sign * 0.9 * limit(ref, tol)).astype(np.float32), tol)
    assert inside.passed and inside.outside_tolerance == 0 and inside.reasons == []
    outside = verdict(ref, (ref + sign * 1.1 * limit(ref, tol)).astype(np.float32), tol)
    assert not outside.passed and outside.outside_tolerance == ref.size
    assert "beyond atol" in outside.reasons[0]


@pytest.mark.parametrize("row, col", [(0, 0), (57, 3), (N - 1, CLASSES - 1)])
def test_one_value_just_past_the_limit_fails_and_is_located(row, col):
    tol = tolerance_for("cpu")
    ref = reference_outputs()
    cand = ref.astype(np.float64)
    cand[row, col] += 1.1 * limit(ref, tol)[row, col]
    result = verdict(ref, cand.astype(np.float32), tol)
    assert not result.passed and result.outside_tolerance == 1 and result.worst_index == row
    cand[row, col] = ref[row, col] + 0.9 * limit(ref, tol)[row, col]
    assert verdict(ref, cand.astype(np.float32), tol).passed


def test_relative_limit_scales_with_the_reference_not_the_candidate():
    tol = Tolerance(atol=0.0, rtol=0.1)
    ref = np.full((4, CLASSES), 1.0, np.float32)
    ref[:, 0] = 2.0
    assert verdict(ref, ref * np.float32(1.09), tol).passed
    # 1.105 is within 10% of the candidate (0.1105) but not of the reference (0.1).
    assert not verdict(ref, ref * np.float32(1.105), tol).passed
    assert verdict(ref, ref * np.float32(0.91), tol).passed
    assert not verdict(ref, ref * np.float32(0.89), tol).passed


def test_absolute_limit_alone():
    tol = Tolerance(atol=1e-3, rtol=0.0)
    ref = reference_outputs()
    assert verdict(ref, ref + np.float32(0.9e-3), tol).passed
    assert not verdict(ref, ref + np.float32(1.1e-3), tol).passed
    assert not verdict(ref, ref - np.float32(1.1e-3), tol).passed


def test_exactly_at_the_limit_passes_as_in_allclose():
    tol = Tolerance(atol=0.25, rtol=0.0)  # binary fractions: the difference is exactly the limit
    ref = np.full((2, CLASSES), 0.5, np.float32)
    ref[:, 0] = 0.75
    assert verdict(ref, ref + np.float32(0.25), tol).passed
    assert not verdict(ref, ref + np.float32(0.25 + 2 ** -20), tol).passed


def test_each_override_reaches_the_verdict():
    ref = reference_outputs()
    cand = ref * np.float32(1.0004)  # 4e-4 relative: beyond the CPU default rtol 1e-5
    assert not verdict(ref, cand, tolerance_for("cpu")).passed
    assert verdict(ref, cand, tolerance_for("cpu", rtol=5e-4)).passed
    assert tolerance_for("cpu", rtol=5e-4) == Tolerance(atol=1e-5, rtol=5e-4)
    assert verdict(ref, ref + np.float32(1e-3), tolerance_for("cpu", atol=2e-3)).passed
    assert tolerance_for("cuda", atol=1.0, rtol=2.0, min_agreement=0.5) == Tolerance(1.0, 2.0, 0.5)


def test_the_defaults_are_the_documented_ones():
    assert tolerance_for("cpu") == DEFAULT_TOLERANCES["cpu"] == Tolerance(atol=1e-5, rtol=1e-5, min_agreement=1.0)
    assert tolerance_for("cuda") == tolerance_for("rocm") == Tolerance(atol=5e-4, rtol=1e-3, min_agreement=1.0)
    assert tolerance_for("cpu", atol=0.5).atol == 0.5 and tolerance_for("cpu", atol=0.5).rtol == 1e-5
    assert tolerance_for("cpu", min_agreement=0.9).min_agreement == 0.9


# -- top-1 agreement ---------------------------------------------------------------------------------------
L = 1e-3
AGREE = Tolerance(atol=L, rtol=0.0, min_agreement=0.97)


def two_way(n_flipped: int, margin: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose reference is 0.5 +- margin/2 on classes 0 and 1; the first ``n_flipped`` rows of the
    candidate move each by ``shift`` toward the other class (element-wise within L when shift <= L)."""
    ref = np.zeros((N, CLASSES), np.float64)
    ref[:, 0], ref[:, 1] = 0.5 + margin / 2, 0.5 - margin / 2
    cand = ref.copy()
    cand[:n_flipped, 0] -= shift
    cand[:n_flipped, 1] += shift
    return ref.astype(np.float32), cand.astype(np.float32)


def test_agreement_exactly_at_the_minimum_passes_and_one_input_below_fails():
    # A reference margin of 1.5 L is no near tie, yet a 0.95 L shift of each value flips the top-1.
    ref, cand = two_way(3, 1.5 * L, 0.95 * L)
    at = compare("m", run(ref), run(cand), AGREE)
    assert at.passed, at.reasons
    assert at.real_disagreements == 3 and at.top1_agree_count == 97 and at.disagreements == [0, 1, 2]
    ref, cand = two_way(4, 1.5 * L, 0.95 * L)
    below = compare("m", run(ref), run(cand), AGREE)
    assert not below.passed and below.outside_tolerance == 0
    assert below.real_disagreements == 4 and "top-1 agreement" in below.reasons[0]


def test_every_disagreement_fails_by_default():
    ref, cand = two_way(1, 1.5 * L, 0.95 * L)
    result = compare("m", run(ref), run(cand), Tolerance(atol=L, rtol=0.0))
    assert not result.passed and result.outside_tolerance == 0 and result.top1_agreement == 0.99


def test_agreement_zero_accepts_any_disagreement_but_not_values_beyond_tolerance():
    ref, cand = two_way(N, 1.5 * L, 0.95 * L)
    assert compare("m", run(ref), run(cand), Tolerance(atol=L, rtol=0.0, min_agreement=0.0)).passed
    ref, cand = two_way(N, 1.5 * L, 1.1 * L)
    assert not compare("m", run(ref), run(cand), Tolerance(atol=L, rtol=0.0, min_agreement=0.0)).passed


# -- near ties ----------------------------------------------------------------------------------------------
def test_a_flip_within_the_margin_is_a_near_tie_and_does_not_count():
    ref, cand = two_way(2, 0.9 * L, 0.5 * L)  # reference margin 0.9 L: any in-tolerance wobble may flip it
    result = compare("m", run(ref), run(cand), Tolerance(atol=L, rtol=0.0))
    assert result.passed, result.reasons
    assert result.near_ties == [0, 1] and result.disagreements == [0, 1] and result.real_disagreements == 0
    assert result.top1_agreement == 0.98  # reported as disagreements all the same


def test_a_flip_just_past_the_margin_is_real():
    ref, cand = two_way(2, 1.1 * L, 0.9 * L)
    result = compare("m", run(ref), run(cand), Tolerance(atol=L, rtol=0.0))
    assert not result.passed and result.near_ties == [] and result.real_disagreements == 2


def test_the_near_tie_margin_grows_with_the_reference_value():
    tol = Tolerance(atol=0.0, rtol=2e-3)  # at the winner's 0.5: a margin of 1e-3
    ref, cand = two_way(1, 0.9e-3, 0.5e-3)
    assert compare("m", run(ref), run(cand), tol).near_ties == [0]
    ref, cand = two_way(1, 1.1e-3, 0.6e-3)
    result = compare("m", run(ref), run(cand), tol)
    assert result.disagreements == [0] and result.near_ties == [] and not result.passed


def test_a_margin_exactly_at_the_limit_is_a_near_tie():
    tol = Tolerance(atol=0.25, rtol=0.0)
    ref = np.zeros((1, CLASSES), np.float32)
    ref[0, :2] = 0.625, 0.375  # margin 0.25, exactly the limit
    cand = ref.copy()
    cand[0, :2] = 0.4375, 0.5625
    result = compare("m", run(ref), run(cand), tol)
    assert result.near_ties == [0] and result.passed


# -- NaN and Inf -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ref_value, cand_value, passes", [
    (np.nan, np.nan, True),  # the same NaN in the same place is no difference
    (np.inf, np.inf, True),
    (-np.inf, -np.inf, True),
    (np.inf, -np.inf, False),
    (np.nan, np.inf, False),
    (0.25, np.nan, False),  # a NaN the reference does not have
    (0.25, np.inf, False),
    (np.nan, 0.25, False),  # a NaN the candidate lost
    (np.inf, 0.25, False),
])
def test_nonfinite_values_must_sit_in_the_same_places_with_the_same_values(ref_value, cand_value, passes):
    tol = tolerance_for("cpu")
    ref = reference_outputs()
    cand = ref.copy()
    ref[7, 2], cand[7, 2] = ref_value, cand_value
    result = verdict(ref, cand, tol)
    assert result.passed is passes, result.reasons
    if not passes:
        assert any("NaN/Inf" in r for r in result.reasons)
        assert result.outside_tolerance == 0  # a misplaced NaN/Inf is reported as such, not as a difference
    assert result.nonfinite["reference"]["nan"] == int(np.isnan(ref_value))
    assert result.nonfinite["candidate"]["inf"] == int(np.isinf(cand_value))


def test_nonfinite_in_other_places_fails_even_when_the_counts_match():
    ref = reference_outputs()
    cand = ref.copy()
    ref[3, 1], cand[4, 1] = np.nan, np.nan
    assert not verdict(ref, cand, tolerance_for("cpu")).passed
    ref = reference_outputs()
    cand = ref.copy()
    ref[3, 1], cand[3, 2] = np.inf, np.inf
    assert not verdict(ref, cand, tolerance_for("cpu")).passed


def test_a_nonfinite_value_does_not_hide_a_difference_elsewhere():
    tol = tolerance_for("cpu")
    ref = reference_outputs()
    cand = ref + (1.1 * limit(ref, tol)).astype(np.float32)
    ref[0, 0] = cand[0, 0] = np.nan
    result = verdict(ref, cand, tol)
    assert not result.passed and result.outside_tolerance == ref.size - 1


# -- what else decides -----------------------------------------------------------------------------------
def test_name_shape_dtype_and_emptiness_each_fail():
    tol = tolerance_for("cpu")
    ref = reference_outputs()
    assert not compare("m", run(ref), run(ref, name="logits"), tol).passed
    assert not compare("m", run(ref), run(ref[:, :9]), tol).passed
    assert not compare("m", run(ref), run(ref.astype(np.float64)), tol).passed
    empty = compare("m", run(ref), run(ref[:0]), tol)
    assert empty.passed is False and "no outputs" in empty.reasons
    assert compare("m", run(ref), run(ref[:, :9]), tol).passed is False
    assert compare("m", run(ref), run(ref.copy()), tol).passed


def test_a_subset_is_compared_with_the_same_inputs_of_the_reference():
    tol = tolerance_for("cpu")
    ref = reference_outputs()
    picks = [5, 50, 99]
    same = compare("m", run(ref), run(ref[picks], indices=picks), tol)
    assert same.passed and same.n == 3
    shuffled = compare("m", run(ref), run(ref[[50, 5, 99]], indices=picks), tol)
    assert not shuffled.passed and shuffled.worst_index in picks
    with pytest.raises(InputError, match="no output for 2 of the inputs"):
        compare("m", run(ref[:50]), run(ref[picks], indices=picks), tol)
