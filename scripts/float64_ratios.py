"""How far each backend lands from float64, against how far the original itself does: the numbers behind K.

For each model (the Keras CNN, the PyTorch Net, resnet18 and a small ViT with random weights, the
real MiniLM, an LSTM in PyTorch and in Keras with BatchNormalization, the small user models of the
tests) it converts the model, runs ``check`` (the original run again in float64 in its worker) and
prints, per candidate and output, the reference's and the candidate's error against float64, their
ratio, the verdict, and the seconds the float64 run took. Then the subtle faults K must fail: the
MiniLM file with its LayerNorm epsilons at 1e-6, one attention weight scaled by 1.01, and the
PyTorch Net's perturbed file.

    PYTHONPATH=$PWD python scripts/float64_ratios.py [--only minilm,lstm] [--json ratios.json]

It takes about 10 minutes on 2 cores (MiniLM and the ViT most of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from onnxparity import _process  # noqa: E402

TESTS = "tests.torch_models"


def torch_user(kind: str, shape: dict, folder: Path, n: int, torch_class: str, kwargs: dict | None = None,
               dtypes: dict | None = None) -> dict:
    pth, onnx = folder / f"{kind}.pth", folder / f"{kind}.onnx"
    _process.call("tests.torch_models:save_torch_state", kind, pth, name=f"save {kind}")
    _process.call("onnxparity.convert:convert", str(pth), str(onnx), input_shape=shape, input_dtype=dtypes,
                  torch_class=torch_class, torch_kwargs=kwargs, name=f"convert {kind}")
    return {"original": pth, "onnx": onnx, "torch_class": torch_class, "torch_kwargs": kwargs, "n": n}


def keras_lstm(folder: Path) -> None:
    """A functional Keras model with an LSTM and BatchNormalization, random weights (in a worker: TensorFlow)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 5), name="sequence")
    x = keras.layers.LSTM(16, return_sequences=True)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LSTM(8)(x)
    out = keras.layers.Dense(3, name="value")(x)
    model = keras.Model(inp, out)
    bn = model.layers[2]
    bn.set_weights([w + np.random.default_rng(1).uniform(0.1, 0.5, w.shape).astype("float32") for w in bn.get_weights()])
    model.save(folder / "lstm_bn.keras")


def build(name: str, folder: Path) -> dict:
    """The model ``name`` saved and converted in ``folder``: what :func:`onnxparity.parity.check` takes."""
    folder.mkdir(parents=True, exist_ok=True)
    if name == "keras_cnn":
        _process.call("onnxparity.models:train", "keras", folder / "keras", epochs=1, n_train=2000, verbose=0)
        _process.call("onnxparity.convert:convert", str(folder / "keras"), str(folder / "keras.onnx"))
        return {"original": folder / "keras", "onnx": folder / "keras.onnx", "n": 300}
    if name == "torch_net":
        _process.call("onnxparity.models:train", "torch", folder / "torch", epochs=1, log_interval=0)
        _process.call("onnxparity.convert:convert", str(folder / "torch"), str(folder / "torch.onnx"))
        return {"original": folder / "torch", "onnx": folder / "torch.onnx", "n": 300}
    if name == "keras_lstm_bn":
        _process.call(f"{__name__ if __name__ != '__main__' else 'scripts.float64_ratios'}:keras_lstm", folder)
        _process.call("onnxparity.convert:convert", str(folder / "lstm_bn.keras"), str(folder / "lstm_bn.onnx"))
        return {"original": folder / "lstm_bn.keras", "onnx": folder / "lstm_bn.onnx", "n": 64}
    if name == "resnet18":
        return torch_user("resnet18", (3, 96, 96), folder, 16, "torchvision.models:resnet18", {"num_classes": 10})
    if name == "vit":
        from tests.torch_models import VIT_KWARGS

        return torch_user("vit", (3, 64, 64), folder, 16, "torchvision.models:VisionTransformer", VIT_KWARGS)
    if name == "lstm":
        return torch_user("lstm", (12, 5), folder, 64, f"{TESTS}:SequenceRegressor")
    if name == "two_io":
        return torch_user("two_io", {"image": (3, 32, 32), "meta": (5,)}, folder, 64, f"{TESTS}:TwoInTwoOut",
                          {"width": 6})
    if name == "tokens":
        return torch_user("tokens", (7,), folder, 64, f"{TESTS}:TokenClassifier", dtypes="int64")
    if name == "mobilenet":
        return torch_user("mobilenet", (3, 64, 64), folder, 16, "torchvision.models:mobilenet_v3_small",
                          {"num_classes": 10})
    if name.startswith("minilm"):
        return minilm(folder)
    raise SystemExit(f"unknown model {name}")


def minilm(folder: Path) -> dict:
    from tests import minilm as m

    files = m.write_model(folder)
    sentences = m.save_inputs(folder / "sentences.npz")
    length = int(np.load(sentences)["input_ids"].shape[1])
    sys.path.insert(0, str(folder))  # the user's module, importable by every worker (they take this sys.path)
    onnx = folder / "minilm.onnx"
    _process.call("onnxparity.convert:convert", str(files["pth"]), str(onnx), torch_class=files["torch_class"],
                  input_shape={k: (length,) for k in m.INPUT_NAMES}, input_dtype={k: "int64" for k in m.INPUT_NAMES},
                  name="convert minilm", timeout=900)
    return {"original": files["pth"], "onnx": onnx, "torch_class": files["torch_class"], "inputs": sentences}


def faults(model: dict, folder: Path) -> dict[str, Path]:
    """MiniLM's subtle faults: LayerNorm epsilons 1e-12 -> 1e-6, layer 3's query weight x 1.01."""
    import onnx
    from onnx import numpy_helper

    out = {}
    graph = onnx.load(str(model["onnx"]))
    for node in graph.graph.node:
        if node.op_type == "LayerNormalization":
            for a in node.attribute:
                if a.name == "epsilon":
                    a.f = 1e-6
    out["minilm LayerNorm eps 1e-6"] = folder / "minilm.eps.onnx"
    onnx.save(graph, str(out["minilm LayerNorm eps 1e-6"]))
    graph = onnx.load(str(model["onnx"]))
    from tests.test_calibration import query_weight

    init = query_weight(graph)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01), init.name))
    out["minilm query weight x1.01"] = folder / "minilm.query.onnx"
    onnx.save(graph, str(out["minilm query weight x1.01"]))
    return out


def measure(label: str, model: dict, onnx_path: Path | None = None, atol: float | None = None) -> list[dict]:
    from onnxparity.parity import check

    started = time.perf_counter()
    kwargs = {k: model[k] for k in ("torch_class", "torch_kwargs", "n", "inputs") if model.get(k) is not None}
    result = check(model["original"], onnx_path or model["onnx"], providers="cpu", batch1_limit=16, atol=atol,
                   **kwargs)
    ref = next(b for b in result.backends if b.role == "reference")
    rows = []
    for c in result.comparisons:
        f = c.float64 or {}
        rows.append({"model": label, "candidate": c.candidate, "output": c.output, "judged_as": c.judged_as,
                     "reference_error": f.get("reference_error"), "candidate_error": f.get("candidate_error"),
                     "ratio": f.get("ratio"), "passed": c.passed, "source": c.tolerance_source,
                     "max_abs_diff": c.max_abs_diff, "float64_seconds": (ref.float64 or {}).get("seconds"),
                     "reference_infer_seconds": ref.seconds.get("infer"), "check_seconds": result.seconds,
                     "wall": round(time.perf_counter() - started, 1)})
    return rows


MODELS = ["torch_net", "keras_cnn", "keras_lstm_bn", "lstm", "two_io", "tokens", "mobilenet", "resnet18", "vit",
          "minilm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated models (default: all): " + ",".join(MODELS))
    parser.add_argument("--json", help="write every row here too")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else MODELS
    rows = []
    with tempfile.TemporaryDirectory(prefix="float64-ratios-") as tmp:
        for name in names:
            model = build(name, Path(tmp) / name)
            rows += measure(name, model)
            if name == "minilm":
                for label, path in faults(model, Path(tmp) / name).items():
                    rows += measure(label, model, path)
                    rows += measure(label + " --atol 1e-2", model, path, atol=1e-2)
            if name == "torch_net":
                import onnx
                from onnx import numpy_helper

                graph = onnx.load(str(model["onnx"]))  # as conftest's torch_pair breaks it
                init = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
                w = numpy_helper.to_array(init).copy()
                w.flat[: w.size // 10] += 0.05
                init.CopyFrom(numpy_helper.from_array(w, init.name))
                onnx.save(graph, str(Path(tmp) / name / "broken.onnx"))
                rows += measure("torch_net broken.onnx", model, Path(tmp) / name / "broken.onnx")
            print_rows([r for r in rows if r["model"].startswith(name)])
    print("\nall rows:")
    print_rows(rows)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None and " " not in r["model"]]
    if ratios:
        print(f"\ngood models, {len(ratios)} (candidate, output) pairs: ratio min {min(ratios):.3g}, median "
              f"{np.median(ratios):.3g}, p90 {np.percentile(ratios, 90):.3g}, max {max(ratios):.3g}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def print_rows(rows: list[dict]) -> None:
    def g(v):
        return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)

    keys = ("model", "candidate", "output", "reference_error", "candidate_error", "ratio", "passed", "source",
            "float64_seconds", "reference_infer_seconds")
    for r in rows:
        print("  ".join(g(r[k]) for k in keys), flush=True)


if __name__ == "__main__":
    main()
