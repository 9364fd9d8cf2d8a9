"""Inputs with the outputs someone saved for them (``--reference``): ONNX's test-data layout or an ``.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onnxparity.errors import InputError, first_line
from onnxparity.inputs.files import NOT_ARRAYS, check_arrays
from onnxparity.inputs.samples import GIVEN, Inputs, unlabelled
from onnxparity.signature import Signature


def load_reference(path: str | Path, signature: Signature) -> tuple[Inputs, dict[str, np.ndarray]]:
    """Inputs and expected outputs saved elsewhere: ONNX's test-data layout or an ``.npz``.

    A folder holds ``input_0.pb``... and ``output_0.pb``... (TensorProtos, as the ONNX Model Zoo and
    onnx's backend tests ship them), directly or in ``test_data_set_*`` subfolders, one set per
    sample; an ``.npz`` holds arrays named after the model's inputs and outputs.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except NOT_ARRAYS as exc:
            raise InputError(f"{path}: not a readable .npz file ({first_line(exc, 120, with_type=False)})") from None
        outputs = {n: arrays[n] for n in signature.output_names if n in arrays}
        if not outputs:
            raise InputError(f"{path}: no array named after an output of the model ({', '.join(signature.output_names)})")
        inputs = check_arrays({n: arrays[n] for n in signature.input_names if n in arrays}, signature, str(path))
        n = len(next(iter(inputs.values())))
        return Inputs(unlabelled(n), (GIVEN,) * n, str(path), arrays=inputs), outputs
    sets = sorted(p for p in path.glob("test_data_set_*") if p.is_dir()) or [path]
    ins, outs = [], []
    for folder in sets:
        ins.append(_read_protos(folder, "input", signature.input_names))
        outs.append(_read_protos(folder, "output", signature.output_names))
    if not ins[0]:
        raise InputError(f"{path}: no input_*.pb files (ONNX test-data layout)")
    join = np.concatenate if signature.batched else np.stack
    try:
        inputs = {n: join([s[n] for s in ins]) for n in ins[0]}
        outputs = {n: join([s[n] for s in outs]) for n in outs[0]}
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: the test-data sets do not fit together ({exc})") from None
    if not outputs:
        raise InputError(f"{path}: no output_*.pb files (ONNX test-data layout)")
    inputs = check_arrays(inputs, signature, str(path))
    n = len(next(iter(inputs.values())))
    return Inputs(unlabelled(n), (GIVEN,) * n, str(path), arrays=inputs), outputs


def _read_protos(folder: Path, kind: str, names: list[str]) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    files = sorted(folder.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[-1]) if p.stem.split("_")[-1].isdigit() else 0)
    out = {}
    for i, f in enumerate(files):
        tensor = onnx.TensorProto()
        try:
            tensor.ParseFromString(f.read_bytes())
            array = numpy_helper.to_array(tensor)
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
            raise InputError(f"{f}: not a TensorProto ({type(exc).__name__})") from None
        name = tensor.name if tensor.name in names else (names[i] if i < len(names) else None)
        if name is None:
            raise InputError(f"{f}: the model has only {len(names)} {kind}s")
        out[name] = array
    return out
