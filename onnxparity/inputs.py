"""The inputs every backend sees, from one of four sources, and how each model is fed them.

- **Digits** (the reference models' default): real held-out digits of ``--data`` plus seeded edge
  cases, kept as raw pixels and preprocessed per model by its spec (Keras NHWC x/255, PyTorch
  NCHW Normalize), so both frameworks see the same pixels.
- **Arrays** (``--inputs FILE.npz``/``.npy``): one array per input name, already in the model's form.
- **Image files** (``--inputs FOLDER``): PNG/JPEG of any size, resized to the image input's HxW,
  then preprocessed by the spec like digits.
- **Synthesized from the signature** (any other model): seeded samples plus edge cases per dtype.

An :class:`Inputs` holds either raw ``images`` or named ``arrays``; :func:`feeds` turns it into
one model's named arrays, :func:`prepare` writes those beside each other as ``.npy`` files that
worker processes map read-only instead of receiving copies through a pipe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from onnxparity.errors import InputError
from onnxparity.signature import Signature, TensorSpec
from onnxparity.spec import ModelSpec

DIGIT = "digit"
RANDOM = "random"
IMAGE = "image"
# Pixel edge cases for image models: kind -> how many; seeded (SYNTHETIC_SEED), so two runs see the same.
PIXEL_CASES = {"zeros": 1, "maximum": 1, "noise": 4, "over-range": 2, "negative": 1}
# Edge cases for synthesized tensors, one sample each (every input of the sample takes the same kind).
TENSOR_CASES = ("zeros", "minimum", "maximum", "far-out")
SYNTHETIC_SEED = 20240531
DEFAULT_SAMPLES = 64
# Integer inputs that nothing bounds are drawn from [0, 10): small enough for any index or count.
DEFAULT_INT_RANGE = (0, 10)
FLOAT_EXTREME = 3.0  # the edges of a standard normal sample
FAR_OUT = 100.0  # "far outside the usual range": a hundred standard deviations


@dataclass(frozen=True)
class Inputs:
    """Samples for every backend: raw ``images`` (pixels) or named ``arrays``, with labels and kinds."""

    labels: np.ndarray  # (N,) int64; -1 where there is no label
    kinds: tuple[str, ...]  # per sample: "digit", "image", "random" or an edge case's kind
    source: str
    images: np.ndarray | None = None  # (N, H, W[, C]) float32 raw pixel values (edge cases may leave 0..255)
    arrays: Mapping[str, np.ndarray] | None = None  # input name -> (N, ...) in the model's own form

    def __post_init__(self) -> None:
        if (self.images is None) == (self.arrays is None):
            raise ValueError("Inputs hold either images or arrays")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_digits(self) -> int:
        return int((self.labels >= 0).sum())

    def fingerprint(self) -> str:
        """sha256 of the samples, labels and kinds: two saved runs are comparable when these agree."""
        h = hashlib.sha256()
        if self.images is not None:
            h.update(np.ascontiguousarray(self.images, dtype=np.float32).tobytes())
        else:
            for name in sorted(self.arrays):
                a = np.ascontiguousarray(self.arrays[name])
                h.update(f"{name}:{a.dtype}:{a.shape}".encode())
                h.update(a.tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        h.update(json.dumps(list(self.kinds)).encode())
        return h.hexdigest()

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for kind in self.kinds:
            counts[kind] = counts.get(kind, 0) + 1
        n_real = sum(1 for k in self.kinds if k in (DIGIT, IMAGE, "given"))
        return {"source": self.source, "n": len(self), "n_digits": self.n_digits,
                "n_synthetic": len(self) - n_real, "kinds": counts, "fingerprint": self.fingerprint()}

    def select(self, indices) -> "Inputs":
        idx = np.asarray(indices, dtype=np.int64)
        return Inputs(self.labels[idx], tuple(self.kinds[i] for i in idx), self.source,
                      None if self.images is None else self.images[idx],
                      None if self.arrays is None else {k: v[idx] for k, v in self.arrays.items()})


# -- digits --------------------------------------------------------------------------------------
def pixel_cases(images: np.ndarray, seed: int = SYNTHETIC_SEED, shape=(28, 28)) -> tuple[np.ndarray, list[str]]:
    """Edge cases in pixel space: all zeros, all at maximum, uniform noise, and values out of the
    training range (real images brightened four times past 255, and a negated image)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    out, kinds = [], []
    out += [np.zeros(shape, np.float32)] * PIXEL_CASES["zeros"]
    out += [np.full(shape, 255.0, np.float32)] * PIXEL_CASES["maximum"]
    out += list(rng.uniform(0, 255, size=(PIXEL_CASES["noise"], *shape)).astype(np.float32))
    base = images[: PIXEL_CASES["over-range"]].astype(np.float32) if len(images) else np.zeros((0, *shape), np.float32)
    out += list(base * 4.0)
    out += list(-images[: PIXEL_CASES["negative"]].astype(np.float32))
    for kind, count in PIXEL_CASES.items():
        if kind in ("over-range", "negative"):
            count = min(count, len(images))
        kinds += [kind] * count
    return np.stack(out).astype(np.float32), kinds


def load_digits_inputs(data: str | None = None, n: int | None = None, synthetic: bool = True) -> Inputs:
    """The test split of ``data`` (bundled held-out digits by default), its first ``n``, plus edge cases."""
    from onnxparity.data import load_digits

    if n is not None and n < 1:
        raise InputError("--n must be at least 1")
    digits = load_digits(data, "test").head(n)
    images = digits.images.astype(np.float32)
    labels = digits.labels.astype(np.int64)
    kinds = [DIGIT] * len(digits)
    if synthetic:
        extra, extra_kinds = pixel_cases(digits.images, shape=digits.images.shape[1:])
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, np.full(len(extra), -1, np.int64)])
        kinds += extra_kinds
    return Inputs(labels, tuple(kinds), digits.source, images=images)


# -- synthesized ---------------------------------------------------------------------------------
def sample_shapes(signature: Signature, input_shapes: Mapping[str | None, tuple[int, ...]] | None = None,
                  ) -> dict[str, tuple[int, ...]]:
    """Each input's concrete sample shape: fixed axes from the graph, dynamic ones from ``--input-shape``."""
    input_shapes = dict(input_shapes or {})
    if None in input_shapes:
        if len(signature.inputs) != 1:
            raise InputError(f"the model has {len(signature.inputs)} inputs; name each: --input-shape NAME=SHAPE "
                             f"(inputs: {', '.join(signature.input_names)})")
        input_shapes[signature.inputs[0].name] = input_shapes.pop(None)
    unknown = set(input_shapes) - set(signature.input_names)
    if unknown:
        raise InputError(f"--input-shape names no input of the model: {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(signature.input_names)})")
    shapes = {}
    for t in signature.inputs:
        declared = t.sample_shape
        given = input_shapes.get(t.name)
        if given is None:
            shapes[t.name] = t.concrete(None)  # raises, naming the flag, for a dynamic axis
            continue
        if len(given) != len(declared) or any(isinstance(d, int) and d != g for d, g in zip(declared, given)):
            raise InputError(f"--input-shape {t.name}={','.join(map(str, given))} does not fit the input's "
                             f"sample shape [{', '.join(map(str, declared))}]")
        shapes[t.name] = tuple(given)
    return shapes


def synthesize(signature: Signature, n: int = DEFAULT_SAMPLES, *, input_shapes=None,
               int_range: tuple[int, int] | None = None, seed: int = SYNTHETIC_SEED, edge_cases: bool = True,
               spec: ModelSpec | None = None) -> Inputs:
    """``n`` seeded samples for every input plus one sample per edge case (:data:`TENSOR_CASES`).

    Floats are standard normal; edge cases are zeros, -3 and +3 everywhere, and samples a hundred
    times larger. An image input (a spec that describes one) is instead drawn in pixel space and
    preprocessed, with pixel edge cases. Integers stay in their range: ``int_range`` (``--int-range``),
    else the embedding table the graph indexes with them, else [0, 10).
    """
    if n < 1:
        raise InputError("the number of samples must be at least 1")
    if spec is not None and spec.image_size is not None and len(signature.inputs) == 1:
        h, w, c = spec.image_size
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, (n, h, w, c)).astype(np.float32)
        kinds = [RANDOM] * n
        if edge_cases:
            extra, extra_kinds = pixel_cases(pixels.astype(np.uint8), seed, (h, w, c))
            pixels = np.concatenate([pixels, extra])
            kinds += extra_kinds
        if c == 1:
            pixels = pixels[..., 0]
        return Inputs(np.full(len(pixels), -1, np.int64), tuple(kinds), f"synthesized ({n} random images)",
                      images=pixels)
    shapes = sample_shapes(signature, input_shapes)
    rng = np.random.default_rng(seed)
    kinds = [RANDOM] * n + (list(TENSOR_CASES) if edge_cases else [])
    arrays = {}
    for t in signature.inputs:
        shape = shapes[t.name]
        if not t.batched:  # a fixed first axis (often 1): each sample is one whole feed
            shape = tuple(t.concrete(None, {})) if not t.dynamic_axes else shape
        arrays[t.name] = _draw(t, shape, n, rng, int_range, edge_cases)
    return Inputs(np.full(len(kinds), -1, np.int64), tuple(kinds), f"synthesized ({n} samples, seed {seed})",
                  arrays=arrays)


def _draw(t: TensorSpec, shape, n: int, rng, int_range, edge_cases: bool) -> np.ndarray:
    dtype = np.dtype(t.dtype)
    if t.dtype == "bool":
        random = rng.integers(0, 2, (n, *shape)).astype(bool)
        edges = [np.zeros(shape, bool), np.zeros(shape, bool), np.ones(shape, bool), np.ones(shape, bool)]
    elif t.is_float:
        random = rng.standard_normal((n, *shape))
        edges = [np.zeros(shape), np.full(shape, -FLOAT_EXTREME), np.full(shape, FLOAT_EXTREME),
                 FAR_OUT * rng.standard_normal(shape)]
    else:
        lo, hi = int_range or t.int_range or DEFAULT_INT_RANGE
        info = np.iinfo(dtype)
        lo, hi = max(lo, int(info.min)), min(hi, int(info.max) + 1)
        if hi <= lo:
            raise InputError(f"input {t.name!r}: the integer range [{lo}, {hi}) is empty for {t.dtype}")
        random = rng.integers(lo, hi, (n, *shape))
        zero = 0 if lo <= 0 < hi else lo
        edges = [np.full(shape, zero), np.full(shape, lo), np.full(shape, hi - 1), rng.integers(lo, hi, shape)]
    samples = [random] + ([np.stack(edges)] if edge_cases else [])
    return np.ascontiguousarray(np.concatenate(samples).astype(dtype))


# -- given -----------------------------------------------------------------------------------------
def load_arrays(path: str | Path, signature: Signature | None) -> Inputs:
    """``--inputs FILE.npz`` (one array per input name) or ``FILE.npy`` (a one-input model's)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".npy":
            if signature is not None and len(signature.inputs) != 1:
                raise InputError(f"{path}: one array, but the model has {len(signature.inputs)} inputs; "
                                 "give an .npz with one array per input name")
            name = signature.inputs[0].name if signature else "input"
            arrays = {name: np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz/.npy file ({str(exc).splitlines()[0][:120]})") from None
    labels = arrays.pop("labels", None)
    if signature is not None:
        arrays = check_arrays(arrays, signature, str(path))
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise InputError(f"{path}: the arrays hold different numbers of samples ({sorted(n)})")
    (count,) = n
    if count == 0:
        raise InputError(f"{path}: no samples")
    labels = np.full(count, -1, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
    if len(labels) != count:
        raise InputError(f"{path}: {len(labels)} labels for {count} samples")
    return Inputs(labels, ("given",) * count, str(path), arrays=arrays)


def check_arrays(arrays: Mapping[str, np.ndarray], signature: Signature, what: str) -> dict[str, np.ndarray]:
    """Given arrays, checked against the signature: every input present, shapes that fit, dtypes cast."""
    missing = [n for n in signature.input_names if n not in arrays]
    if missing:
        raise InputError(f"{what}: no array for input {', '.join(missing)} (arrays: {', '.join(arrays) or 'none'})")
    out = {}
    for t in signature.inputs:
        a = np.asarray(arrays[t.name])
        want = t.shape if t.batched else (None, *t.shape)  # a leading axis of samples
        if a.ndim != len(want) or any(isinstance(d, int) and d != s for d, s in zip(want[1:], a.shape[1:])):
            raise InputError(f"{what}: {t.name} has shape {list(a.shape)}; the model takes "
                             f"[{', '.join(str(d) for d in t.shape)}]" + ("" if t.batched else " per sample"))
        if t.is_float != (a.dtype.kind == "f") and not (t.dtype == "bool" and a.dtype == bool):
            raise InputError(f"{what}: {t.name} holds {a.dtype}; the model takes {t.dtype}")
        out[t.name] = np.ascontiguousarray(a.astype(t.dtype, copy=False))
    return out


def load_image_folder(folder: str | Path, spec: ModelSpec | None) -> Inputs:
    """``--inputs FOLDER``: every PNG/JPEG in it, resized to the image input's HxW, channels as it takes."""
    from onnxparity.data.images import read_resized

    folder = Path(folder).expanduser()
    size = spec.image_size if spec is not None else None
    if size is None:
        raise InputError(f"{folder}: image files need a model whose spec describes an image input "
                         "(layout, shape, preprocessing); give arrays instead (--inputs FILE.npz)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"))
    if not files:
        raise InputError(f"{folder}: no PNG or JPEG files")
    h, w, c = size
    images = np.stack([read_resized(p, (h, w), c) for p in files]).astype(np.float32)
    if c == 1:
        images = images[..., 0]
    return Inputs(np.full(len(files), -1, np.int64), (IMAGE,) * len(files), str(folder), images=images)


def load_given(path: str | Path, signature: Signature | None, spec: ModelSpec | None) -> Inputs:
    """``--inputs``: a folder of images, or an .npz/.npy of arrays."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_image_folder(path, spec)
    return load_arrays(path, signature)


# -- feeding a model -------------------------------------------------------------------------------
def feeds(inputs: Inputs, spec: ModelSpec | None, signature: Signature | None = None, *,
          pixels_only: bool = False) -> dict[str, np.ndarray]:
    """``inputs`` as one model's named arrays: images preprocessed by its spec, arrays as given.

    ``pixels_only``: first round and clip raw values to whole pixels 0..255, for every backend of a
    model whose ONNX file takes raw uint8 pixels (preprocessing embedded in the graph), which cannot
    be fed the out-of-range edge cases as they are.
    """
    signature = signature or (spec.signature if spec else None)
    if inputs.arrays is not None:
        return check_arrays(inputs.arrays, signature, inputs.source) if signature else dict(inputs.arrays)
    if spec is None:
        raise InputError("these inputs are images, but the model has no spec saying how to preprocess them")
    images = np.clip(np.rint(inputs.images), 0, 255) if pixels_only else inputs.images
    name = (signature.inputs[0].name if signature and signature.inputs else None) or spec.input_name or "input"
    return {name: spec.preprocess(images)}


def prepare(inputs: Inputs, spec: ModelSpec | None, folder: str | Path, *, signature: Signature | None = None,
            pixels_only: bool = False) -> dict[str, str]:
    """Write ``inputs`` as fed to this model into ``folder`` (once per distinct preparation):
    input name -> ``.npy`` path."""
    key = _prep_key(inputs, spec, signature, pixels_only)
    target = Path(folder) / key
    index = target / "inputs.json"
    if index.is_file():
        return json.loads(index.read_text())
    target.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (name, array) in enumerate(feeds(inputs, spec, signature, pixels_only=pixels_only).items()):
        path = target / f"{i}.npy"
        np.save(path, array)
        paths[name] = str(path)
    index.write_text(json.dumps(paths))
    return paths


def _prep_key(inputs: Inputs, spec, signature, pixels_only: bool) -> str:
    if inputs.arrays is not None:
        sig = signature or (spec.signature if spec else None)
        fields = ("arrays", sig.to_dict() if sig else None)
    else:
        fields = (spec.layout, spec.input_shape, spec.scale, spec.mean, spec.std, spec.input_dtype, spec.input_name,
                  pixels_only)
    return "x-" + hashlib.sha1(repr(fields).encode()).hexdigest()[:12]


def open_feeds(paths: Mapping[str, str]) -> dict[str, np.ndarray]:
    """:func:`prepare`'s files, mapped read-only."""
    return {name: np.load(path, mmap_mode="r") for name, path in paths.items()}


# -- saved reference outputs ------------------------------------------------------------------------
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
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0][:120]})") from None
        outputs = {n: arrays[n] for n in signature.output_names if n in arrays}
        if not outputs:
            raise InputError(f"{path}: no array named after an output of the model ({', '.join(signature.output_names)})")
        inputs = check_arrays({n: arrays[n] for n in signature.input_names if n in arrays}, signature, str(path))
        return Inputs(np.full(len(next(iter(inputs.values()))), -1, np.int64),
                      ("given",) * len(next(iter(inputs.values()))), str(path), arrays=inputs), outputs
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
    return Inputs(np.full(n, -1, np.int64), ("given",) * n, str(path), arrays=inputs), outputs


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
