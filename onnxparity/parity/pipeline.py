"""``onnxparity run``: both reference models trained natively, converted, and checked, into one folder.

Layout of ``out``: ``keras/`` and ``torch/`` (checkpoints, reused when present), ``keras.onnx`` and
``torch.onnx``, ``parity.json`` and ``parity.html``. Each framework trains and converts in a worker
process of its own.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from onnxparity import _process
from onnxparity.errors import InputError
from onnxparity.models import FRAMEWORKS
from onnxparity.spec import SPEC_FILE

log = logging.getLogger(__name__)

WEIGHTS = {"keras": "model.keras", "torch": "model.pth"}


def training_data(data: str | None) -> str | None:
    """``data`` when it has a training split; otherwise the bundled sample (a test-only set, say)."""
    if data is None:
        return None
    from onnxparity.data import load_digits

    try:
        load_digits(data, "train")
    except InputError as exc:
        if "test-only" in str(exc) or "no x_train" in str(exc):
            log.warning("%s; training on the bundled sample instead", exc)
            return None
        raise
    return data


def has_checkpoint(folder: Path, framework: str) -> bool:
    return (folder / SPEC_FILE).is_file() and (folder / WEIGHTS[framework]).is_file()


def train_and_convert(out: str | Path, data: str | None = None, epochs: int | None = None,
                      say=print) -> dict[str, dict]:
    """Train (or reuse) and convert both reference models; returns per framework what was done."""
    out = Path(out)
    needs_training = [fw for fw in FRAMEWORKS if not has_checkpoint(out / fw, fw)]
    train_on = training_data(data) if needs_training else None  # a bad --data fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    for framework in FRAMEWORKS:
        folder = out / framework
        if has_checkpoint(folder, framework):
            say(f"{framework}: reusing the checkpoint in {folder}")
            done[framework] = {"trained": False}
            continue
        say(f"{framework}: training natively into {folder} ...")
        options = {"keras": {"verbose": 2}, "torch": {"log_interval": 0}}[framework]
        summary = _process.call("onnxparity.models:train", framework, folder, data=train_on, epochs=epochs,
                                name=f"train {framework}", env={_process.STDOUT_ENV: "1"}, **options)
        done_epochs = summary["epochs_done"]  # not `epochs`: that is the caller's, for the next model too
        say(f"{framework}: {done_epochs} epoch{'' if done_epochs == 1 else 's'}, test accuracy {summary['test_accuracy']:.4f}, "
            f"{summary['train_seconds']:.1f} s")
        done[framework] = {"trained": True, "summary": summary}
    started = time.perf_counter()
    workers = {fw: _process.Worker("onnxparity.convert:convert", str(out / fw), str(out / f"{fw}.onnx"),
                                   name=f"convert {fw}") for fw in FRAMEWORKS}
    for framework, worker in workers.items():
        result = worker.result()
        done[framework]["onnx"] = str(result.path)
        say(f"{framework}: converted to {result.path} (opset {result.opset}, {result.size_bytes / 1e6:.2f} MB)")
    say(f"converted both in {time.perf_counter() - started:.1f} s")
    return done
