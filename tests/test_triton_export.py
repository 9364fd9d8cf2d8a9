"""`onnxparity export-triton`: a Triton model repository and a KServe manifest for the served models.

Each config.pbtxt must parse as Triton's own ModelConfig protobuf (the one tritonclient ships)
and agree with its ONNX graph, so that `tritonserver --model-repository OUT` serves the same
models under the same names and tensors as `onnxparity serve`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_serve import served_models  # noqa: F401  (the session fixture: the converted models)

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"tensor(float)": "TYPE_FP32", "tensor(uint8)": "TYPE_UINT8"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onnxparity", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def repository(served_models, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("triton") / "repo"
    r = _cli("export-triton", str(served_models), str(out), "--max-batch-size", "32", "--instances", "2",
             "--storage-uri", "s3://bucket/onnxparity")
    assert r.returncode == 0, r.stderr
    return out


def test_config_parses_as_triton_model_config_and_matches_the_graph(repository, served_models):  # noqa: F811
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from onnxparity.runners.sessions import make_session

    names = sorted(p.stem for p in served_models.glob("*.onnx"))
    assert sorted(p.name for p in repository.iterdir() if p.is_dir()) == names
    for name in names:
        config = text_format.Parse((repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        model_file = repository / name / "1" / "model.onnx"
        assert model_file.read_bytes() == (served_models / f"{name}.onnx").read_bytes()
        assert config.name == name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size == 32
        assert config.dynamic_batching.max_queue_delay_microseconds == 100
        (group,) = config.instance_group
        assert group.count == 2 and group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        session = make_session(model_file)
        for declared, actual in ((config.input, session.get_inputs()), (config.output, session.get_outputs())):
            assert [t.name for t in declared] == [a.name for a in actual]
            for t, a in zip(declared, actual):
                assert model_config_pb2.DataType.Name(t.data_type) == TYPES[a.type]
                assert list(t.dims) == [d if isinstance(d, int) else -1 for d in a.shape[1:]]
                assert not isinstance(a.shape[0], int)  # the batch axis Triton adds in front


def test_kserve_manifest(repository):
    text = (repository / "inferenceservice.yaml").read_text()
    try:
        import yaml
    except ImportError:
        pytest.skip("pyyaml is missing")
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "onnx"} and model["protocolVersion"] == "v2"
    assert model["storageUri"] == "s3://bucket/onnxparity" and model["runtime"] == "kserve-tritonserver"


def test_export_refuses_a_foreign_folder_and_rewrites_its_own(repository, served_models, tmp_path):  # noqa: F811
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    r = _cli("export-triton", str(served_models), str(foreign))
    assert r.returncode == 2 and "not a repository written by export-triton" in r.stderr
    assert (foreign / "notes.txt").read_text() == "keep me"
    r = _cli("export-triton", str(served_models / "torch_net.onnx"), str(repository), "--gpu", "--name", "digits")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in repository.iterdir()) == ["inferenceservice.yaml", "torch_net"]
    assert "KIND_GPU" in (repository / "torch_net" / "config.pbtxt").read_text()
    r = _cli("export-triton", str(tmp_path / "nothing"), str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.startswith("onnxparity: error:") and r.stderr.count("\n") == 1
    r = _cli("export-triton", str(served_models), str(tmp_path / "out2"), "--name", "Not_A_DNS_Name")
    assert r.returncode == 2 and "DNS" in r.stderr


def test_export_refuses_an_output_that_overlaps_the_input(served_models, tmp_path):  # noqa: F811
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(served_models / "torch_net.onnx", models / "torch_net.onnx")
    r = _cli("export-triton", str(models), str(models / "triton"))  # would be served again by the next export
    assert r.returncode == 2 and "outside the input" in r.stderr and not (models / "triton").exists()
    r = _cli("export-triton", str(models), str(tmp_path), "--force")  # --force would delete the input
    assert r.returncode == 2 and "outside the input" in r.stderr and (models / "torch_net.onnx").is_file()
