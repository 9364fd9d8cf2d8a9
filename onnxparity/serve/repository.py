"""The models a server holds: every ONNX file in a folder, each in one shared ONNX Runtime session.

A model's name is its file's stem (made unique with its folder's name where two files share a
stem). Its :class:`~onnxparity.spec.ModelSpec`, when the file carries one, tells the convenience
route and the drawing page how to turn raw pixels into the model's input and its output into
probabilities; a file without one is still served over the V2 protocol.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnxparity.errors import InputError
from onnxparity.onnx_model import OnnxModel
from onnxparity.serve.protocol import ORT_TYPES, TensorInfo, triton_config, v2_datatype
from onnxparity.spec import ModelSpec

log = logging.getLogger(__name__)
PREFERRED_OUTPUTS = ("probabilities", "log_probabilities", "logits")


def default_providers() -> list[str]:
    """CUDA first where this ONNX Runtime build has it, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _dims(shape) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)


@dataclass
class ServedModel:
    """One ONNX file in one session (ONNX Runtime's, or OpenVINO where it was measured fastest), shared by
    every request (``run`` is thread-safe)."""

    name: str
    path: Path
    session: object
    spec: ModelSpec | None
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    model: OnnxModel  # the file's facade: signature, batched rule, Triton config
    version: str = "1"
    ready: bool = False
    choice: dict | None = None  # how its session was chosen, by measurement (onnxparity.runners.fastest)

    @property
    def batched(self) -> bool:
        """Whether every input and output has a free first axis, so requests can be stacked along it."""
        return self.model.batched

    @property
    def providers(self) -> list[str]:
        """What runs it: ONNX Runtime's providers in its session's order, or OpenVINO's device."""
        if hasattr(self.session, "get_providers"):
            return self.session.get_providers()
        return [f"OpenVINO {self.session.device}"]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(self.outputs)
        return dict(zip(names, self.session.run(names, feeds)))

    def metadata(self) -> dict:
        return {"name": self.name, "versions": [self.version], "platform": "onnxruntime_onnx",
                "inputs": [t.to_json() for t in self.inputs.values()],
                "outputs": [t.to_json() for t in self.outputs.values()]}

    def triton_config(self, max_batch_size: int) -> dict:
        """The model's configuration as Triton reports it (``GET /v2/models/{m}/config``): the same
        builder as the exported ``config.pbtxt``."""
        return triton_config(self.name, self.model.signature, max_batch_size)

    # -- the convenience route: raw 28x28 digits in, probabilities out -----------------------
    @property
    def digit_output(self) -> str | None:
        for name in PREFERRED_OUTPUTS:
            if name in self.outputs:
                return name
        return next(iter(self.outputs), None)

    @property
    def takes_digits(self) -> bool:
        """Whether raw digits can be fed: a spec to preprocess them, or raw uint8 pixels embedded."""
        if len(self.inputs) != 1 or not self.batched:
            return False
        (info,) = self.inputs.values()
        return info.datatype == "UINT8" or (self.spec is not None and info.datatype == "FP32")

    def digits_feed(self, digits: np.ndarray) -> dict[str, np.ndarray]:
        """Raw uint8 digits (N, 28, 28) -> this model's input."""
        (info,) = self.inputs.values()
        if info.datatype == "UINT8":
            return {info.name: np.ascontiguousarray(digits.reshape((len(digits), *[abs(d) for d in info.shape[1:]])),
                                                    dtype=np.uint8)}
        return {info.name: self.spec.preprocess(digits)}

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        """This model's raw output -> class probabilities, by its spec (or by its output's name)."""
        # The output's name says what it holds (convert names it so); else the spec does.
        kind = self.digit_output if self.digit_output in PREFERRED_OUTPUTS else None
        spec = self.spec or ModelSpec(name=self.name, framework="onnx", input_shape=(28, 28), layout="NHWC")
        return dataclasses.replace(spec, output=kind or spec.output).probabilities(output)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels if self.spec is not None else tuple(str(i) for i in range(10))


def find_models(folder: str | os.PathLike) -> dict[str, Path]:
    """Every ``.onnx`` file under ``folder`` (or the one file given), by a unique, URL-safe name."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() != ".onnx":
            raise InputError(f"{root}: not an .onnx file")
        files = [root]
        root = root.parent
    else:
        # Hidden names are half-written files (onnxparity._io) or tool folders: never models.
        files = sorted(p for p in root.rglob("*.onnx")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(f"{root}: no .onnx files to serve (convert models first with `onnxparity convert`)")
    stems = [p.stem for p in files]
    names: dict[str, Path] = {}
    for path, stem in zip(files, stems):
        name = stem
        if stems.count(stem) > 1:
            name = "-".join(path.relative_to(root).with_suffix("").parts)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        if name in names:
            raise InputError(f"{path}: two models would both be called {name!r}; rename one")
        names[name] = path
    return names


def load_model(name: str, path: Path, providers: list[str], intra_op_threads: int = 0,
               inter_op_threads: int = 0, choose_s: float = 0.0, batch_sizes: tuple[int, ...] = (1, 64)) -> ServedModel:
    """Open ``path`` with the given providers and thread settings: on the CPU with ``choose_s`` seconds,
    in the fastest session measured at ``batch_sizes`` (:mod:`onnxparity.runners.fastest`); otherwise,
    and for a model with dynamic axes beyond the batch, in the toolkit's tuned ONNX Runtime session."""
    import onnxruntime as ort

    from onnxparity.runners.sessions import check_started

    model = OnnxModel(path)
    spec = model.spec
    choice = None
    # A model whose inputs vary beyond the batch (a sequence length) has no one batch to measure on.
    varies = any(t.dynamic_axes for t in model.signature.inputs)
    if choose_s > 0 and providers[0] == "CPUExecutionProvider" and not varies:
        from onnxparity.inputs import fixed_batch
        from onnxparity.runners.fastest import choose, cpu_candidates

        sizes = batch_sizes if model.batched else (1,)
        choice = choose(cpu_candidates(path, intra_op_threads),
                        {b: fixed_batch(spec, model.signature, b) for b in sizes}, choose_s)
        session = getattr(choice.runner, "session", choice.runner)  # ORT's session, or OpenVINO's runner
    else:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        session = model.session(providers, options, tuned=True)
        check_started(session, providers)

    def infos(args) -> dict[str, TensorInfo]:
        out = {}
        for arg in args:
            datatype = ORT_TYPES.get(arg.type)
            if datatype is None or datatype in ("BYTES", "BF16"):
                raise InputError(f"{path}: {arg.name} is a {arg.type}, which this server does not serve")
            out[arg.name] = TensorInfo(arg.name, datatype, _dims(arg.shape))
        return out

    if hasattr(session, "get_inputs"):
        inputs, outputs = infos(session.get_inputs()), infos(session.get_outputs())
    else:
        inputs, outputs = ({t.name: TensorInfo(t.name, v2_datatype(t.dtype), _dims(t.shape)) for t in tensors}
                           for tensors in (model.signature.inputs, model.signature.outputs))
    return ServedModel(name, Path(path), session, spec, inputs, outputs, model,
                       choice=choice.to_dict() if choice else None)


def warm_up(model: ServedModel, max_batch_size: int) -> None:
    """Run the model on zeros at batch 1 and at the largest batch, so no client pays for first runs."""
    from onnxparity.serve.protocol import DATATYPES

    sizes = (1, max_batch_size) if model.batched else (None,)
    for n in sizes:
        feeds = {}
        for info in model.inputs.values():
            shape = [n if (i == 0 and n is not None) else (1 if d == -1 else d) for i, d in enumerate(info.shape)]
            feeds[info.name] = np.zeros(shape, dtype=DATATYPES[info.datatype])
        model.run(feeds)
    model.ready = True
    log.info("model %s ready (%s)", model.name, model.path)
