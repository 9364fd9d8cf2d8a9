"""The session chosen by measurement: real ONNX Runtime sessions on files that do really different work.

Two files compute the same outputs bit for bit: ``lean`` one MatMul, ``heavy`` the same MatMul plus a
64x wider one whose result is multiplied by zero and added. Which one is faster is not in doubt on
any CPU, so the tests check the logic (the faster is chosen whatever the order; a more elaborate
session that does not pay is not used; a faster one with other outputs is left out), not timings.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from onnxparity.models import ModelRef
from onnxparity.runners.fastest import Candidate, choose, cpu_candidates
from onnxparity.runners.onnxruntime import OnnxRuntimeRunner

WIDTH = 64


def _file(path, heavy: bool = False, shift: float = 0.0) -> str:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32) + shift, "w")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y" if not heavy else "lean"])]
    if heavy:  # y = x @ w + 0 * max(x @ wide): the same numbers, 64x the multiply-adds
        inits += [numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH * 64)).astype(np.float32), "wide"),
                  numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero")]
        nodes += [helper.make_node("MatMul", ["x", "wide"], ["big"]),
                  helper.make_node("ReduceMax", ["big"], ["peak"], keepdims=1, axes=[1]),
                  helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
                  helper.make_node("Add", ["lean", "nothing"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fastest")
    return {"lean": _file(d / "lean.onnx"), "heavy": _file(d / "heavy.onnx", heavy=True),
            "wrong": _file(d / "wrong.onnx", shift=0.5)}


def _candidate(name: str, path: str) -> Candidate:
    return Candidate(name, path, lambda: OnnxRuntimeRunner(ModelRef("onnx", path, None), intra_op_threads=1))


def _feeds():
    rng = np.random.default_rng(1)
    return {b: {"x": rng.standard_normal((b, WIDTH)).astype(np.float32)} for b in (1, 32)}


def test_the_faster_session_is_chosen_whichever_comes_first(files):
    slow_first = choose([_candidate("heavy", files["heavy"]), _candidate("lean", files["lean"])], _feeds(), 0.5)
    assert slow_first.chosen == "lean" and slow_first.candidates["lean"]["score"] > 1.03
    assert slow_first.candidates["lean"]["parity"] == {"passed": True, "max_abs_diff": 0.0}
    assert "lean" in slow_first.why and isinstance(slow_first.runner, OnnxRuntimeRunner)


def test_a_more_elaborate_session_that_does_not_pay_is_not_used(files):
    """The baseline first, then one that costs more (as a rewrite that does not pay here would): the baseline stays."""
    choice = choose([_candidate("plain", files["lean"]), _candidate("rewrites", files["heavy"])], _feeds(), 0.5)
    assert choice.chosen == "plain" and choice.candidates["rewrites"]["score"] < 1.0
    assert choice.rounds >= 3 and set(choice.candidates["rewrites"]["images_per_second"]) == {1, 32}


def test_a_faster_session_with_other_outputs_is_left_out(files):
    choice = choose([_candidate("heavy", files["heavy"]), _candidate("wrong", files["wrong"])], _feeds(), 0.3)
    assert choice.chosen == "heavy"
    wrong = choice.candidates["wrong"]
    assert not wrong["parity"]["passed"] and "outside the CPU tolerance" in wrong["reason"]
    assert "images_per_second" not in wrong and "left out: wrong" in choice.why


def test_the_cpu_candidates_say_why_one_cannot_run(files):
    """No exact rewrite applies to a plain MatMul: that candidate is reported as not run, the others time."""
    choice = choose(cpu_candidates(files["lean"], intra_op_threads=1), _feeds(), 0.5)
    assert {"plain", "options", "rewrites"} <= set(choice.candidates)
    assert choice.candidates["rewrites"]["reason"].startswith("not run: no exact CPU graph rewrite applies")
    assert choice.chosen in choice.candidates and "images_per_second" in choice.candidates[choice.chosen]
    assert choice.to_dict()["chosen"] == choice.chosen


def test_openvino_serves_in_place_of_a_session(files):
    """A server holds the chosen runner as it would an ONNX Runtime session: ``run`` from several threads."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    from concurrent.futures import ThreadPoolExecutor

    from onnxparity.runners.openvino import OpenVinoRunner

    runner = OpenVinoRunner(ModelRef("onnx", files["lean"], None), threads=1)
    feeds = _feeds()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: runner.run(["y"], feeds[b])[0], [1, 32, 1, 32]))
    for b, y in zip([1, 32, 1, 32], got):
        np.testing.assert_allclose(y, runner.infer(feeds[b])["y"], rtol=0, atol=0)
