"""Nothing a file names is imported or called without the user's word (onnxparity.trust).

A spec.json or an ONNX file's metadata that names ``subprocess:run`` with arguments that would
create a file, and ``os:remove`` / ``shutil:rmtree`` aimed at a file that must survive: every
command that rebuilds a model refuses them in one line (exit 2) before importing anything, and
the Python API raises. Legitimate paths keep working: the reference folders, a trusted zoo's
builder, the user's own class named again, and ``--trust-recorded``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onnxparity.errors import InputError
from onnxparity.trust import Trust
from tests.helpers import onnxparity, assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _evil_onnx(good: Path, dest: Path, architecture: str, kwargs: dict) -> Path:
    import onnx

    model = onnx.load(str(good))
    props = {p.key: p.value for p in model.metadata_props}
    props["onnxparity.architecture"] = architecture
    props["onnxparity.torch_kwargs"] = json.dumps(kwargs)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dest))
    return dest


def _evil_folder(checkpoint: Path, dest: Path, architecture: str, kwargs: dict) -> Path:
    shutil.copytree(checkpoint, dest)
    spec = json.loads((dest / "spec.json").read_text())
    spec["architecture"], spec["torch_kwargs"] = architecture, kwargs
    (dest / "spec.json").write_text(json.dumps(spec))
    return dest


@pytest.fixture()
def bare_state_dict(torch_checkpoint, tmp_path) -> Path:
    """The reference Net's weights alone, no spec.json beside them: the ONNX file's metadata names the class."""
    (tmp_path / "bare").mkdir()
    return Path(shutil.copy(torch_checkpoint / "model.pth", tmp_path / "bare" / "model.pth"))


def test_onnx_metadata_naming_subprocess_run_is_refused(bare_state_dict, torch_onnx, tmp_path):
    pwned = tmp_path / "pwned"
    evil = _evil_onnx(torch_onnx, tmp_path / "evil.onnx", "subprocess:run", {"args": ["touch", str(pwned)]})
    result = onnxparity("check", bare_state_dict, evil, "--cpu-only")
    assert_one_line_error(result, "evil.onnx's metadata", "subprocess:run", "--torch-class subprocess:run", "--trust-recorded")
    assert not pwned.exists()
    assert_one_line_error(onnxparity("locate", bare_state_dict, evil), "subprocess:run")
    assert not pwned.exists()


def test_spec_json_naming_subprocess_run_is_refused_by_every_command(torch_checkpoint, tmp_path):
    pwned = tmp_path / "pwned"
    folder = _evil_folder(torch_checkpoint, tmp_path / "evil", "subprocess:run", {"args": ["touch", str(pwned)]})
    commands = [("evaluate", folder), ("convert", folder, "-o", tmp_path / "x.onnx"),
                ("train", "--from", folder, "--out", tmp_path / "trained"),
                ("bench", folder, "--batch-sizes", "1", "--rounds", "1"),
                ("migrate", folder, "--to", "keras", "-o", tmp_path / "migrated")]
    for command in commands:
        assert_one_line_error(onnxparity(*command), "spec.json", "subprocess:run")
        assert not pwned.exists(), command
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "trained").exists()
    assert not (tmp_path / "migrated").exists()


def test_python_api_refuses_recorded_os_remove_and_shutil_rmtree(bare_state_dict, torch_onnx, tmp_path):
    from onnxparity.parity import check

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("still here")
    for architecture, kwargs in (("os:remove", {"path": str(victim / "keep.txt")}),
                                 ("shutil:rmtree", {"path": str(victim)}),
                                 ("subprocess:run", {"args": ["touch", str(tmp_path / "pwned")]})):
        evil = _evil_onnx(torch_onnx, tmp_path / "evil.onnx", architecture, kwargs)
        with pytest.raises(InputError, match=architecture):
            check(bare_state_dict, evil, providers="cpu", gpu=False, n=4)
    assert (victim / "keep.txt").read_text() == "still here" and not (tmp_path / "pwned").exists()


def test_a_named_class_that_is_no_module_is_not_instantiated(torch_checkpoint, tmp_path):
    pwned = tmp_path / "pwned"
    result = onnxparity("convert", torch_checkpoint / "model.pth", "-o", tmp_path / "x.onnx", "--input-shape",
                        "1,28,28", "--torch-class", "subprocess:Popen", "--torch-kwargs",
                        json.dumps({"args": ["touch", str(pwned)]}))
    assert_one_line_error(result, "not a torch.nn.Module", "not instantiated")
    assert not pwned.exists()


def test_rules():
    """Which names a file may record without the user's word, and that the user's word replaces them."""
    none = Trust()
    assert none.allows("onnxparity.models.torch_net:Net") and none.allows("./model.py:Net")
    assert none.allows("torchvision.models:resnet18") and none.allows("torchvision.models.detection:fasterrcnn_resnet50_fpn")
    for bad in ("subprocess:run", "os:remove", "shutil:rmtree", "torchvision.models:_api", "torchvision:io",
                "torchvision.models.x:y", "onnxparity.models.torch_net:train"):
        assert not none.allows(bad), bad
        with pytest.raises(InputError, match="--trust-recorded"):
            none.resolve(bad, {"a": 1}, "the spec")
    assert Trust(recorded=True).allows("mypkg:Model")
    user = Trust("mypkg:Model", {"width": 4})
    assert user.resolve("subprocess:run", {"args": ["x"]}, "spec") == ("mypkg:Model", {"width": 4})
    assert Trust("mypkg:Model").resolve("mypkg:Model", {"width": 8}, "spec") == ("mypkg:Model", {"width": 8})
    assert Trust("mypkg:Model").resolve("other:Model", {"width": 8}, "spec") == ("mypkg:Model", None)
    assert Trust.from_dict(user.to_dict()) == user


def test_a_zoo_name_that_is_no_builder_is_refused():
    from onnxparity.models.torch_io import build_module

    with pytest.raises(InputError, match="not a model builder"):
        build_module("torchvision.models:get_weight", {"name": "ResNet18_Weights.DEFAULT"})
    assert type(build_module("torchvision.models:resnet18", {"num_classes": 3})).__name__ == "ResNet"


def test_reference_folder_needs_no_flag(torch_checkpoint):
    result = onnxparity("evaluate", torch_checkpoint, "--n", "50", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 50


def test_recorded_imports_need_the_users_word(monkeypatch):
    """A module a file records is imported only when named again, a trusted package's, or --trust-recorded."""
    from onnxparity import _process

    monkeypatch.setattr(_process, "_IMPORTS", [])
    with pytest.raises(InputError, match=r"model.onnx's metadata asks to import json, .*pass --import json if you trust"):
        Trust().admit_imports(["json"], "model.onnx's metadata")
    assert _process.requested_imports() == ()
    Trust().admit_imports(["transformers", "torchvision.models"], "spec")  # trusted packages
    Trust(recorded=True).admit_imports(["json"], "spec")
    assert _process.requested_imports() == ("transformers", "torchvision.models", "json")
    monkeypatch.setattr(_process, "_IMPORTS", [])
    _process.request_imports(["json"])  # --import json: the user's word
    Trust().admit_imports(["json"], "spec")
    for bad, why in (("os.path:join", "not a module name"), ("no_such_module_here", "no such module")):
        with pytest.raises(InputError, match=why):
            _process.request_imports([bad])


# -- an ExportedProgram (.pt2) whose members need the full unpickler ------------------------------------
class _Touch:
    """A pickle that creates a file when loaded: what an attacker's payload would do."""

    def __init__(self, victim: Path):
        self.victim = str(victim)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.victim}",)


def _program_with(tmp_path: Path, replace) -> Path:
    """A real .pt2 of a small module, one of its members replaced by ``replace(name, bytes)``."""
    import io
    import zipfile

    import torch

    torch.manual_seed(0)
    program = torch.export.export(torch.nn.Sequential(torch.nn.Linear(3, 2)), (torch.randn(2, 3),))
    clean = tmp_path / "clean.pt2"
    torch.export.save(program, str(clean))
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            data = replace(name, src.read(name))
            dst.writestr(name, data)
    buffer = io.BytesIO()
    torch.save(_Touch(tmp_path / "PWNED"), buffer)
    return clean, evil, buffer.getvalue()


def test_a_program_whose_members_need_pickled_code_is_refused_unless_trusted(tmp_path):
    import json

    from onnxparity.models.torch_io import load_program

    payload = {}

    def sample_inputs(name, data):  # torch.export.load falls back to weights_only=False for this member
        return payload["bytes"] if name.endswith("sample_inputs/model.pt") else data

    victim = tmp_path / "PWNED"
    clean, evil, payload["bytes"] = _program_with(tmp_path, lambda n, d: d)
    _, evil, _ = _program_with(tmp_path, sample_inputs)
    assert load_program(clean).module()(__import__("torch").ones(2, 3)).shape == (2, 2)  # plain tensors load
    with pytest.raises(InputError, match=r"evil\.pt2: .*sample_inputs/model\.pt holds pickled Python objects"):
        load_program(evil)
    assert_one_line_error(onnxparity("convert", evil, "-o", tmp_path / "x.onnx"), "holds pickled Python objects",
                          "--trust-pickle")
    assert not victim.exists() and not (tmp_path / "x.onnx").exists()
    onnxparity("convert", evil, "--trust-pickle", "-o", tmp_path / "x.onnx")  # the user's word: torch unpickles it
    assert victim.exists()  # (which is what the refusal stood in the way of)
    victim.unlink()

    def pickled_weight(name, data):  # the archive itself marks a payload for the full unpickler
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            for meta in config["config"].values():
                meta["use_pickle"] = True
            return json.dumps(config).encode()
        return data

    _, evil, _ = _program_with(tmp_path, pickled_weight)
    with pytest.raises(InputError, match=r"model_weights_config\.json \(0\.weight\) holds pickled Python objects"):
        load_program(evil)
    assert not victim.exists()
