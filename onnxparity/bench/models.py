"""The models a bench times: checkpoint folders (converted to ONNX on the fly when no ``model.onnx``
sits beside them), folders of them, and bare ``.onnx`` files."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from onnxparity import _process
from onnxparity.errors import InputError
from onnxparity.models import resolve
from onnxparity.models.torch_io import needs_class
from onnxparity.spec import SPEC_FILE
from onnxparity.trust import Trust

log = logging.getLogger(__name__)


@dataclass
class BenchModel:
    """One model under bench: its native form (if any) and its ONNX file."""

    name: str
    framework: str  # "keras", "torch" or "onnx" (an ONNX file without its original)
    native: str | None
    onnx: str | None
    spec: dict | None  # None: an ONNX file from elsewhere, fed from its signature alone
    onnx_source: str = ""  # "beside the checkpoint (path)", "converted for this bench ... (N s)", "given"
    mflop_per_image: float | None = None  # onnx-tool's count at batch 1 (bench.flops), every node
    flops: dict | None = None  # the same count split: mflop_matmul (MatMul, Gemm, Conv, attention), by_op



def find_models(paths: list[str], workdir: Path, timeout_s: float = 900.0, trust: dict | None = None) -> list[BenchModel]:
    """Resolve each path (checkpoint folder, folder of them, ``.onnx`` file) into bench models.

    Checkpoints without an ONNX file beside them are converted into ``workdir``, all at once,
    each in a worker process of its own.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir() and not (p / SPEC_FILE).is_file() and not (p / "saved_model.pb").is_file():
            inner = sorted(q for q in p.iterdir() if q.is_dir() and (q / SPEC_FILE).is_file())
            inner += sorted(q for q in p.glob("*.onnx") if not _pairs_with(q, inner))
            if not inner:
                raise InputError(f"{p}: neither a checkpoint folder nor a folder holding any")
            found.extend(inner)
        else:
            found.append(p)
    models = [_model(p) for p in found]
    user = Trust.from_dict(trust)
    for m in models:  # a recorded class or import the user did not allow: refused before any worker starts
        if m.spec and m.native:
            user.admit_imports(m.spec.get("imports") or (), f"{m.native}'s spec")
        if m.framework == "torch" and m.spec and m.native and needs_class(m.native):  # a .pt2 builds no class
            user.resolve(m.spec.get("architecture"), m.spec.get("torch_kwargs"), f"{m.native}'s spec.json")
    pending = []
    for i, m in enumerate(models):
        if m.onnx is None:
            target = workdir / f"{i}-{m.name}.onnx"
            log.info("converting %s to ONNX for the bench", m.native)
            pending.append((m, time.perf_counter(), _process.Worker(
                "onnxparity.convert:convert", m.native, str(target), torch_class=user.torch_class,
                torch_kwargs=user.torch_kwargs, trust_recorded=user.recorded, name=f"convert {m.native}",
                timeout=timeout_s)))
    for m, started, worker in pending:
        result = worker.result()
        m.onnx = str(result.path)
        m.onnx_source = f"converted for this bench by onnxparity.convert ({time.perf_counter() - started:.1f} s)"
    names = [m.name for m in models]
    for i, m in enumerate(models):  # make names unique (two runs of the same architecture)
        if names.count(m.name) > 1:
            m.name = f"{m.name}#{names[:i].count(m.name) + 1}"
    return models


def _pairs_with(onnx_path: Path, folders: list[Path]) -> bool:
    """Whether one of ``folders`` takes this file as its ONNX twin (then it is not benched on its own)."""
    return any(_onnx_beside(f) == onnx_path for f in folders)


def _onnx_beside(folder: Path) -> Path | None:
    for candidate in (folder / "model.onnx", folder.parent / f"{folder.name}.onnx"):
        if candidate.is_file():
            return candidate
    return None


def _model(path: Path) -> BenchModel:
    ref = resolve(path)
    if ref.framework == "onnx":
        from onnxparity.onnx_model import OnnxModel

        model = OnnxModel(path)
        spec = model.spec.to_dict() if model.spec else None
        name = model.name + (f".{model.precision}" if model.precision != "float32" else "")  # a variant apart
        return BenchModel(name, "onnx", None, str(path), spec, "given")
    twin = path.with_suffix(".onnx")
    if ref.spec is None and path.is_file() and twin.is_file():  # model.pt2 beside the model.onnx converted from it
        from onnxparity.onnx_model import OnnxModel

        spec = OnnxModel(twin).require_spec()
        return BenchModel(spec.name, ref.framework, str(path), str(twin), spec.to_dict(), f"beside it ({twin})")
    if ref.spec is None:
        raise InputError(f"{path}: the bench needs a checkpoint folder with spec.json (onnxparity train), a model "
                         "file with the ONNX file converted from it beside it (model.pt2 and model.onnx), or an .onnx file")
    folder = path if path.is_dir() else path.parent
    onnx_path = _onnx_beside(folder)
    if onnx_path is None:
        return BenchModel(ref.spec.name, ref.framework, str(folder), None, ref.spec.to_dict())
    return BenchModel(ref.spec.name, ref.framework, str(folder), str(onnx_path), ref.spec.to_dict(),
                      f"beside the checkpoint ({onnx_path})")
