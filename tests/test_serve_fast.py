"""What makes serving fast keeps its answers: orjson's parse with json's rules, cheap batches on the loop."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from onnxparity.serve.protocol import RequestError, TensorInfo, dumps, loads, parse_infer_request

INPUTS = {"x": TensorInfo("x", "FP32", (-1, 3))}
OUTPUTS = {"y": TensorInfo("y", "FP32", (-1,))}


def test_json_parse_keeps_the_rules_of_python_json():
    body = b'{"id": "a", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1.5, 2, -3e-2]}]}'
    parsed = parse_infer_request(body, None, INPUTS, OUTPUTS)
    assert parsed.id == "a" and parsed.inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(parsed.inputs["x"], np.array([[1.5, 2, -0.03]], np.float32))
    # orjson refuses NaN literals; json reads them, so the request is refused for its NaN, by name.
    nan = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [NaN, 0, 0]}]}'
    with pytest.raises(RequestError, match="NaN or infinity"):
        parse_infer_request(nan, None, INPUTS, OUTPUTS)
    # A number past float64 (orjson refuses it) reads as infinity, and is refused as such.
    huge = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1e400, 0, 0]}]}'
    with pytest.raises(RequestError, match="NaN or infinity"):
        parse_infer_request(huge, None, INPUTS, OUTPUTS)
    # orjson reads an integer past 64 bits as a float; it is still refused for an integer input.
    big = b'{"inputs": [{"name": "i", "datatype": "INT64", "shape": [1], "data": [123456789012345678901234567890]}]}'
    with pytest.raises(RequestError, match="int64 data must be whole numbers in"):
        parse_infer_request(big, None, {"i": TensorInfo("i", "INT64", (-1,))}, OUTPUTS)
    for bad in (b'{"inputs": [', b"\xff\xfe", b""):
        with pytest.raises(RequestError, match="not valid JSON"):
            loads(bad)
    assert loads(memoryview(b'[1, 2]')[0:6]) == [1, 2]
    assert loads(dumps({"a": [1.25, "b", None]})) == {"a": [1.25, "b", None]}


def test_batcher_runs_cheap_batches_on_the_event_loop_and_costly_ones_in_a_thread():
    from concurrent.futures import ThreadPoolExecutor

    from onnxparity.serve.batching import Batcher

    class Recorder:
        name = "rec"

        def __init__(self):
            self.threads, self.rows = [], []

        def run(self, feeds):
            self.threads.append(threading.current_thread().name)
            self.rows.append(len(feeds["x"]))
            return {"y": feeds["x"] * 2}

    async def scenario(inline_below_s: float):
        model = Recorder()
        batcher = Batcher(model, ThreadPoolExecutor(1, thread_name_prefix="worker"), max_batch_size=8,
                          max_queue_delay_s=0.002, inline_below_s=inline_below_s)
        batcher.start()
        try:
            for i in range(3):  # one at a time: three runs
                out = await batcher.infer({"x": np.full((1, 2), i, np.float32)})
                assert out["y"].tolist() == [[2.0 * i, 2.0 * i]]
            # Then many at once, of 1 to 3 rows each: every answer must be its own request's rows.
            requests = [np.arange(k, k + 2 * n, dtype=np.float32).reshape(n, 2)
                        for k, n in zip(range(0, 1000, 10), [1, 2, 3] * 20)]
            answers = await asyncio.gather(*(batcher.infer({"x": r}) for r in requests))
            for r, a in zip(requests, answers):
                np.testing.assert_array_equal(a["y"], r * 2)
        finally:
            await batcher.stop()
        return model, threading.current_thread().name

    model, loop_thread = asyncio.run(scenario(inline_below_s=10.0))
    # The first run has no timing yet, so it goes to a worker; the next ones are known to be cheap.
    assert model.threads[0].startswith("worker") and set(model.threads[1:]) == {loop_thread}
    assert max(model.rows) > 3  # the concurrent requests were stacked, so a swap of rows would show
    model, _ = asyncio.run(scenario(inline_below_s=0.0))
    assert all(t.startswith("worker") for t in model.threads) and max(model.rows) > 3
