"""`onnxparity bench` end to end on a tiny configuration, and the long-lived worker it drives.

No test asserts a speed: timings on a shared CI machine say nothing. They check that the command
runs every backend it claims, writes a JSON that parses and holds one row per (model, backend,
device, batch size), and explains every backend it could not run.
"""

from __future__ import annotations

import json
import shutil

import pytest

from onnxparity import _process
from onnxparity.cli import main
from onnxparity.errors import InputError, WorkerError
from onnxparity.machine import nchwc_block

ROW_KEYS = {"model", "backend", "device", "batch_size", "images_per_second", "latency_ms_median", "latency_ms_p90",
            "first_call_ms", "load_s", "rounds", "calls_per_round"}


@pytest.mark.slow
def test_bench_end_to_end(keras_checkpoint, torch_checkpoint, tmp_path, capsys):
    # copies, so the bench's on-the-fly conversion runs (nothing is written beside the fixtures)
    models = [shutil.copytree(c, tmp_path / c.name) for c in (keras_checkpoint, torch_checkpoint)]
    out = tmp_path / "bench.json"
    rc = main(["bench", *map(str, models), "--batch-sizes", "1,3", "--devices", "cpu,cuda", "--rounds", "2",
               "--round-time", "0.02", "--warmup", "0", "--json", str(out),
               "--backends", "keras.call,keras.tf_function,torch.eager,onnxruntime"])
    printed = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out.read_text())

    rows = report["results"]
    assert rows and all(ROW_KEYS <= set(r) for r in rows)
    assert all(r["images_per_second"] > 0 and r["latency_ms_p90"] >= r["latency_ms_median"] > 0 for r in rows)
    measured = {(r["model"], r["backend"], r["device"]) for r in rows}
    # every backend the report claims ran has a row at every batch size
    claimed = {tuple(key.split("/")) for key in report["backends"]}
    assert claimed == measured
    for model, backend, device in claimed:
        assert {r["batch_size"] for r in rows if (r["model"], r["backend"], r["device"]) == (model, backend, device)} == {1, 3}
    assert {(m, b) for m, b, d in measured if d == "cpu"} == {
        ("keras_cnn", "keras.call"), ("keras_cnn", "keras.tf_function"), ("keras_cnn", "onnxruntime"),
        ("torch_net", "torch.eager"), ("torch_net", "onnxruntime")}
    # tf.function traces at its first call (the smallest batch size here): that time is reported apart
    traced = next(r for r in rows if r["backend"] == "keras.tf_function" and r["batch_size"] == 1)
    assert traced["compile_s"] > 0 and traced["first_call_ms"] > traced["latency_ms_median"]
    # ratios ORT/native, side by side, for each native at each batch size
    ratios = {(q["model"], q["versus"], q["batch_size"]) for q in report["ratios"] if q["device"] == "cpu"}
    assert ratios == {(m, b, n) for m, b in (("keras_cnn", "keras.call"), ("keras_cnn", "keras.tf_function"),
                                              ("torch_net", "torch.eager")) for n in (1, 3)}
    # what could not run is said, with the reason; on a machine without a GPU that is all of cuda
    skipped = {(s["model"], s["backend"], s["device"]) for s in report["skipped"]}
    assert all(s["reason"] for s in report["skipped"])
    if not any(d == "cuda" for _, _, d in measured):
        assert {(m, b) for m, b, d in skipped if d == "cuda"} == {
            ("keras_cnn", "keras.call"), ("keras_cnn", "keras.tf_function"), ("keras_cnn", "onnxruntime"),
            ("torch_net", "torch.eager"), ("torch_net", "onnxruntime")}
    # the environment fingerprint and the ONNX files' origin
    env = report["environment"]
    assert env["cpu"] and env["physical_cores"] >= 1 and "onnxruntime" in env["packages"]
    assert all("converted" in m["onnx_source"] and m["mflop_per_image"] > 0 for m in report["models"])
    assert "keras_cnn on cpu" in printed and "ORT/keras.call" in printed
    # the ORT session's settings, and the exact CPU graph rewrites it ran the PyTorch Net with
    settings = report["backends"]["torch_net/onnxruntime/cpu"]["details"]["settings"]
    assert settings["intra_op_num_threads"] >= 1
    rewrites = settings["graph_rewrites"]  # with this CPU's block: 10 channels are padded for AVX2's 8 only
    assert any("10 -> 16 channels" in line for line in rewrites) == (nchwc_block() == 8)
    assert any("Relu moved before MaxPool" in line for line in rewrites) == (nchwc_block() > 0)
    if rewrites:
        assert "torch_net" in printed and "exact graph rewrites" in printed


@pytest.mark.slow
def test_bench_times_openvino_beside_onnx_runtime_at_every_batch_size(torch_onnx, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(torch_onnx), "--batch-sizes", "1,3", "--rounds", "2", "--round-time", "0.02",
               "--warmup", "0", "--json", str(out), "--backends", "onnxruntime,openvino"])
    printed = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out.read_text())
    assert {(r["backend"], r["batch_size"]) for r in report["results"]} == {
        (b, n) for b in ("onnxruntime", "openvino") for n in (1, 3)}
    assert {(q["versus"], q["batch_size"]) for q in report["ratios"]} == {("openvino", 1), ("openvino", 3)}
    opened = report["backends"]["torch_net/openvino/cpu"]
    assert opened["worker"] == "openvino" and opened["path"] == str(torch_onnx)
    assert opened["details"]["precision"] == "f32" and not report["skipped"]
    assert "ORT/openvino" in printed


def test_bench_rejects_bad_arguments(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["bench", str(tmp_path), "--backends", "nosuch"]) == 2
    assert "unknown bench backend" in capsys.readouterr().err
    assert main(["bench", str(tmp_path), "--devices", "tpu"]) == 2


# -- the long-lived worker the bench drives ------------------------------------------------------
def test_service_answers_calls_in_turn_and_keeps_state():
    with _process.Service("collections:Counter", name="counter", timeout=60) as service:
        service.call("update", "abca")
        assert service.call("most_common", 1) == [("a", 2)]
        with pytest.raises(WorkerError, match="no attribute"):
            service.call("no_such_method")
        assert service.call("total") == 4  # a raising method leaves the child running


def test_service_reports_a_crash_and_stays_closed():
    with _process.Service("collections:Counter", name="crasher", timeout=60) as service:
        with pytest.raises(WorkerError, match="crashed"):
            service.call("update", _Crash())  # unpickling it in the child kills the process
        with pytest.raises(WorkerError, match="no longer running"):
            service.call("total")


def test_service_times_out_and_stops_the_child():
    with _process.Service("collections:Counter", name="sleeper", timeout=60) as service:
        with pytest.raises(WorkerError, match="timed out"):
            service.call("__reduce_ex__", _Sleep(), timeout=0.5)
        assert not service._proc.is_alive()


def test_service_start_failure_is_an_input_error():
    with pytest.raises(InputError, match="boom"):
        _process.Service("tests.test_bench:_raise_input_error", name="bad", timeout=60)


def test_services_started_without_waiting_answer_in_turn_as_they_finish():
    """The parity matrix's way: children start while the caller goes on; each one's first answer is its
    object built (or the error building it raised), received before its first call's."""
    slow = _process.Service("collections:Counter", name="slow", timeout=60, wait=False)
    bad = _process.Service("tests.test_bench:_raise_input_error", name="bad", timeout=60, wait=False)
    slow.send("update", _Sleep(seconds=1.0))  # Counter.update(None), once the argument has slept
    try:
        assert _process.wait([slow, bad], timeout=30) == [bad]
        with pytest.raises(InputError, match="boom"):
            bad.receive()
        assert _process.wait([slow], timeout=30) == [slow] and slow.receive() is None
        assert slow.call("total") == 0
    finally:
        slow.close()
        bad.close()
    assert slow._proc.exitcode == 0  # asked to stop, the child ends at once, without tearing its imports down


def _raise_input_error():
    raise InputError("boom")


class _Crash:
    def __reduce__(self):
        import os

        return (os._exit, (3,))


class _Sleep:
    def __init__(self, seconds: float = 30):
        self.seconds = seconds

    def __reduce__(self):
        import time

        return (time.sleep, (self.seconds,))


def test_a_backend_that_failed_later_keeps_its_finished_ratios():
    """A native that fails at batch 1024 still gets ORT/native ratios (and rows) at the sizes it finished."""
    from onnxparity.bench import BenchConfig, BenchModel
    from onnxparity.bench.results import Cell, ratios, rows

    config = BenchConfig(batch_sizes=(1, 64), rounds=2)
    model = BenchModel("m", "torch", "native", "m.onnx", {})
    prepared = {b: {"first_call_s": 0.01, "warm_call_s": 0.001} for b in (1, 64)}

    def cell(backend, seconds, error=None):
        rounds = {1: [[seconds], [seconds]], 64: [[seconds]] if error else [[seconds], [seconds]]}
        return Cell(model, backend, "cpu", "w", backend, {"load_s": 0.1}, prepared, {1: 1, 64: 1}, rounds, error)

    ort, native = cell("onnxruntime", 0.001), cell("torch.eager", 0.002, error="batch 64, round 2: crashed")
    assert [r["batch_size"] for r in rows(native, config)] == [1]
    found = ratios([ort, native], config)
    assert [(r["versus"], r["batch_size"], r["ratio"]) for r in found] == [("torch.eager", 1, 2.0)]


def test_fastest_is_named_from_every_row_measured():
    """The toolkit's session slower than plain ORT in the same rounds: the table says plain ORT is fastest."""
    from onnxparity.bench.report import throughput_table

    def row(backend, ips):
        return {"model": "m", "device": "cpu", "batch_size": 1, "backend": backend, "images_per_second": ips}

    def ratio(versus, value):
        return {"model": "m", "device": "cpu", "batch_size": 1, "backend": "onnxruntime", "versus": versus,
                "ratio": value}

    report = {"results": [row("torch.eager", 100.0), row("onnxruntime", 730.0), row("onnxruntime.default", 1000.0)],
              "ratios": [ratio("torch.eager", 7.3), ratio("onnxruntime.default", 0.73)]}
    last = throughput_table(report)[-1].split()
    assert last[0] == "1" and last[-1] == "onnxruntime.default"
    report["ratios"][1]["ratio"] = 1.02
    assert throughput_table(report)[-1].split()[-1] == "onnxruntime"
