"""The zoo: many models checked on Ray, with JUnit, Markdown and HTML reports.

Real Ray throughout, started once for the module with Ray's own test utility
(``ray.cluster_utils.Cluster``): a head node with 2 CPUs for the local zoo, then two more nodes, one
with a custom resource and a (logical) GPU, one removed while it works. Real models: both reference
models, a user PyTorch model of another shape, a plain ONNX file with saved outputs, a perturbed
file, one that crashes and one that times out.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from onnxparity import _process
from onnxparity.cli import main
from tests.helpers import assert_one_line_error, descendants, foreign_onnx, foreign_scores, onnxparity

ray = pytest.importorskip("ray", reason="the zoo runs on Ray")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CRASH = {"label": "onnxruntime:cpu:b1", "signal": 11}  # parity's fault injection: that backend's worker segfaults


@pytest.fixture(scope="module")
def cluster():
    """One Ray for the module: a head node with 2 CPUs (the local zoo); tests add nodes to it."""
    from ray.cluster_utils import Cluster

    on_sigterm = signal.getsignal(signal.SIGTERM)
    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray.init(address=started.address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield started
    finally:
        ours = descendants(os.getpid())  # Ray's processes, their workers and the warm frameworks
        ray.shutdown()
        started.shutdown()
        signal.signal(signal.SIGTERM, on_sigterm)  # ray.init took it over
        deadline = time.monotonic() + 30
        while (left := [p for p in ours if Path(f"/proc/{p}").exists()]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="module")
def gpu_node(cluster):
    """A node with a custom resource and a GPU that Ray counts (this machine has none to use)."""
    node = cluster.add_node(num_cpus=1, num_gpus=1, resources={"gpu_node": 1})
    cluster.wait_for_nodes()
    return node


@pytest.fixture(scope="module")
def models(keras_checkpoint, keras_onnx, torch_pair, tmp_path_factory) -> Path:
    """A folder of models for the manifests: a user PyTorch model with two inputs and two outputs,
    an ONNX file with saved outputs (3e-6 away from what it computes: within tolerance, but more
    than 10x a baseline's error), and links to the reference models."""
    folder = tmp_path_factory.mktemp("zoo-models")
    _process.call("tests.torch_models:save_and_convert", "two_io", folder / "two_io.pth", folder / "two_io.onnx",
                  torch_class="tests.torch_models:TwoInTwoOut", torch_kwargs={"width": 6},
                  input_shape={"image": (3, 8, 8), "meta": (5,)}, name="convert two_io")
    w, b = foreign_onnx(folder / "foreign.onnx")
    x = np.random.default_rng(5).standard_normal((24, 6)).astype(np.float32)
    np.savez(folder / "foreign.npz", features=x, scores=foreign_scores(x, w, b) + np.float32(3e-6))
    np.savez(folder / "foreign_bad.npz", features=x, scores=np.roll(foreign_scores(x, w, b), 1, axis=1))
    for name, path in (("keras", keras_checkpoint), ("keras.onnx", keras_onnx), ("torch", torch_pair[0]),
                       ("torch.onnx", torch_pair[1]), ("broken.onnx", torch_pair[2])):
        (folder / name).symlink_to(path)
    return folder


MANIFEST = """
[defaults]
providers = "cpu"
n = 48
batch1_n = 8

[[model]]
name = "keras_cnn"
original = "keras"
onnx = "keras.onnx"
tags = ["reference", "vision"]

[[model]]
name = "torch_net"
original = "torch"
onnx = "torch.onnx"
tags = ["reference", "vision"]

[[model]]
name = "torch_perturbed"
original = "torch"
onnx = "broken.onnx"

[[model]]
name = "two_io"
original = "two_io.pth"
onnx = "two_io.onnx"
torch_class = "tests.torch_models:TwoInTwoOut"
torch_kwargs = {width = 6}

[[model]]
name = "foreign"
onnx = "foreign.onnx"
reference = "foreign.npz"
tags = ["saved outputs"]

[[model]]
name = "torch_crash"
original = "torch"
onnx = "torch.onnx"

[[model]]
name = "keras_timeout"
original = "keras"
onnx = "keras.onnx"
timeout = 0.01
"""


def entries(manifest: Path, crash: str | None = None):
    from onnxparity.cli.zoo import check_options
    from onnxparity.zoo import load_manifest

    return [dataclasses.replace(e, options={**e.options, "crash": CRASH}) if e.name == crash else e
            for e in load_manifest(manifest, check_options)]


def worker_names(fragment: str = "") -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if fragment in a["name"]]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


# -- the manifest ---------------------------------------------------------------------------------
def test_toml_and_yaml_manifests_say_the_same(tmp_path):
    (tmp_path / "zoo.toml").write_text('[defaults]\nproviders = "cpu"\natol = 1e-4\n\n'
                                       '[[model]]\nname = "a"\nonnx = "a.onnx"\nreference = "ref"\n'
                                       'input_shape = ["ids=12", "mask=12"]\ncpu_only = true\ntags = ["nlp"]\n\n'
                                       '[[model]]\nname = "b"\noriginal = "/abs/b"\nonnx = "b.onnx"\natol = 0.5\n'
                                       'resources = {gpu_node = 1}\n')
    (tmp_path / "zoo.yaml").write_text("defaults:\n  providers: cpu\n  atol: 1.0e-4\nmodel:\n"
                                       "  - name: a\n    onnx: a.onnx\n    reference: ref\n"
                                       "    input_shape: [ids=12, mask=12]\n    cpu_only: true\n    tags: [nlp]\n"
                                       "  - name: b\n    original: /abs/b\n    onnx: b.onnx\n    atol: 0.5\n"
                                       "    resources: {gpu_node: 1}\n")
    toml, yaml = entries(tmp_path / "zoo.toml"), entries(tmp_path / "zoo.yaml")
    assert [dataclasses.replace(e, where="") for e in toml] == [dataclasses.replace(e, where="") for e in yaml]
    a, b = toml
    assert a.onnx == str(tmp_path / "a.onnx") and a.reference == str(tmp_path / "ref") and b.original == "/abs/b"
    assert a.options["input_shapes"] == {"ids": (12,), "mask": (12,)} and a.options["gpu"] is False
    assert a.options["atol"] == 1e-4 and b.options["atol"] == 0.5 and a.options["providers"] == "cpu"
    assert a.options["timeout"] == 600 and a.options["batch1_limit"] == 1000  # check's own defaults
    assert a.tags == ("nlp",) and b.resources == {"gpu_node": 1.0}
    assert (a.where, b.where) == (f"{tmp_path / 'zoo.toml'}:5", f"{tmp_path / 'zoo.toml'}:13")
    assert (yaml[0].where, yaml[1].where) == (f"{tmp_path / 'zoo.yaml'}:5", f"{tmp_path / 'zoo.yaml'}:11")


def test_a_regression_is_a_lost_pass_or_an_error_grown_past_the_factor():
    from onnxparity.compare import Comparison
    from onnxparity.parity import ParityResult
    from onnxparity.zoo.results import ModelRun, regressions

    def run(status, *errors):
        comps = [Comparison(model="m", reference="torch:cpu", candidate=f"ort{i}", device="cpu", passed=True,
                            reasons=[], n=4, atol=1e-5, rtol=1e-5, min_agreement=1.0, max_abs_diff=e, output="y")
                 for i, e in enumerate(errors)]
        result = ParityResult(passed=status == "passed", comparisons=comps, backends=[], models=[], inputs={},
                              environment={}, tolerances={})
        return ModelRun("m", status, result=result)

    assert regressions(run("passed", 1e-6), None) == []  # new: nothing to compare with
    assert regressions(run("failed", 1e-6), run("passed", 1e-6)) == ["passed in the baseline, failed now"]
    assert regressions(run("passed", 1e-6), run("failed", 1e-6)) == []  # fixed is not a regression
    grown = regressions(run("passed", 2e-6, 5e-6), run("passed", 1e-7, 1e-6))
    assert grown == ["ort0 [y]: max abs error 1.0e-07 -> 2.0e-06, more than 10x"]
    assert regressions(run("passed", 9e-7), run("passed", 0.0)) == []  # under 10x the noise floor (1% of atol)
    assert regressions(run("passed", 1.1e-6), run("passed", 0.0))  # past it
    assert regressions(run("passed", 2e-6), run("passed", 1e-7), factor=100) == []


def test_bad_manifests_exit_2_naming_the_entry(cluster, models, tmp_path, capsys):
    head = f'[defaults]\nproviders = "cpu"\n\n[[model]]\nname = "good"\nonnx = "{models}/foreign.onnx"\n' \
           f'reference = "{models}/foreign.npz"\n\n[[model]]\nname = "bad"\n'
    cases = [
        (head + f'onnx = "{models}/foreign.onnx"\natoll = 1e-4\n', ":9: model 'bad': unknown key 'atoll'"),
        (head + f'onnx = "{models}/foreign.onnx"\natol = -1\n', ":9: model 'bad': atol: must be 0 or more, not -1"),
        (head + f'onnx = "{models}/foreign.onnx"\nproviders = ["cpu", "cuda"]\n', "'bad': providers: takes one value"),
        (head + f'onnx = "{models}/missing.onnx"\nreference = "{models}/foreign.npz"\n', ":9: model 'bad': "),
        (head + f'onnx = "{models}/foreign.onnx"\n', ":9: model 'bad': ") ,  # no reference, no original
        (head.replace('name = "bad"', 'name = "good"') + f'onnx = "{models}/foreign.onnx"\n',
         ":9: model 'good': the name is taken by the entry at"),
        (head + 'onnx = "x.onnx"\natol = \n', "not valid TOML"),
        (head + f'onnx = "{models}/foreign.onnx"\nreference = "{models}/foreign.npz"\njobs = 2\n', "not a per-model key"),
        (head + f'onnx = "{models}/foreign.onnx"\nreference = "{models}/foreign.npz"\nresources = {{gpu_node = 1}}\n',
         ":9: model 'bad': no node of the Ray cluster has 1 CPU, 1 gpu_node"),
    ]
    for text, needle in cases:
        manifest = tmp_path / "zoo.toml"
        manifest.write_text(text)
        assert main(["zoo", str(manifest), "--out", str(tmp_path / "out")]) == 2, text
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"onnxparity: error: {manifest}") and needle in err and "\n" not in err, (needle, err)
    yaml_manifest = tmp_path / "zoo.yaml"
    yaml_manifest.write_text(f"model:\n  - name: y\n    onnx: {models}/foreign.onnx\n"
                             f"    reference: {models}/foreign.npz\n    require_devices: tpu\n")
    assert main(["zoo", str(yaml_manifest), "--out", str(tmp_path / "out")]) == 2
    assert f"{yaml_manifest}:2: model 'y': --require-devices: unknown device 'tpu'" in capsys.readouterr().err
    assert main(["zoo", str(yaml_manifest), "--baseline", str(tmp_path / "none.json")]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written before the work
    manifest.write_text(head.replace("[[model]]\nname = \"bad\"\n", ""))  # in a fresh process: not this one's Ray
    assert_one_line_error(onnxparity("zoo", manifest, "--ray", "127.0.0.1:1", "--out", tmp_path / "out"),
                          "--ray 127.0.0.1:1: nothing answers there")


# -- a local zoo: 7 models on a 2-CPU Ray ---------------------------------------------------------
def test_local_zoo_verdicts_reports_and_regressions(cluster, models, tmp_path):
    from junitparser import JUnitXml

    from onnxparity.compare import Comparison
    from onnxparity.parity import ParityResult
    from onnxparity.zoo import ModelRun, ZooResult, check_zoo

    (models / "zoo.toml").write_text(MANIFEST)
    baseline = tmp_path / "last-night.json"  # the perturbed file passed; the saved outputs were nearer
    earlier = Comparison(model="foreign", reference="saved", candidate="onnxruntime:cpu", device="cpu", passed=True,
                         reasons=[], n=24, atol=1e-5, rtol=1e-5, min_agreement=1.0, max_abs_diff=1e-9, output="scores")
    ZooResult(True, [ModelRun("torch_perturbed", "passed"), ModelRun("foreign", "passed", result=ParityResult(
        True, [earlier], [], [], {}, {}, {}))]).save(baseline)
    out = tmp_path / "out"
    result = check_zoo(entries(models / "zoo.toml", crash="torch_crash"), out, baseline=baseline)

    status = {m.name: m.status for m in result.models}
    assert status == {"keras_cnn": "passed", "torch_net": "passed", "torch_perturbed": "failed", "two_io": "passed",
                      "foreign": "passed", "torch_crash": "failed", "keras_timeout": "failed"}, result.models
    runs = {m.name: m for m in result.models}
    assert "worker process crashed (killed by signal 11)" in runs["torch_crash"].reason
    assert "timed out after" in runs["keras_timeout"].reason
    assert runs["torch_perturbed"].regressions == ["passed in the baseline, failed now"]
    assert len(runs["foreign"].regressions) == 1 and "onnxruntime:cpu [scores]" in runs["foreign"].regressions[0]
    assert not any(m.regressions for m in result.models if m.name not in ("torch_perturbed", "foreign"))
    assert {c.output for c in runs["two_io"].result.comparisons} == {"logits", "output_1"}

    # one warm process per framework, reused by every model; the crash and the timeout retired theirs
    workers = {w["kind"]: w for w in result.workers}
    assert set(workers) == {"keras:cpu", "keras-torch:cpu", "torch:cpu", "onnxruntime:cpu", "openvino:cpu"}
    assert workers["torch:cpu"]["models"] == 4 and workers["torch:cpu"]["processes"] == 1
    assert workers["onnxruntime:cpu"]["models"] == 7 and workers["onnxruntime:cpu"]["ended_early"] >= 1
    assert workers["keras:cpu"]["ended_early"] >= 1
    assert workers["torch:cpu"]["peak_rss_mb"] > 100 and result.driver["peak_rss_mb"] > 50
    ran = [b for m in result.models if m.result for b in m.result.backends if b.status == "ok" and b.runner != "saved"]
    assert {b.details["ray_node"] for b in ran} == {result.cluster["nodes"][0]["id"]}

    saved = ZooResult.load(out / "results.json")  # every model's parity result, whole
    assert [m.status for m in saved.models] == [m.status for m in result.models]
    same = [(c.candidate, c.output, c.passed, c.max_abs_diff) for c in runs["torch_net"].result.comparisons]
    assert [(c.candidate, c.output, c.passed, c.max_abs_diff) for c in saved.models[1].result.comparisons] == same

    suites = {s.name: s for s in JUnitXml.fromfile(str(out / "junit.xml"))}
    assert list(suites) == list(status)
    assert all(case.is_passed or case.is_skipped for case in suites["keras_cnn"])
    keras_cases = {case.name for case in suites["keras_cnn"]}
    assert {"keras-torch:cpu [probabilities]", "onnxruntime:cpu:b1 [probabilities]", "regression"} <= keras_cases
    assert {case.name for case in suites["keras_cnn"] if case.is_skipped} == {"keras-tf:gpu", "keras-torch:cuda"}
    crashed = {case.name: case for case in suites["torch_crash"]}["onnxruntime:cpu:b1"]
    assert crashed.is_failure and "crashed" in crashed.result[0].message
    assert all(case.is_failure for case in suites["torch_perturbed"] if case.name.startswith("onnxruntime"))
    assert {case.name: case.is_failure for case in suites["foreign"]}["regression"]
    assert suites["torch_perturbed"].failures >= 5 and suites["two_io"].failures == 0

    summary = (out / "summary.md").read_text()
    assert summary.startswith("## onnxparity zoo: 4 of 7 models passed (3 failed)"), summary
    assert "| torch_perturbed | FAIL (regression) |" in summary and "| foreign | PASS (regression) |" in summary
    assert "### Regressions against" in summary and "- **torch_crash** (failed): " in summary
    index = (out / "index.html").read_text()
    for m in result.models:
        assert (out / m.report).is_file() and f"href='{m.report}'" in index
    assert "<h2>Warm workers</h2>" in index


# -- a cluster of three nodes, one lost mid-run -----------------------------------------------------
CLUSTER_MANIFEST = """
[defaults]
providers = "cpu"
n = 48
batch1_n = 8

[[model]]
name = "torch_net"
original = "torch"
onnx = "torch.onnx"

[[model]]
name = "torch_perturbed"
original = "torch"
onnx = "broken.onnx"

[[model]]
name = "foreign"
onnx = "foreign.onnx"
reference = "foreign.npz"

[[model]]
name = "foreign_bad"
onnx = "foreign.onnx"
reference = "foreign_bad.npz"

[[model]]
name = "on_the_gpu_node"
original = "torch"
onnx = "torch.onnx"
resources = {gpu_node = 1}
"""


def test_cluster_places_by_resource_and_survives_a_lost_node(cluster, gpu_node, models, tmp_path):
    from onnxparity.zoo import check_zoo

    spare = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    (models / "cluster.toml").write_text(CLUSTER_MANIFEST)
    lost = []

    def lose_the_spare_once_it_works():
        wait_for(lambda: worker_names(f"@{spare.node_id[:12]}"))
        lost.append(worker_names(f"@{spare.node_id[:12]}"))
        cluster.remove_node(spare)

    remover = threading.Thread(target=lose_the_spare_once_it_works, daemon=True)
    remover.start()
    result = check_zoo(entries(models / "cluster.toml"), tmp_path / "out", jobs=5)
    remover.join(timeout=60)

    assert lost, "no model's task ran on the spare node"
    status = {m.name: m.status for m in result.models}
    assert status == {"torch_net": "passed", "torch_perturbed": "failed", "foreign": "passed", "foreign_bad": "failed",
                      "on_the_gpu_node": "passed"}, result.models
    nodes = {m.name: m.node for m in result.models}
    assert nodes["on_the_gpu_node"] == gpu_node.node_id
    assert spare.node_id not in nodes.values()  # what ran there ran again elsewhere, to the same verdict
    assert len(set(nodes.values())) >= 2
    cuda = next(b for b in result.models[0].result.backends if b.label == "torch:cuda")
    assert cuda.status == "unavailable" and f"Ray node {gpu_node.node_id[:8]}" in cuda.reason  # asked on the GPU node
    assert any(w["kind"] == "torch:cuda" and w["node"] == gpu_node.node_id for w in result.workers)


def test_inputs_travel_to_a_worker_on_another_node(cluster, gpu_node, models):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from onnxparity.backends import named
    from onnxparity.zoo.warm import WarmWorker

    here, other = ray.get_runtime_context().get_node_id(), gpu_node.node_id
    worker = ray.remote(WarmWorker).options(
        num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(other, soft=False)).remote("onnxruntime", "cpu")
    x = np.random.default_rng(7).standard_normal((5, 6)).astype(np.float32)
    payload = {"model": str(models / "foreign.onnx"), "runner": "onnxruntime",
               "options": {"providers": ["CPUExecutionProvider"]}, "inputs": {"features": "/not/on/that/node.npy"},
               "batch_size": 2, "indices": None, "batched": True, "spec": None, "truth": False}
    status, answer, _ = ray.get(worker.run.remote("foreign", named("onnxruntime:cpu"), payload, {}, 60, here,
                                                  ray.put({"features": x})))
    assert status == "ok" and answer["details"]["ray_node"] == other
    w, b = foreign_onnx(models / "foreign-again.onnx")
    np.testing.assert_allclose(answer["outputs"]["scores"], foreign_scores(x, w, b), atol=1e-6)
    ray.kill(worker)


# -- the command line -------------------------------------------------------------------------------
def test_cli_exit_codes_json_and_sigterm(cluster, models, keras_checkpoint, tmp_path, capsys):
    one = f'[[model]]\nname = "foreign"\nonnx = "{models}/foreign.onnx"\nreference = "{models}/foreign.npz"\n'
    manifest = tmp_path / "zoo.toml"
    manifest.write_text('[defaults]\nproviders = "cpu"\n' + one)
    assert main(["zoo", str(manifest), "--out", str(tmp_path / "ok")]) == 0
    assert "zoo: 1 of 1 models passed" in capsys.readouterr().out

    manifest.write_text('[defaults]\nproviders = "cpu"\n' + one + one.replace('"foreign"', '"foreign_bad"')
                        .replace("foreign.npz", "foreign_bad.npz"))
    assert main(["zoo", str(manifest), "--out", str(tmp_path / "bad"), "--json", "--jobs", "1"]) == 1
    captured = capsys.readouterr()
    assert [m["status"] for m in json.loads(captured.out)["models"]] == ["passed", "failed"]
    assert captured.err.strip() == f"onnxparity: error: 1 of 2 models did not pass (foreign_bad); reports in {tmp_path / 'bad'}"

    # SIGTERM (a CI timeout) while the second model runs: the first is in the reports, the second cancelled
    manifest.write_text('[defaults]\nproviders = "cpu"\n' + one + f'[[model]]\nname = "keras_cnn"\n'
                        f'original = "{models}/keras"\nonnx = "{models}/keras.onnx"\n')
    before = set(worker_names())

    def terminate_once_keras_starts():
        wait_for(lambda: set(worker_names("keras:cpu")) - before)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_keras_starts, daemon=True).start()
    assert main(["zoo", str(manifest), "--out", str(tmp_path / "cut"), "--jobs", "1"]) == 143
    assert capsys.readouterr().err.strip() == "onnxparity: terminated"
    saved = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert [(m["name"], m["status"]) for m in saved["models"]] == [("foreign", "passed"), ("keras_cnn", "cancelled")]
    wait_for(lambda: not set(worker_names()) - before, timeout=30)  # the warm workers ended with the zoo
    wait_for(lambda: not [p for p in descendants(os.getpid()) if "_child_main" in cmdline(p)], timeout=30)


def test_import_reaches_the_model_tasks_and_warm_workers(cluster, tmp_path, capsys):
    """--import MODULE (the module that registers an ExportedProgram's output class) is imported in
    the Ray task that checks each model and in the warm framework processes, as check does it; without
    it the entry is refused before any work, naming its line."""
    program, onnx_file = tmp_path / "tagger.pt2", tmp_path / "tagger.onnx"
    _process.call("tests.torch_models:save_tagger_program", program, name="export the tagger")
    converted = onnxparity("convert", program, "-o", onnx_file, "--import", "tests.torch_models")
    assert converted.returncode == 0, converted.stderr
    manifest = tmp_path / "zoo.toml"
    manifest.write_text(f'[defaults]\nproviders = "cpu"\nn = 8\n\n[[model]]\nname = "tagger"\n'
                        f'original = "{program}"\nonnx = "{onnx_file}"\n')
    try:
        assert main(["zoo", str(manifest), "--out", str(tmp_path / "with"), "--import", "tests.torch_models",
                     "--json"]) == 0, capsys.readouterr()
        (model,) = json.loads(capsys.readouterr().out)["models"]
        assert model["status"] == "passed"
    finally:
        _process.request_imports((), only=True)  # this process's word ends with the run
    assert main(["zoo", str(manifest), "--out", str(tmp_path / "without")]) == 2  # refused before any work
    err = capsys.readouterr().err
    assert err.startswith(f"onnxparity: error: {manifest}:5: model 'tagger': ") and err.count("\n") == 1
    assert "asks to import tests.torch_models" in err


def test_max_memory_stops_a_warm_worker_past_it(cluster, models, tmp_path, capsys):
    """A model's --max-memory holds in the zoo too: the warm process that runs its backend is stopped
    past it and reported so; a model without it, next, gets a fresh process and passes."""
    one = f'onnx = "{models}/foreign.onnx"\nreference = "{models}/foreign.npz"\n'
    manifest = tmp_path / "zoo.toml"
    manifest.write_text(f'[defaults]\nproviders = "cpu"\n\n[[model]]\nname = "tight"\nmax_memory = "20M"\n{one}\n'
                        f'[[model]]\nname = "free"\n{one}')
    assert main(["zoo", str(manifest), "--out", str(tmp_path / "out"), "--json", "--jobs", "1"]) == 1
    tight, free = json.loads(capsys.readouterr().out)["models"]
    assert tight["status"] != "passed" and "over --max-memory 20 MiB" in tight["reason"], tight
    assert free["status"] == "passed", free
