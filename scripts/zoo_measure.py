"""The same zoo through `onnxparity zoo --ray local` and through a shell loop of `onnxparity check`, side by side.

    python scripts/zoo_measure.py --dir runs/latest --copies 3 [--out runs/zoo-measure] [--repeat 1]

Needs the checkpoints and ONNX files that `onnxparity run --out DIR` leaves in DIR. The zoo is both
reference models, the PyTorch file with perturbed weights and an ONNX file with saved outputs,
each COPIES times under other names (a zoo holds many models of few frameworks), all with
`providers = "cpu"`. Each repeat runs the loop, then the zoo (alternating which goes first), as
fresh processes. Prints the wall seconds of each; where they go (interpreter and Ray start,
framework imports and model loading in the backends' "start", inference, and the rest of each
model's matrix: inputs, comparison, its page); and the peak memory: the largest process of the
loop, the zoo's driver, each warm worker and each model's task. The load average is printed
before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(source: Path, out: Path, copies: int) -> list[dict]:
    """The zoo's models in ``out`` (a perturbed copy of the PyTorch file, an ONNX file with saved
    outputs), its manifest ``out/zoo.toml``; returns the entries."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    out.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source / "torch.onnx"))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init).copy()
    w.flat[: w.size // 10] += 0.05
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(out / "perturbed.onnx"))
    rng = np.random.default_rng(0)  # a small dense model from elsewhere, checked against its saved outputs
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("w1", (32, 64)), ("w2", (64, 10)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["logits"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out / "dense.onnx"))
    x = rng.standard_normal((500, 32)).astype(np.float32)
    y = ort.InferenceSession(str(out / "dense.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.savez(out / "dense.npz", x=x, logits=y)
    kinds = [{"name": "keras_cnn", "original": str(source / "keras"), "onnx": str(source / "keras.onnx")},
             {"name": "torch_net", "original": str(source / "torch"), "onnx": str(source / "torch.onnx")},
             {"name": "torch_perturbed", "original": str(source / "torch"), "onnx": str(out / "perturbed.onnx")},
             {"name": "dense", "onnx": str(out / "dense.onnx"), "reference": str(out / "dense.npz")}]
    entries = [{**k, "name": f"{k['name']}_{i}"} for i in range(copies) for k in kinds]
    lines = ['[defaults]\nproviders = "cpu"\n']
    for e in entries:
        lines.append("[[model]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items()))
    (out / "zoo.toml").write_text("\n".join(lines))
    return entries


def onnxparity(*args) -> dict:
    """``python -m onnxparity ARGS``: its wall seconds, exit status, output, and the peak memory of
    its largest process (itself or any process below it that it waited for)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "onnxparity", *map(str, args)], cwd=ROOT, stdout=stdout,
                                stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        return {"wall": wall, "rc": proc.returncode, "out": stdout.read(), "err": stderr.read(),
                "peak_mb": usage.ru_maxrss / 1024}


def shell_loop(entries: list[dict], out: Path) -> dict:
    """`onnxparity check` per model, one after the other, as a shell loop runs them."""
    walls, results, peak = [], [], 0.0
    for e in entries:
        args = ["check", e.get("original") or e["onnx"]] + ([e["onnx"]] if e.get("original") else [])
        args += (["--reference", e["reference"]] if e.get("reference") else []) + ["--providers", "cpu"]
        done = onnxparity(*args, "--json", out / f"{e['name']}.json")
        if done["rc"] not in (0, 1):
            sys.exit(f"check {e['name']} failed: {done['err'].strip()}")
        walls.append(done["wall"])
        peak = max(peak, done["peak_mb"])
        results.append(json.loads((out / f"{e['name']}.json").read_text()))
    return {"wall": sum(walls), "per_model": walls, "results": results, "largest_process_mb": peak}


def zoo(out: Path) -> dict:
    done = onnxparity("zoo", out / "zoo.toml", "--ray", "local", "--out", out / "zoo", "--json")
    if done["rc"] not in (0, 1):
        sys.exit(f"zoo failed: {done['err'].strip()}")
    result = json.loads(done["out"])
    return {"wall": done["wall"], "per_model": [m["seconds"] for m in result["models"]],
            "results": [m["result"] for m in result["models"]], "zoo": result}


def where_the_seconds_go(run: dict) -> dict:
    """Summed over the models: the backends' start (imports, model load) and inference, the rest of
    each model's matrix (inputs, comparison, its page), and what is left of the wall time."""
    start = infer = matrix = 0.0
    for r in run["results"]:
        ok = [b for b in r["backends"] if b["status"] == "ok" and b["runner"] != "saved"]
        start += sum(b["seconds"].get("start", 0) for b in ok)
        infer += sum(b["seconds"].get("infer", 0) for b in ok)
        matrix += r["seconds"] - max((b["seconds"].get("wall", 0) for b in ok), default=0)
    return {"backend start (imports, load)": round(start, 1), "inference": round(infer, 1),
            "matrix rest (inputs, compare, page)": round(matrix, 1),
            "matrices' wall": round(sum(r["seconds"] for r in run["results"]), 1)}


def warm_cost(z: dict) -> dict:
    """Per kind of model, from its second copy on (every framework already loaded): the seconds its
    backends worked (start, inference, the reference's float64 run), summed: about its CPU seconds,
    as each backend here runs on one core."""
    cost: dict[str, list[float]] = {}
    for m in z["zoo"]["models"]:
        kind, copy = m["name"].rsplit("_", 1)
        if copy == "0" or not m["result"]:
            continue
        ok = [b for b in m["result"]["backends"] if b["status"] == "ok" and b["runner"] != "saved"]
        cost.setdefault(kind, []).append(sum(b["seconds"].get("start", 0) + b["seconds"].get("infer", 0)
                                             + ((b.get("float64") or {}).get("seconds") or 0) for b in ok))
    return {kind: round(sum(v) / len(v), 2) for kind, v in cost.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="runs/latest", help="folder written by `onnxparity run` (default runs/latest)")
    p.add_argument("--out", default="runs/zoo-measure", help="scratch folder (default runs/zoo-measure)")
    p.add_argument("--copies", type=int, default=3, help="each model this many times (default 3)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    source, out = Path(args.dir).resolve(), Path(args.out).resolve()
    if not (source / "torch.onnx").is_file() or not (source / "keras.onnx").is_file():
        sys.exit(f"{source}: run `onnxparity run --out {source}` first")
    shutil.rmtree(out, ignore_errors=True)
    entries = prepare(source, out, args.copies)
    for i in range(args.repeat):
        load_before = os.getloadavg()
        order = ("loop", "zoo") if i % 2 == 0 else ("zoo", "loop")
        runs = {name: shell_loop(entries, out) if name == "loop" else zoo(out) for name in order}
        loop, z = runs["loop"], runs["zoo"]
        print(f"{len(entries)} models ({args.copies} x keras_cnn, torch_net, torch_perturbed, dense), order {order}")
        print(f"  shell loop of `onnxparity check`: {loop['wall']:.1f} s  (per model {min(loop['per_model']):.1f}"
              f"-{max(loop['per_model']):.1f} s); largest process {loop['largest_process_mb']:.0f} MiB")
        driver = z["zoo"]["driver"]
        print(f"  onnxparity zoo --ray local:       {z['wall']:.1f} s  (validate {driver['seconds']['validate']:.1f} s, "
              f"Ray start {driver['seconds']['ray']:.1f} s, models {driver['seconds']['models']:.1f} s); "
              f"the loop takes {loop['wall'] / z['wall']:.2f}x as long")
        for name, run in (("loop", loop), ("zoo", z)):
            print(f"  {name:<4} seconds: {where_the_seconds_go(run)}")
        if args.copies > 1:
            print(f"  zoo: backend seconds per model once warm: {warm_cost(z)}")
        print(f"  zoo driver peak {driver['peak_rss_mb']:.0f} MiB; model tasks' peak "
              f"{max((m['peak_rss_mb'] or 0) for m in z['zoo']['models']):.0f} MiB; warm workers (framework process "
              "peak / Ray actor peak, models, processes):")
        for w in z["zoo"]["workers"]:
            print(f"    {w['kind']:<16} {w['peak_rss_mb'] or 0:7.0f} / {w['actor_peak_rss_mb']:4.0f} MiB  "
                  f"{w['models']} models, {w['processes']} process(es)")
        print(f"  load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
