"""Parity: the originals and ONNX Runtime compared on real digits, each backend in its own worker.

One `onnxparity run` (reusing the session's briefly trained checkpoints) gives the full CPU matrix
for both reference models; a perturbed ONNX file, a crashing backend, saved-run comparison, input
errors and the GPU paths are checked against it. Real frameworks, real digits, no mocks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from onnxparity.inputs import load_digits_inputs as load_inputs
from onnxparity.parity import Target, run
from onnxparity.errors import InputError
from onnxparity.compare import Tolerance, compare
from onnxparity.parity.result import ParityResult
from tests.helpers import onnxparity

N = 100  # real digits per run (plus the 9 synthetic edge cases)
ONNX_CPU = {"onnxruntime:cpu", "onnxruntime:cpu:tuned", "onnxruntime:cpu:b1", "openvino:cpu"}  # the ONNX file's
CPU_BACKENDS = {"keras_cnn": {"keras-tf:cpu", "keras-torch:cpu", *ONNX_CPU}, "torch_net": {"torch:cpu", *ONNX_CPU}}
GPU_BACKENDS = {"keras-tf:gpu", "keras-torch:cuda", "torch:cuda", "onnxruntime:cuda", "onnxruntime:tensorrt"}


def has_gpu() -> bool:
    from onnxparity.machine import nvidia_gpus

    return bool(nvidia_gpus()[0])


@pytest.fixture(scope="module")
def run_dir(keras_checkpoint, torch_checkpoint, tmp_path_factory) -> Path:
    """`onnxparity run` on copies of the session's checkpoints: reuse, convert both, full matrix."""
    out = tmp_path_factory.mktemp("run") / "latest"
    shutil.copytree(keras_checkpoint, out / "keras")
    shutil.copytree(torch_checkpoint, out / "torch")
    result = onnxparity("run", "--out", out, "--n", N, "--save-outputs", out / "outputs.npz")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reusing the checkpoint" in result.stdout
    (out / "stdout.txt").write_text(result.stdout)
    return out


def test_run_full_cpu_matrix_for_both_models(run_dir):
    for name in ("keras.onnx", "torch.onnx", "parity.json", "parity.html", "outputs.npz"):
        assert (run_dir / name).is_file(), name
    result = ParityResult.load(run_dir / "parity.json")
    assert result.passed
    ran = {(b.model, b.label) for b in result.backends if b.status == "ok"}
    for model, labels in CPU_BACKENDS.items():
        assert {(model, label) for label in labels} <= ran
    compared = {(c.model, c.candidate) for c in result.comparisons}
    assert compared == {(b.model, b.label) for b in result.backends if b.role == "candidate" and b.status == "ok"}
    assert {("keras_cnn", "keras-torch:cpu"), ("torch_net", "onnxruntime:cpu:b1")} <= compared
    for c in result.comparisons:
        assert c.passed and c.max_abs_diff < 1e-4 and c.top1_agreement == 1.0, c
        assert c.n == N + 9
    for b in result.backends:
        if b.status == "ok":
            assert b.n_labelled == N and b.accuracy > 0.5, b  # real digits, briefly trained models
        if b.runner == "onnxruntime" and b.status == "ok":
            assert b.placement == {"CPUExecutionProvider": b.placement["CPUExecutionProvider"]}
    table = (run_dir / "stdout.txt").read_text()
    assert "onnxruntime:cpu:b1 (vs torch:cpu)" in table and "keras-torch:cpu (vs keras-tf:cpu)" in table
    page = (run_dir / "parity.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "keras-torch:cpu" in page


def test_one_worker_process_per_framework(run_dir):
    """ONNX Runtime's sessions of both models share one interpreter, OpenVINO and each original's engine
    keep one of their own; a tuned session no rewrite applied to is the plain one, and says so."""
    result = ParityResult.load(run_dir / "parity.json")
    ran = [b for b in result.backends if b.status == "ok"]
    workers = {b.worker for b in ran}
    by_worker = {w: {(b.model, b.label) for b in ran if b.worker == w} for w in workers}
    assert sorted(w.split(" ")[0] for w in workers) == ["keras-tf", "keras-torch", "onnxruntime", "openvino", "torch"]
    ort = next(w for w in workers if w.startswith("onnxruntime"))
    assert by_worker[ort] == {(m, label) for m in CPU_BACKENDS for label in ONNX_CPU if label.startswith("onnxruntime")}
    for b in ran:
        assert b.seconds["cpu"] > 0 and b.seconds["began"] >= 0, b
        if b.label == "onnxruntime:cpu:tuned":
            same = not b.details["settings"]["graph_rewrites"]  # no rewrite pays or applies on this CPU's kernels
            assert b.details.get("same_run_as") == ("onnxruntime:cpu" if same else None), b


def test_openvino_runs_both_reference_models_as_a_cpu_candidate(run_dir):
    """OpenVINO reads each ONNX file itself, beside ONNX Runtime, and is judged with the CPU tolerance."""
    result = ParityResult.load(run_dir / "parity.json")
    runs = {b.model: b for b in result.backends if b.label == "openvino:cpu"}
    assert set(runs) == {"keras_cnn", "torch_net"}
    for model, b in runs.items():
        assert b.status == "ok" and b.role == "candidate" and b.runner == "openvino" and b.device == "cpu", b
        assert b.details["precision"] == "f32" and b.details["threads"] >= 1
        (c,) = [c for c in result.comparisons if c.model == model and c.candidate == "openvino:cpu"]
        assert c.passed and c.tolerance_source == "float64-calibrated" and c.atol == c.float64["allowance"]
        assert c.n == N + 9
        reference = next(r for r in result.backends if r.model == model and r.role == "reference")
        assert c.reference == reference.label and b.accuracy == reference.accuracy


def test_json_schema(run_dir):
    d = json.loads((run_dir / "parity.json").read_text())
    assert d["schema"] == "onnxparity.parity/2" and isinstance(d["passed"], bool)
    assert d["comparisons"]
    for c in d["comparisons"]:
        assert isinstance(c["reference"], str) and isinstance(c["candidate"], str)
        assert isinstance(c["max_abs_diff"], float) and 0.0 <= c["top1_agreement"] <= 1.0
        assert isinstance(c["passed"], bool) and isinstance(c["near_ties"], list)
        for key in ("max_rel_diff", "mean_abs_diff", "p99_abs_diff", "disagreements", "checks", "nonfinite",
                    "histogram", "atol", "rtol", "min_agreement", "model", "device", "output", "judged_as"):
            assert key in c, key
        assert sum(c["histogram"]) == c["n"] * 10 and len(c["histogram"]) == len(d["histogram_edges_log10"]) - 1
    env = d["environment"]
    for key in ("cpu", "gpus", "driver", "packages", "ort_providers", "python"):
        assert key in env, key
    assert {"onnxruntime", "torch", "keras"} <= set(env["packages"])
    assert d["inputs"]["n_digits"] == N and d["inputs"]["kinds"]["noise"] == 4
    for b in d["backends"]:
        assert b["status"] in ("ok", "unavailable", "failed")
        if b["status"] == "unavailable":
            assert b["reason"]


def test_gpu_backends_listed_with_a_reason_or_run(run_dir):
    result = ParityResult.load(run_dir / "parity.json")
    gpu = [b for b in result.backends if b.label in GPU_BACKENDS]
    assert {b.label for b in gpu} == GPU_BACKENDS
    if not has_gpu():
        assert all(b.status == "unavailable" and b.reason for b in gpu)


def test_gpu_runners(run_dir):
    """On a machine with CUDA: PyTorch, Keras on torch and ORT CUDA run and agree; here: skipped, with why."""
    from onnxparity.machine import nvidia_gpus

    gpus, why = nvidia_gpus()
    if not gpus:
        pytest.skip(f"no GPU: {why}")
    result = run([Target(str(run_dir / "torch"), str(run_dir / "torch.onnx")),
                  Target(str(run_dir / "keras"), str(run_dir / "keras.onnx"))], load_inputs(None, 200))[0]
    ran = {b.label for b in result.backends if b.status == "ok"}
    assert {"torch:cuda", "keras-torch:cuda"} <= ran, [(b.label, b.reason) for b in result.backends]
    assert all(c.passed for c in result.comparisons), result.failed()


def _perturbed(src: Path, dst: Path) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # the largest weight
    w = numpy_helper.to_array(init).copy()
    w.flat[: w.size // 2] += np.float32(0.5)  # enough to change some predictions, not only the digits of the scores
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(dst))
    return dst


def test_broken_onnx_fails_with_exit_1_at_the_right_comparison(run_dir, tmp_path):
    broken = _perturbed(run_dir / "torch.onnx", tmp_path / "broken.onnx")
    report, page = tmp_path / "broken.json", tmp_path / "broken.html"
    result = onnxparity("check", run_dir / "torch", broken, "--n", 50, "--providers", "cpu", "--json", report,
                        "--html", page)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("onnxparity: error: torch_net: onnxruntime:")
    assert "vs torch:cpu" in result.stderr and "values beyond the float64-calibrated allowance" in result.stderr
    d = json.loads(report.read_text())
    assert d["passed"] is False
    failed = {c["candidate"] for c in d["comparisons"] if not c["passed"]}
    assert failed == ONNX_CPU
    assert all(c["max_abs_diff"] > 1e-3 and c["output"] == "log_probabilities" for c in d["comparisons"])
    assert d["disagreements"], "the perturbation must change predictions"
    first = d["disagreements"][0]  # the page shows those digits, with every backend's prediction
    assert set(first["predictions"]) == {"torch:cpu", *ONNX_CPU} and first["output"] == "log_probabilities"
    html = page.read_text()
    assert "data:image/png;base64," in html and f"#{first['index']} " in html


def test_a_backend_killed_for_memory_is_reported_while_the_others_pass_and_the_check_is_incomplete(run_dir):
    """The first of the sessions that share ONNX Runtime's worker is killed as the OOM killer does
    (SIGKILL): that backend fails with its peak memory, a fresh process runs the others, and the check
    is incomplete (exit 3) rather than failed."""
    from onnxparity.cli.check import finish
    from onnxparity.errors import CheckIncomplete

    inputs = load_inputs(None, 50)
    result, _ = run([Target(str(run_dir / "torch"), str(run_dir / "torch.onnx"))], inputs, providers="cpu",
                    crash={"label": "onnxruntime:cpu", "signal": 9})
    runs = {b.label: b for b in result.backends}
    killed = runs["onnxruntime:cpu"]
    assert killed.status == "failed" and "killed (signal 9: out of memory?), peak memory " in killed.reason
    assert "onnxruntime:cpu" in killed.reason and killed.worker is None
    for label in ("torch:cpu", "onnxruntime:cpu:tuned", "onnxruntime:cpu:b1", "openvino:cpu"):
        assert runs[label].status == "ok", runs[label]
    assert runs["onnxruntime:cpu:tuned"].worker == runs["onnxruntime:cpu:b1"].worker
    by = {c.candidate: c for c in result.comparisons}
    assert by["onnxruntime:cpu:tuned"].passed and by["onnxruntime:cpu:b1"].passed
    assert not by["onnxruntime:cpu"].passed and "failed" in by["onnxruntime:cpu"].reasons[0]
    assert not result.passed and result.incomplete
    with pytest.raises(CheckIncomplete, match=r"^incomplete: \S+ onnxruntime:cpu: killed \(signal 9: out of memory\?\), "
                                              r"peak memory \d+ MiB; every comparison that ran agreed$") as e:
        finish(result)
    assert e.value.exit_code == 3
    by["onnxruntime:cpu:tuned"].passed = False  # a comparison that ran and failed makes it a parity failure
    assert not result.incomplete


def test_compare_saved_runs(run_dir, tmp_path):
    out = tmp_path / "cmp.json"
    result = onnxparity("compare", run_dir / "outputs.npz", run_dir / "outputs.npz", "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    d = json.loads(out.read_text())
    assert d["passed"] and {c["reference"] for c in d["comparisons"]} == {"A:keras-tf:cpu", "A:torch:cpu"}
    assert any(c["candidate"] == "B:onnxruntime:cpu" and c["max_abs_diff"] < 1e-4 for c in d["comparisons"])


@pytest.mark.parametrize("case", ["missing-onnx", "corrupt-onnx", "corrupt-original", "bad-data", "bad-n"])
def test_input_errors_exit_2(case, run_dir, tmp_path):
    args = [run_dir / "torch", run_dir / "torch.onnx"]
    if case == "missing-onnx":
        args[1], needle = tmp_path / "nope.onnx", "no such ONNX file"
    elif case == "corrupt-onnx":
        (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 50)
        args[1], needle = tmp_path / "bad.onnx", "not a readable ONNX file"
    elif case == "corrupt-original":
        shutil.copytree(run_dir / "torch", tmp_path / "torch")
        (tmp_path / "torch" / "model.pth").write_bytes(b"not a state dict")
        args[0], needle = tmp_path / "torch", "not a loadable PyTorch file"
    elif case == "bad-data":
        args += ["--data", tmp_path / "missing"]
        needle = "no such file or folder"
    else:
        args += ["--n", 0]
        needle = "--n: must be at least 1"
    result = onnxparity("check", *args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onnxparity: error:") and needle in lines[0], result.stderr


def test_another_models_file_is_compared_as_a_pair_and_fails(run_dir):
    """Any two models may be compared (a migrated model against its source's file); the PyTorch Net
    against the Keras CNN's file is such a pair, named so, and they disagree."""
    result = onnxparity("check", run_dir / "torch", run_dir / "keras.onnx", "--providers", "cpu", "--n", 50,
                        "--batch1-n", 5)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("onnxparity: error: torch_net vs keras_cnn: onnxruntime:cpu vs torch:cpu")


# -- the comparison function on its own ---------------------------------------------------------
def _ran(outputs, label):
    outputs = np.asarray(outputs, np.float32)
    return {"outputs": outputs, "indices": np.arange(len(outputs)), "output_name": "logits", "label": label}


def test_near_tie_is_reported_apart_from_a_real_disagreement():
    ref = np.array([[0.5, 0.5 - 1e-7, 0.0], [0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
    cand = np.array([[0.5 - 1e-7, 0.5, 0.0], [0.1, 0.9, 0.0], [0.2, 0.7, 0.1]])
    c = compare("m", _ran(ref, "r"), _ran(cand, "c"), Tolerance(atol=1e-5, rtol=0, min_agreement=1.0))
    assert c.disagreements == [0, 1] and c.near_ties == [0] and c.real_disagreements == 1
    assert c.top1_agreement == pytest.approx(1 / 3) and not c.passed
    only_tie = compare("m", _ran(ref[:1], "r"), _ran(cand[:1], "c"), Tolerance(atol=1e-5, rtol=0))
    assert only_tie.passed and only_tie.near_ties == [0] and only_tie.top1_agreement == 0.0


def test_nan_shape_and_name_are_checked():
    ref = np.zeros((2, 3))
    bad = ref.copy()
    bad[1, 2] = np.nan
    c = compare("m", _ran(ref, "r"), _ran(bad, "c"), Tolerance(1e-5, 1e-5))
    assert not c.passed and "NaN/Inf" in c.reasons[0] and c.nonfinite["candidate"]["nan"] == 1
    c = compare("m", _ran(ref, "r"), dict(_ran(np.zeros((2, 4)), "c"), output_name="x"), Tolerance(1e-5, 1e-5))
    assert not c.passed and not c.checks["shape"]["ok"] and not c.checks["name"]["ok"]


def test_rows_are_paired_by_input_index():
    ref = np.eye(4)[[0, 1, 2, 3, 0]]  # five inputs, each its own one-hot row
    picked = dict(_ran(ref[[4, 1]], "c"), indices=np.array([4, 1]))  # a candidate that ran inputs 4 and 1
    c = compare("m", _ran(ref, "r"), picked, Tolerance(atol=1e-6, rtol=0))
    assert c.passed and c.n == 2 and c.max_abs_diff == 0.0
    partial = dict(_ran(ref[[0, 1]], "r"), indices=np.array([0, 1]))  # a reference that ran only 0 and 1
    with pytest.raises(InputError, match="r has no output for 1 of the inputs c ran"):
        compare("m", partial, picked, Tolerance(atol=1e-6, rtol=0))


def test_gpu_runners_say_why_they_cannot_run_here(torch_checkpoint, run_dir):
    """The worker-side checks: each GPU runner raises BackendUnavailable with the reason, never runs on CPU."""
    import onnxruntime as ort
    import torch

    from onnxparity.errors import BackendUnavailable
    from onnxparity.runners import open_runner

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the GPU backends run instead (test_gpu_runners)")
    with pytest.raises(BackendUnavailable, match="CPU-only build|no CUDA device"):
        open_runner(torch_checkpoint, "torch", device="cuda")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailable, match="has no CUDAExecutionProvider"):
            open_runner(run_dir / "torch.onnx", providers=["cuda"])


def test_help_lists_the_registry_backends():
    """`check --help` and `bench --help` read the one registry: OpenVINO beside ONNX Runtime."""
    check = onnxparity("check", "--help")
    assert check.returncode == 0 and "openvino:cpu" in check.stdout and "onnxruntime:cpu:tuned" in check.stdout
    bench = onnxparity("bench", "--help")
    assert bench.returncode == 0 and "openvino" in bench.stdout and "keras.tf_function" in bench.stdout
