"""Every command on the real models of issue 21, timed, with each one's peak memory.

    python scripts/real_models.py --out /tmp/real-models [--only minilm,vit]

Models: the pretrained MiniLM (converted by onnxparity, and written by plain torch.onnx.export with
its own tensor names), a ViT at vit_tiny_patch16_224's size and torchvision's efficientnet_b0 (random
weights, 224x224), and a Keras CNN with a registered custom layer (against Keras' own ONNX export).
Each goes through convert (or the other exporter), check, locate on a copy with one layer perturbed,
quantize --int8 and bench. Every command runs as a user runs it (`python -m onnxparity ...`) under
`/usr/bin/time`, whose peak resident set is the largest single process (a framework's worker). Prints
one Markdown table; the JSON reports stay in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VIT = {"image_size": 224, "patch_size": 16, "num_layers": 12, "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768,
       "num_classes": 1000}


def run(out: Path, label: str, *args, env=None, cwd=None) -> dict:
    """``onnxparity LABEL ARGS``: its exit status, wall seconds and peak RSS (MB)."""
    stats = out / f"{label}.time"
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", str(stats), sys.executable, "-m", "onnxparity", label, *map(str, args)]
    path = os.pathsep.join([str(ROOT), *filter(None, [(env or {}).get("PYTHONPATH"), os.environ.get("PYTHONPATH")])])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {}), "PYTHONPATH": path})  # this checkout's onnxparity
    wall, rss = stats.read_text().split()[-2:]
    (out / f"{label}.log").write_text(done.stdout + done.stderr)
    print(f"  {label}: exit {done.returncode}, {float(wall):.1f} s, {int(rss) / 1024:.0f} MB", flush=True)
    return {"rc": done.returncode, "wall_s": float(wall), "peak_mb": int(rss) / 1024, "stdout": done.stdout}


def images(path: Path, side: int, n: int = 96) -> Path:
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (n, 3, side, side)).astype(np.float32)
    np.savez(path, input=((pixels / 255 - 0.45) / 0.225).astype(np.float32))
    return path


def minilm(out: Path, plain: bool) -> dict:
    from onnxparity import _process
    from tests import minilm as m
    from tests.helpers import perturb_module

    files = m.write_model(out)
    sentences = m.save_inputs(out / "sentences.npz")
    length = 16
    calibration = m.save_calibration(out / "calibration.npz", int(__import__("numpy").load(sentences)["input_ids"].shape[1]))
    env = {"PYTHONPATH": str(out)}
    build = ["--torch-class", files["torch_class"]]
    steps = {}
    onnx_path = out / ("minilm.plain.onnx" if plain else "minilm.onnx")
    if plain:
        started = time.perf_counter()
        _process.call("tests.minilm:export_plain", out, onnx_path)
        steps["convert"] = {"rc": 0, "wall_s": round(time.perf_counter() - started, 1), "peak_mb": None,
                            "note": "torch.onnx.export (TorchScript exporter), other names"}
        names = m.PLAIN_NAMES["inputs"]
    else:
        shapes = [a for n in m.INPUT_NAMES for a in ("--input-shape", f"{n}=sequence:{length}")]
        steps["convert"] = run(out, "convert", files["pth"], *build, *shapes, "--input-dtype", "int64", "-o",
                               onnx_path, "--json", env=env)
        names = m.INPUT_NAMES
    steps["check"] = run(out, "check", files["pth"], onnx_path, *build, "--inputs", sentences, "--providers", "cpu",
                         "--json", out / "check.json", env=env)
    bad = out / "bad.onnx"
    if not plain:
        perturb_module(onnx_path, bad, "bert.encoder.layer.3.attention.self.query")
        steps["locate"] = run(out, "locate", files["pth"], bad, *build, "--inputs", sentences, "--json",
                              out / "locate.json", env=env)
    steps["quantize"] = run(out, "quantize", onnx_path, "--int8", "--inputs", calibration, sentences, "--json",
                            out / "quantize.json", "--rounds", "5", "-o", out / "int8.onnx")
    steps["bench"] = run(out, "bench", onnx_path, *[a for n in names for a in ("--input-shape", f"{n}=128")],
                         "--batch-sizes", "1,32", "--backends", "onnxruntime", "--json", out / "bench.json")
    return steps


def image_model(out: Path, kind: str) -> dict:
    import torch
    import torchvision

    from tests.helpers import perturb_module

    torch.manual_seed(0)
    if kind == "vit":
        model, build = torchvision.models.VisionTransformer(**VIT), ["--torch-class",
                                                                    "torchvision.models:VisionTransformer",
                                                                    "--torch-kwargs", json.dumps(VIT)]
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        module = "encoder.layers.encoder_layer_5.mlp.0"
    else:
        model, build = torchvision.models.efficientnet_b0(), ["--torch-class", "torchvision.models:efficientnet_b0"]
        module = "features.4.0.block.1.1"  # a depthwise conv's BatchNorm (the Conv is folded into it)
        for m in model.modules():  # as trained ones are: freshly initialised, activations fade to 1e-7 by the head
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), out / "model.pth")
    cal, held = images(out / "calibration.npz", 224, 256), images(out / "held_out.npz", 224, 64)
    onnx_path = out / "model.onnx"
    steps = {"convert": run(out, "convert", out / "model.pth", *build, "--input-shape", "3,224,224", "-o", onnx_path,
                            "--json")}
    steps["check"] = run(out, "check", out / "model.pth", onnx_path, *build, "--providers", "cpu", "--n", "32",
                         "--json", out / "check.json")
    perturb_module(onnx_path, out / "bad.onnx", module, factor=1.05)
    steps["locate"] = run(out, "locate", out / "model.pth", out / "bad.onnx", *build, "--n", "16", "--json",
                          out / "locate.json")
    steps["quantize"] = run(out, "quantize", onnx_path, "--int8", "--inputs", cal, held, "--json",
                            out / "quantize.json", "--rounds", "5", "--max-exclude", "0", "-o", out / "int8.onnx")
    steps["bench"] = run(out, "bench", onnx_path, "--batch-sizes", "1,32", "--backends", "onnxruntime", "--json",
                         out / "bench.json")
    return steps


def keras_custom(out: Path) -> dict:
    from onnxparity import _process

    shutil.copy(ROOT / "tests" / "keras_custom_layer.py", out / "gate_layers.py")
    _process.call("tests.keras_custom_layer:save", out / "gated.keras", out / "keras_export.onnx")
    cal = out / "calibration.npz"
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(cal, input=rng.random((256, 16, 16, 3)).astype(np.float32))
    imp = ["--import", "gate_layers"]
    steps = {"convert": run(out, "convert", "gated.keras", "-o", "gated.onnx", *imp, "--json", cwd=out)}
    steps["check"] = run(out, "check", "gated.keras", "keras_export.onnx", *imp, "--providers", "cpu", "--json",
                         out / "check.json", cwd=out)
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(out / "gated.onnx"))  # the conv kernel, scaled by 1.05
    kernel = next(t for t in model.graph.initializer if len(t.dims) == 4)
    kernel.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(kernel) * np.float32(1.05), kernel.name))
    onnx.save(model, str(out / "bad.onnx"))
    steps["locate"] = run(out, "locate", "gated.keras", "bad.onnx", *imp, "--json", out / "locate.json", cwd=out)
    steps["quantize"] = run(out, "quantize", "gated.onnx", "--int8", "--inputs", cal, "--json", out / "quantize.json",
                            "--rounds", "5", "--max-exclude", "0", "-o", "int8.onnx", cwd=out)
    steps["bench"] = run(out, "bench", "gated.onnx", "--batch-sizes", "1,32", "--backends", "onnxruntime", "--json",
                         out / "bench.json", cwd=out)
    return steps


def summary(name: str, out: Path, steps: dict) -> str:
    def read(f):
        p = out / f
        return json.loads(p.read_text()) if p.is_file() else None

    check, located, quantized = read("check.json"), read("locate.json"), read("quantize.json")
    diffs, ratios = {}, {}
    for c in (check or {}).get("comparisons", []):
        if c["candidate"] == "onnxruntime:cpu" and not c.get("probes") and "@" not in c["model"]:
            diffs[c["output"]] = c["max_abs_diff"]
            ratios[c["output"]] = (c.get("float64") or {}).get("ratio")
    where = (located or {}).get("first_divergence") or {}
    q = quantized or {}
    agree = (f"top-1 {q['top1_agreement']:.2%}" if q.get("top1_agreement") is not None else
             ", ".join(f"{k} cos {v['median']:.3f}" for k, v in (q.get("cosine") or {}).items()))
    times = ", ".join(f"{k} {v['wall_s']:.0f} s" for k, v in steps.items())
    peaks = ", ".join(f"{k} {v['peak_mb']:.0f}" for k, v in steps.items() if v.get("peak_mb"))
    return (f"| {name} | {times} | " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) + " | "
            + ", ".join(f"{k} {v:.2g}x" if v is not None else f"{k} -" for k, v in ratios.items()) + " | "
            + (f"{where.get('original_layer')} ({where.get('mode')})" if where else "-") + " | "
            + (f"{q.get('speedup')}x at 64, {agree}, {'written' if q.get('written') else 'refused'}" if q else "-")
            + f" | {peaks} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--only", default="minilm,minilm_plain,vit,efficientnet,keras_custom")
    args = p.parse_args()
    rows = []
    cases = {"minilm": lambda o: minilm(o, False), "minilm_plain": lambda o: minilm(o, True),
             "vit": lambda o: image_model(o, "vit"), "efficientnet": lambda o: image_model(o, "efficientnet"),
             "keras_custom": keras_custom}
    for name in args.only.split(","):
        out = args.out / name
        out.mkdir(parents=True, exist_ok=True)
        print(name, flush=True)
        steps = cases[name](out)
        (out / "steps.json").write_text(json.dumps({k: {x: y for x, y in v.items() if x != "stdout"}
                                                    for k, v in steps.items()}, indent=1))
        rows.append(summary(name, out, steps))
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    print("| model | wall times | max abs diff (ORT CPU) | vs float64 | locate on the perturbed copy | int8 | peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
