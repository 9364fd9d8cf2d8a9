"""The verdict calibrated against float64: the reference's own float32 error sets the allowance.

End to end on the real MiniLM (a transformer whose float32 noise a fixed 1e-5 cannot take, and two
subtle faults a loose fixed atol would pass), on the reference PyTorch Net (its verdicts kept), on
Keras' float64 rebuild, and on a model that cannot run in float64 (the fixed tolerance, said so);
the rule itself at its boundary on hand-made arrays.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxparity import _process
from onnxparity.compare import calibrate, compare, tolerance_for
from onnxparity.compare.calibration import EPS32, FLOOR_ULPS, K
from tests.helpers import onnxparity


def side(outputs, label, name="hidden") -> dict:
    outputs = np.asarray(outputs)
    return {"outputs": outputs, "indices": np.arange(len(outputs)), "output_name": name, "label": label}


# -- the rule at its boundary -------------------------------------------------------------------
def noisy(scale: float, seed: int = 0):
    """(float64 truth, a float32 reference ``scale`` away from it at most) of shape (20, 3, 8)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 2, (20, 3, 8))
    return truth, (truth + rng.uniform(-scale, scale, truth.shape)).astype(np.float32)


@pytest.mark.parametrize("times, passes", [(K * 0.9, True), (K * 1.5, False)])
def test_a_candidate_passes_within_k_times_the_reference_error_and_fails_beyond(times, passes):
    truth, ref = noisy(1e-4)
    own = float(np.abs(ref - truth).max())
    floor = FLOOR_ULPS * EPS32 * float(np.abs(truth).max())
    cand = (truth + np.where(np.arange(truth.size).reshape(truth.shape) == 7, 1.0, 0.0)
            * (times * own + (floor if passes else 0.0))).astype(np.float64)
    c = compare("m", side(ref, "ref"), side(cand.astype(np.float32), "cand"), tolerance_for("cpu"), truth=truth)
    assert c.tolerance_source == "float64-calibrated"
    assert c.passed is passes, c.reasons
    assert c.float64["reference_error"] == pytest.approx(own, rel=1e-6)
    assert c.float64["ratio"] == pytest.approx(c.float64["candidate_error"] / own)
    if not passes:
        assert c.outside_tolerance >= 1 and "beyond the float64-calibrated allowance" in c.reasons[0]
    # the fixed rule (1e-5) would fail the same honest candidate: it is 1e-4 away
    assert not compare("m", side(ref, "ref"), side(cand.astype(np.float32), "cand"), tolerance_for("cpu")).passed


def test_the_floor_passes_a_candidate_near_an_exact_reference_and_explicit_atol_decides():
    truth = np.linspace(-3, 3, 60).reshape(20, 3)
    ref = truth.astype(np.float32)  # as exact as float32 gets: the floor decides
    ulp = EPS32 * 3
    near = (truth + 2 * ulp).astype(np.float32)
    far = (truth + 1e-3).astype(np.float32)
    assert compare("m", side(ref, "r"), side(near, "c"), tolerance_for("cpu"), truth=truth).passed
    c = compare("m", side(ref, "r"), side(far, "c"), tolerance_for("cpu"), truth=truth)
    assert not c.passed and c.smallest_atol == pytest.approx(1e-3, rel=1e-2)
    loose = compare("m", side(ref, "r"), side(far, "c"), tolerance_for("cpu", atol=1e-2), truth=truth,
                    fixed_why="--atol/--rtol given")
    assert loose.passed and loose.tolerance_source == "fixed: --atol/--rtol given"
    assert loose.float64["candidate_error"] == pytest.approx(1e-3, rel=1e-2)  # still reported
    plain = compare("m", side(ref, "r"), side(far, "c"), tolerance_for("cpu"))
    assert plain.tolerance_source == "fixed: no float64 truth" and plain.float64 is None


def test_calibrate_reports_both_errors_and_the_smallest_tolerances():
    truth = np.array([[1.0, -2.0], [0.5, 4.0]])
    ref = truth + np.array([[1e-6, 0], [0, -2e-6]])
    cand = truth + np.array([[0, 3e-6], [0, 0]])
    cal = calibrate(ref, cand, truth)
    assert cal.reference_error == pytest.approx(2e-6) and cal.candidate_error == pytest.approx(3e-6)
    assert cal.ratio == pytest.approx(1.5) and cal.allowance == pytest.approx(K * 2e-6 + FLOOR_ULPS * EPS32 * 4)
    c = compare("m", side(ref.astype(np.float32), "r"), side(cand.astype(np.float32), "c"), tolerance_for("cpu"),
                truth=truth)
    assert c.smallest_rtol == pytest.approx(c.max_rel_diff, rel=1e-3)


# -- the real MiniLM ------------------------------------------------------------------------------
def check_json(minilm, onnx_path, tmp_path, *extra) -> tuple[int, dict, str]:
    out = tmp_path / f"{onnx_path.stem}.json"
    r = onnxparity("check", minilm["pth"], onnx_path, "--inputs", minilm["sentences"], "--torch-class",
                   minilm["torch_class"], "--providers", "cpu", "--batch1-n", "4", "--json", out, *extra,
                   env=minilm["env"], timeout=900)
    return r.returncode, json.loads(out.read_text()) if out.exists() else {}, r.stdout + r.stderr


def edited(minilm, tmp_path, name, edit):
    import onnx

    model = onnx.load(str(minilm["onnx"]))
    edit(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_minilm_passes_by_default_with_its_ratios(minilm_dynamic, tmp_path):
    """With its dynamic ``sequence`` axis: also at twice the sentences' length, on synthesized tokens."""
    code, result, text = check_json(minilm_dynamic, minilm_dynamic["onnx"], tmp_path)
    assert code == 0, text
    length = minilm_dynamic["length"]
    assert [m["axes"] for m in result["models"]] == [{}, {"sequence": 2 * length}]
    longer = [c for c in result["comparisons"] if c["model"] == f"{result['models'][0]['name']}@sequence={2 * length}"]
    assert {c["candidate"] for c in longer} >= {"onnxruntime:cpu", "openvino:cpu"} and all(c["passed"] for c in longer)
    ref = next(b for b in result["backends"] if b["role"] == "reference")
    assert ref["float64"]["status"] == "ok" and ref["float64"]["seconds"] > 0
    hidden = [c for c in result["comparisons"] if c["output"] == "last_hidden_state"]
    assert hidden and all(c["tolerance_source"] == "float64-calibrated" for c in hidden)
    for c in hidden:
        f = c["float64"]
        assert 0 < f["reference_error"] < 1e-3 and f["ratio"] <= K and c["smallest_atol"] == c["max_abs_diff"]
    assert "as far from float64 as torch:cpu" in text  # the console says it in words


def query_weight(model, layer: int = 3):
    """The initializer of layer ``layer``'s attention query weight: the MatMul feeding the Add of its bias."""
    add = next(n for n in model.graph.node if n.op_type == "Add"
               and any(f"layer.{layer}.attention.self.query.bias" in i for i in n.input))
    matmul = next(n for n in model.graph.node if set(n.output) & set(add.input))
    inits = {t.name: t for t in model.graph.initializer}
    return next(inits[i] for i in matmul.input if i in inits)


def test_minilm_with_one_attention_weight_off_by_one_percent_fails(minilm, tmp_path):
    from onnx import numpy_helper

    def scale_query(model):
        init = query_weight(model)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01), init.name))

    code, result, text = check_json(minilm, edited(minilm, tmp_path, "query.onnx", scale_query), tmp_path)
    assert code == 1, text
    failed = [c for c in result["comparisons"] if not c["passed"]]
    assert any(c["output"] == "last_hidden_state" and c["float64"]["ratio"] > K for c in failed)


def test_minilm_layernorm_epsilon_fault_fails_calibrated_but_passes_a_loose_atol(minilm, tmp_path):
    def epsilon(model):
        for node in model.graph.node:
            if node.op_type == "LayerNormalization":
                for a in node.attribute:
                    if a.name == "epsilon":
                        a.f = 1e-6

    path = edited(minilm, tmp_path, "eps.onnx", epsilon)
    saved = tmp_path / "eps.npz"
    code, result, text = check_json(minilm, path, tmp_path, "--save-outputs", saved)
    assert code == 1, text
    hidden = next(c for c in result["comparisons"] if c["output"] == "last_hidden_state"
                  and c["candidate"] == "onnxruntime:cpu")
    assert not hidden["passed"] and hidden["max_abs_diff"] < 1e-2 and hidden["float64"]["ratio"] > K
    # The same outputs judged again from the saved run: by the saved float64 outputs, then by --atol 1e-2.
    again = onnxparity("compare", saved, saved)
    assert again.returncode == 1 and "float64-calibrated allowance" in again.stdout + again.stderr
    loose = onnxparity("compare", saved, saved, "--atol", "1e-2")
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "fixed: --atol/--rtol given" in loose.stdout


# -- the reference models keep their verdicts -----------------------------------------------------
def test_torch_net_verdicts_kept_with_its_ratio_in_the_json(torch_pair, tmp_path):
    folder, good, broken = torch_pair
    for path, expected in ((good, 0), (broken, 1)):
        out = tmp_path / f"{path.stem}.json"
        r = onnxparity("check", folder, path, "--n", "100", "--providers", "cpu", "--json", out)
        assert r.returncode == expected, r.stdout + r.stderr
        comparisons = json.loads(out.read_text())["comparisons"]
        assert comparisons and all(c["tolerance_source"] == "float64-calibrated" for c in comparisons)
        ratios = [c["float64"]["ratio"] for c in comparisons]
        assert all(x is not None for x in ratios)
        assert (max(ratios) <= K) if expected == 0 else (min(ratios) > 1e3)


# -- Keras' float64 rebuild, and a model that cannot run in float64 ---------------------------------
def keras_float64_outputs(path: str, inputs: dict) -> dict:
    """(in a worker: TensorFlow) the float32 and float64 runs of a Keras file, through the runner."""
    from onnxparity.parity.worker import float64_truth
    from onnxparity.runners import open_runner

    runner = open_runner(path, "keras")
    out32 = runner.infer(inputs)
    got = float64_truth(runner, inputs, 64, True, out32)
    return {"float32": out32, **got}


def keras_lstm_bn(path: str) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 5), name="sequence")
    x = keras.layers.LSTM(16, return_sequences=True)(inp)
    x = keras.layers.BatchNormalization()(x)
    out = keras.layers.Dense(3, name="value")(keras.layers.LSTM(8)(x))
    keras.Model(inp, out).save(path)


def test_keras_float64_rebuild_of_the_cnn_and_an_lstm_with_batchnorm(keras_checkpoint, tmp_path):
    lstm = tmp_path / "lstm_bn.keras"
    _process.call("tests.test_calibration:keras_lstm_bn", str(lstm), name="keras lstm")
    rng = np.random.default_rng(0)
    cases = [(keras_checkpoint, {"image": rng.uniform(0, 1, (6, 28, 28, 1)).astype(np.float32)}),
             (lstm, {"sequence": rng.normal(size=(6, 12, 5)).astype(np.float32)})]
    for path, feeds in cases:
        got = _process.call("tests.test_calibration:keras_float64_outputs", str(path), feeds, name="keras float64")
        assert "truth" in got, got.get("truth_reason")
        for name, a32 in got["float32"].items():
            a64 = got["truth"][name]
            assert a64.dtype == np.float64 and a32.dtype == np.float32
            assert 0 < np.abs(a64 - a32).max() < 1e-4 * max(1.0, np.abs(a64).max())


def test_a_model_that_cannot_run_in_float64_falls_back_to_the_fixed_tolerance(tmp_path):
    pth, onnx_path = tmp_path / "casts.pth", tmp_path / "casts.onnx"
    _process.call("tests.torch_models:save_torch_state", "casts", pth, name="save casts")
    _process.call("onnxparity.convert:convert", str(pth), str(onnx_path), input_shape=(6,),
                  torch_class="tests.torch_models:CastsToFloat32", name="convert casts")
    out = tmp_path / "casts.json"
    r = onnxparity("check", pth, onnx_path, "--torch-class", "tests.torch_models:CastsToFloat32", "--n", "32",
                   "--providers", "cpu", "--json", out)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    ref = next(b for b in result["backends"] if b["role"] == "reference")
    assert ref["float64"]["status"] == "unavailable" and "float64 run failed" in ref["float64"]["reason"]
    assert all(c["tolerance_source"].startswith("fixed: no float64 run: the float64 run failed")
               and c["atol"] == 1e-5 for c in result["comparisons"])
    assert "tolerance fixed: no float64 run" in r.stdout
