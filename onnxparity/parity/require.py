"""``--require-devices``: a device the user names must really have run, or parity fails.

Backends that cannot run here are left out of the verdict, which is right on a laptop but hides
a broken GPU setup: with cuDNN missing every CUDA row is "not run" and the check passes. A named
device is met for a model when both sides of the comparison ran on it: the original in its own
framework (PyTorch, or Keras on either engine) and its ONNX file in a runtime on it (ONNX Runtime's
CUDA or TensorRT provider on a GPU; the registry's :func:`~onnxparity.backends.onnx_runners`).
One backend of each side is enough, so TensorRT missing from the build, or
TensorFlow missing from a torch-only GPU machine, does not fail the run; a backend that ran and
crashed fails it anyway.
"""

from __future__ import annotations

from onnxparity.errors import InputError

DEVICES = {"cpu": "cpu", "cuda": "cuda", "gpu": "cuda"}  # what --require-devices takes -> BackendRun.device


def parse(devices) -> tuple[str, ...]:
    """``"cuda"``, ``"cpu,cuda"`` or a list -> the devices' names as backends record them."""
    if devices is None:
        return ()
    items = devices.split(",") if isinstance(devices, str) else list(devices)
    out = []
    for item in (str(i).strip().lower() for i in items):
        if not item:
            continue
        if item not in DEVICES:
            raise InputError(f"--require-devices: unknown device {item!r} (known: {', '.join(DEVICES)})")
        if DEVICES[item] not in out:
            out.append(DEVICES[item])
    return tuple(out)


def _side(runner: str) -> str:
    from onnxparity.backends import onnx_runners

    return "the ONNX file" if runner in onnx_runners() else "the original"


def unmet(result, devices) -> list[str]:
    """One line per (model, required device) where the original or the ONNX file did not run there."""
    lines = []
    models = list(dict.fromkeys(b.model for b in result.backends))
    for device in parse(devices):
        for model in models:
            mine = [b for b in result.backends if b.model == model and b.device == device]
            for side in ("the original", "the ONNX file"):
                backends = [b for b in mine if _side(b.runner) == side]
                if any(b.status == "ok" for b in backends):
                    continue
                why = "; ".join(f"{b.label} {b.status}: {b.reason}" for b in backends) or "no backend planned"
                lines.append(f"{model}: required device {device}: {side} did not run there ({why})")
    return lines


def apply(result, devices) -> list[str]:
    """Mark ``result`` failed, with the reasons in ``result.unmet``, when a required device did not run."""
    lines = unmet(result, devices)
    if lines:
        result.unmet = lines
        result.passed = False
    return lines
