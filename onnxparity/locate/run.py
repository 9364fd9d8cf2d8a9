"""``locate``: run the original and its ONNX file side by side, layer by layer, and compare.

The original runs in a worker process of its own framework (:mod:`.capture_keras`,
:mod:`.capture_torch`); this process never imports TensorFlow or PyTorch. It runs ONNX Runtime
(the plain session on the file, ``make_session(..., tuned=False)``) on the cumulative and the
isolated model (:mod:`.graph`), and folds each batch into per-layer statistics
(:mod:`onnxparity.compare.streaming`) before the next batch is asked for, so memory holds one batch
of activations at a time. :func:`locate_failures` is ``check --locate``: it locates a file whose
parity check failed.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import onnxparity.locate.graph as onnx_graph
import onnxparity.locate.layout as layouts
import onnxparity.locate.match as match
from onnxparity import _process
from onnxparity.backends import reference_for
from onnxparity.compare import CONVERT_TOLERANCE
from onnxparity.compare import streaming as stats
from onnxparity.errors import InputError, OnnxParityError
from onnxparity.inputs import model_batch, release_pages
from onnxparity.locate.report import table, write_html
from onnxparity.locate.result import LayerResult, LocateResult

log = logging.getLogger(__name__)

ATOL, RTOL = CONVERT_TOLERANCE.atol, CONVERT_TOLERANCE.rtol  # atol scales with each layer's peak |value|
BATCH_SIZE = 32  # inputs per batch, unless one batch of every layer's output would pass LAYERS_BUDGET
LAYERS_BUDGET = 1 << 30  # bytes of layer outputs one batch may hold (float32), when --batch-size is not given
WORKERS = {"keras": "onnxparity.locate.capture_keras:KerasCapture",
           "torch": "onnxparity.locate.capture_torch:TorchCapture",
           "onnx": "onnxparity.locate.capture_onnx:OnnxCapture"}


def locate(original, onnx, *, data: str | None = None, n: int | None = None, inputs=None,
           batch_size: int | None = None, atol: float = ATOL, rtol: float = RTOL, json_path=None, html_path=None,
           timeout: float = 600, torch_class: str | None = None, torch_kwargs: dict | None = None,
           trust_recorded: bool = False, spec=None, input_shapes=None, int_range=None, input_roles=None,
           provider: str | None = None, max_memory: int | None = None) -> LocateResult:
    """Name the first layer where ``onnx`` departs from ``original`` (see docs/locate.md).

    ``original``: a checkpoint folder, ``.keras``/``.h5`` file, a PyTorch file (``.pth`` state dict with
    its class, ``.pt2``, TorchScript) or another ONNX file (an int8 or fp16 variant against its fp32
    source, node by node); ``onnx``: its ONNX file, from any exporter. ``provider`` (an ONNX Runtime
    execution provider such as ``cuda``) runs ``onnx`` there, its CPU run the reference (``original``
    None). Inputs: ``inputs`` (.npy/.npz), ``data`` (digits) or seeded samples in each input's domain;
    ``n`` of them (64 by default). ``torch_class`` and ``torch_kwargs`` rebuild a state dict; a recorded
    class or import only as :mod:`onnxparity.trust` allows. ``original`` may be a live ``keras.Model`` or
    ``torch.nn.Module`` (:mod:`onnxparity.models.live`). ``max_memory``: resident bytes the original's
    worker may hold (stopped and reported past it). ``batch_size``: inputs per batch; by default
    :data:`BATCH_SIZE`, fewer where one batch of every layer's output would pass :data:`LAYERS_BUDGET`.
    """
    from onnxparity.models.live import live_framework, save_live
    from onnxparity.trust import Trust

    if live_framework(original):  # a live keras.Model / torch.nn.Module: saved once for the worker
        from onnxparity.onnx_model import OnnxModel

        with tempfile.TemporaryDirectory(prefix="onnxparity-live-") as tmp:
            return locate(save_live(original, tmp, OnnxModel(onnx).signature), onnx, data=data, n=n, inputs=inputs,
                          batch_size=batch_size, atol=atol, rtol=rtol, json_path=json_path, html_path=html_path,
                          timeout=timeout, torch_class=torch_class, torch_kwargs=torch_kwargs,
                          trust_recorded=trust_recorded, spec=spec, input_shapes=input_shapes, int_range=int_range,
                          input_roles=input_roles, provider=provider, max_memory=max_memory)
    trust = Trust(torch_class, torch_kwargs, trust_recorded)
    started = time.perf_counter()
    if batch_size is not None and batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    framework, weights, spec, signature = _original(original, onnx, trust, spec, input_shapes)
    g = onnx_graph.load(onnx)
    x, source = model_batch(spec, signature, data=data, n=n, given=inputs, input_shapes=input_shapes,
                            int_range=int_range, input_roles=input_roles)
    x = {name: x[name] for name in g.inputs}
    probe = {k: v[:2] for k, v in x.items()}
    if framework == "onnx":
        args = (str(weights), probe)
        env = {}
    else:
        env = reference_for(framework).worker_env  # the original on the CPU, as parity's reference runs it
        args = (str(weights), probe) if framework == "keras" else \
            (str(weights), spec.architecture, probe, spec.torch_kwargs, trust.to_dict())
    count = len(next(iter(x.values())))
    with _process.Service(WORKERS[framework], *args, name=f"locate: {framework} original", env=env,
                          timeout=timeout, max_rss=max_memory) as worker, tempfile.TemporaryDirectory(prefix="onnxparity-locate-") as tmp:
        records = worker.call("records")
        owner = match.owners(g, records)
        rows, empty = match.rows(g, records, owner)
        if not rows:
            raise InputError(f"{onnx}: no node carries a name or scope of the original's layers; locate reads "
                             "tf2onnx's scopes, the torch.onnx exporters' names and metadata, and tensor names "
                             "shared by two ONNX files")
        run = _Run(g, records, rows, empty, framework, Path(tmp), atol, rtol, provider)
        fitted = fitting_batch(records)
        lowered = batch_size is None and fitted < BATCH_SIZE  # the layers' outputs are large
        batch_size = batch_size or fitted
        for start in range(0, count, batch_size):
            xb = {k: v[start:start + batch_size] for k, v in x.items()}
            run.batch(xb, worker.call("run", xb, run.wanted()), start)
            release_pages(*x.values())  # inputs on disk: hold one batch of them, not all read so far
    what = {"source": source, "n": count, "batch_size": batch_size, **({"provider": provider} if provider else {}),
            **({"batch_size_lowered": f"from {BATCH_SIZE}, to hold one batch of every layer's output within "
                                      f"{LAYERS_BUDGET >> 20} MiB"} if lowered else {})}
    result = run.result(str(original or onnx), str(onnx), what, round(time.perf_counter() - started, 2))
    if json_path:
        result.save(json_path)
    if html_path:
        write_html(html_path, result)
    return result


def fitting_batch(records: list[dict], budget: int = LAYERS_BUDGET) -> int:
    """:data:`BATCH_SIZE`, or fewer inputs where one batch of every layer's output (float32, from the
    shapes the probe batch gave) would hold more than ``budget`` bytes; at least 1."""
    per_sample = 4 * sum(math.prod(d for d in rec.get("shape") or () if d) for rec in records)
    return max(1, min(BATCH_SIZE, budget // max(1, per_sample)))


def locate_failures(parity_result, original, onnx, say=print, **options) -> LocateResult | None:
    """``check --locate``: locate the ONNX file when a comparison of it with its original failed.

    Only element-wise failures of ONNX Runtime candidates point at the file; a GPU backend of the
    original itself failing says nothing about it. Returns the result (None when nothing to locate).
    """
    failed = [c for c in parity_result.comparisons if not c.passed and c.candidate.startswith("onnxruntime")]
    if not failed:
        return None
    say(f"locating where {onnx} departs from {original} ({', '.join(c.candidate for c in failed)} failed) ...")
    try:
        result = locate(original, onnx, **options)
    except OnnxParityError as exc:  # locate's own trouble must not hide check's verdict
        say(f"locate: {exc}")
        return None
    say(table(result))
    return result


def _original(original, onnx, trust, given_spec=None, input_shapes=None):
    """(framework, weights path, spec, signature): what runs as the reference and how it is fed, as
    ``check`` describes the pair (:func:`onnxparity.parity.matrix.describe`: spec.json, the file's metadata,
    or the file's own signature for another exporter's file); recorded classes and imports allowed first."""
    from onnxparity.models import resolve
    from onnxparity.parity.matrix import Target, authorize, describe
    from onnxparity.spec import as_spec

    if original is None:  # one file on two providers: its own CPU run is the reference
        original = onnx
    target = Target(str(original), str(onnx), trust=trust, spec=None if given_spec is None else as_spec(given_spec),
                    input_shapes=input_shapes)
    d = describe(target)
    candidate = d.candidate_spec
    if candidate is not None and candidate.input_dtype == "uint8" and candidate.layout is not None:
        raise InputError(f"{onnx}: takes raw uint8 pixels (embedded preprocessing); locate the file converted "
                         "without --embed-preprocessing")
    if d.pair and d.framework != "onnx":
        raise InputError(f"{onnx} was not converted from {original} ({d.name}): locate matches a model's layers with "
                         "the nodes of its own ONNX file; compare other pairs with `onnxparity check A B`")
    authorize(target, d)
    ref = resolve(original)
    if ref.framework == "torch" and d.spec is not None and not d.spec.architecture and trust.torch_class is None:
        from onnxparity.models.torch_io import needs_class

        if needs_class(ref.path):
            raise InputError(f"{original}: a state dict, and nothing names its model class (spec.json's architecture); "
                             "pass --torch-class")
    return ref.framework, ref.path, d.spec, d.signature


class _Run:
    """The per-batch comparison: layouts and the isolated model are settled on the first batch."""

    def __init__(self, g, records, rows, empty, framework, tmp: Path, atol: float, rtol: float,
                 provider: str | None = None):
        from onnxparity.runners.sessions import make_session, provider_name

        self.g, self.records, self.rows, self.empty = g, records, rows, empty
        self.channels_last = framework == "keras"
        self.framework, self.tmp, self.atol, self.rtol = framework, tmp, atol, rtol
        self.anchors = [r.anchor for r in rows]
        path = onnx_graph.save(onnx_graph.cumulative_model(g, self.anchors), tmp / "cumulative.onnx")
        self.providers = [provider_name(provider)] if provider else None
        self.session = make_session(path, self.providers, tuned=False)
        self.input_names = list(g.inputs)
        self.layout: dict[int, layouts.Layout | None] = {}
        self.by_data: dict[int, bool] = {}
        self.onnx_shape: dict[int, list] = {}
        self.cum: dict[int, stats.ErrorStats | None] = {}
        self.iso: dict[int, stats.ErrorStats | None] = {}
        self.iso_session = None
        self.iso_parts: list[tuple[int, list[str]]] = []  # (row index, boundary tensors)
        self.iso_nodes: dict[int, set[int]] = {}
        self.notes: dict[int, str] = {}
        self.not_in_onnx: list[dict] = []
        self.first = True

    def wanted(self) -> list[int]:
        calls = {r.target for r in self.rows}
        if self.first:
            calls |= set(self.empty)
            for c in self.empty:
                calls |= {p for p in self.records[c]["inputs"] if p is not None and p >= 0}
        return sorted(calls)

    # -- one batch ------------------------------------------------------------------------------
    def batch(self, xb: dict[str, np.ndarray], original: dict[int, np.ndarray], offset: int) -> None:
        """One batch of inputs by name, with the original's outputs of the wanted calls."""
        values = dict(zip(self.anchors, self.session.run(self.anchors, xb)))
        if self.first:
            self._settle(xb, original, values)
        for k, row in enumerate(self.rows):
            lay = self.layout.get(k)
            if lay is None:
                continue
            ref = lay.to_onnx(original[row.target])
            self.cum[k] = stats.merge(self.cum.get(k), stats.batch_stats(ref, values[row.anchor], rtol=self.rtol,
                                                                         offset=offset))
        if self.iso_session is not None:
            self._isolated(xb, original, offset)

    def _isolated(self, xb, original, offset) -> None:
        feed = {}
        row_of_anchor = {row.anchor: k for k, row in enumerate(self.rows)}
        for _, boundary in self.iso_parts:
            for b in boundary:
                if b not in feed:
                    if b in xb:
                        feed[b] = xb[b]
                    else:
                        k = row_of_anchor[b]
                        feed[b] = np.ascontiguousarray(self.layout[k].to_onnx(original[self.rows[k].target]),
                                                       dtype=self.dtypes[b])
        outs = self.iso_session.run(self.iso_outputs, feed)
        for (k, _), out in zip(self.iso_parts, outs):
            row = self.rows[k]
            ref = self.layout[k].to_onnx(original[row.target])
            self.iso[k] = stats.merge(self.iso.get(k), stats.batch_stats(ref, out, rtol=self.rtol, offset=offset))

    # -- the first batch settles layouts, identities, fusions and the isolated model -----------
    def _settle(self, xb, original, values) -> None:
        self.first = False
        self.dtypes = {t: v.dtype for t, v in values.items()}
        for k, row in enumerate(self.rows):
            self.onnx_shape[k] = list(values[row.anchor].shape[1:])
            self.layout[k], self.by_data[k] = self._fit(row.call, values[row.anchor], xb, original)
            if self.layout[k] is None:
                self.notes[k] = (f"shape {list(original[row.call].shape[1:])} and ONNX shape {self.onnx_shape[k]} "
                                 "have no layout in common")
        identity = set()
        for c in self.empty:
            producers = [p for p in self.records[c]["inputs"] if p is not None]
            if len(producers) == 1 and c in original:
                before = self._input(xb, producers[0]) if producers[0] < 0 else original.get(producers[0])
                if before is not None and before.shape == original[c].shape and np.array_equal(before, original[c]):
                    identity.add(c)
        self._absorb_downstream(xb, original, values, identity)
        left = match.assign_covered(self.rows, self.records, self.empty, identity)
        self.not_in_onnx = [{"original_layer": self.records[item["call"]]["name"], "kind": self.records[item["call"]]["kind"],
                             "reason": item["reason"]} for item in left]
        self._build_isolated(xb)

    def _input(self, xb: dict[str, np.ndarray], producer: int) -> np.ndarray:
        """Model input ``k`` (a producer of ``-(k + 1)``)."""
        return xb[self.input_names[-producer - 1]]

    def _fit(self, call, value, xb, original):
        """The layout mapping ``call``'s output onto ``value`` (None when none fits), and whether data chose it."""
        producers = [p for p in self.records[call]["inputs"] if p is not None]
        producer_shape = None
        if len(producers) == 1:
            producer_shape = list(self._input(xb, producers[0]).shape[1:]) if producers[0] < 0 else \
                self.records[producers[0]]["shape"]
        options = layouts.candidates(list(original[call].shape[1:]), list(value.shape[1:]), producer_shape,
                                     self.channels_last)
        return layouts.choose(options, original[call], value) if options else (None, False)

    def _absorb_downstream(self, xb, original, values, identity) -> None:
        """A call with no nodes right after a row whose ONNX tensor is closer to that call's output
        than to the row's own (a BatchNorm or ReLU folded into the Conv before it, under the Conv's
        name): the row covers it and is compared with its output from then on. Closeness, not
        tolerance, decides, so that a folded layer with wrong weights is still seen as folded."""
        changed = True
        while changed:
            changed = False
            for c in [c for c in self.empty if c not in identity and c in original]:
                producers = [p for p in self.records[c]["inputs"] if p is not None]
                k = next((k for k, row in enumerate(self.rows) if producers == [row.target]), None)
                if k is None:
                    continue
                row, value = self.rows[k], values[self.rows[k].anchor]
                lay, by_data = self._fit(c, value, xb, original)
                if lay is None:
                    continue
                fused = stats.batch_stats(lay.to_onnx(original[c]), value, rtol=self.rtol)
                own = None if self.layout[k] is None else \
                    stats.batch_stats(self.layout[k].to_onnx(original[row.target]), value, rtol=self.rtol)
                if own is not None and own.sum_sq_err <= fused.sum_sq_err:
                    continue  # the row's own output is as close: nothing was folded into it
                row.covers.append(c)
                row.compare = c
                self.layout[k], self.by_data[k] = lay, by_data
                self.notes.pop(k, None)
                self.empty.remove(c)
                changed = True

    def _build_isolated(self, xb) -> None:
        from onnx import helper

        from onnxparity.runners.sessions import make_session

        feedable = {row.anchor for k, row in enumerate(self.rows) if self.layout.get(k) is not None}
        parts = []
        for k, row in enumerate(self.rows):
            if self.layout.get(k) is None:
                continue
            nodes, boundary = onnx_graph.walk_back(self.g, row.anchor, feedable - {row.anchor})
            if any(onnx_graph.has_subgraph(self.g.nodes[i]) for i in nodes):
                self.notes[k] = "isolated mode skipped: the layer's nodes hold subgraphs (If, Loop, Scan)"
                continue
            self.iso_nodes[k] = nodes
            parts.append((k, row.anchor, nodes, boundary))
        if not parts:
            return
        types = {t: helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(dt), None)
                 for t, dt in self.dtypes.items()}
        for name, x in xb.items():
            types[name] = helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(x.dtype), None)
        model, self.iso_outputs = onnx_graph.isolated_model(
            self.g, [(anchor, nodes, boundary) for _, anchor, nodes, boundary in parts], types)
        self.iso_parts = [(k, boundary) for k, _, _, boundary in parts]
        try:
            self.iso_session = make_session(onnx_graph.save(model, self.tmp / "isolated.onnx"), self.providers,
                                            tuned=False)
        except InputError as exc:
            log.warning("isolated mode unavailable: %s", exc)
            for k, *_ in parts:
                self.notes[k] = f"isolated mode unavailable: {exc}"
            self.iso_parts = []

    # -- the result -------------------------------------------------------------------------------
    def result(self, original: str, onnx: str, inputs: dict, seconds: float) -> LocateResult:
        names = [n.name or f"#{i} {n.op_type}" for i, n in enumerate(self.g.nodes)]
        layers = []
        for k, row in enumerate(self.rows):
            rec = self.records[row.target]
            iso_nodes = self.iso_nodes.get(k, set())
            layers.append(LayerResult(
                order=k, original_layer=row.name, path=row.path, kind=row.kind,
                onnx_nodes=[names[i] for i in row.nodes], onnx_tensor=row.anchor, shape=rec["shape"],
                onnx_shape=self.onnx_shape.get(k), layout=None if self.layout.get(k) is None else self.layout[k].name,
                layout_by_data=self.by_data.get(k, False), covers=[self.records[c]["name"] for c in row.covers],
                aliases=list(row.aliases), isolated_via=[names[i] for i in sorted(iso_nodes - set(row.nodes))],
                cumulative=stats.summarize(self.cum[k], atol=self.atol) if k in self.cum else None,
                isolated=stats.summarize(self.iso[k], atol=self.atol) if k in self.iso else None,
                note=self.notes.get(k)))
        return LocateResult(original=original, onnx=onnx, framework=self.framework, inputs=inputs,
                            tolerance={"atol": self.atol, "rtol": self.rtol, "atol_scaled_by": "max(1, peak |reference|)"},
                            layers=layers, not_in_onnx=self.not_in_onnx, first_divergence=first_divergence(layers),
                            seconds=seconds, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            worst=worst_isolated(layers))


def worst_isolated(layers: list[LayerResult], k: int = 5) -> list[dict]:
    """The ``k`` departing layers with the lowest isolated SQNR: where an int8 or fp16 variant (or another
    provider) loses the most by itself, which is what ranks its layers when every one of them departs."""
    scored = [layer for layer in layers if layer.isolated and not layer.isolated["within_tolerance"]
              and layer.isolated["sqnr_db"] is not None]
    return [{"original_layer": layer.original_layer, "kind": layer.kind, "sqnr_db": layer.isolated["sqnr_db"],
             "max_abs_diff": layer.isolated["max_abs_diff"]}
            for layer in sorted(scored, key=lambda layer: layer.isolated["sqnr_db"])[:k]]


def first_divergence(layers: list[LayerResult]) -> dict | None:
    """The first layer in execution order that departs by itself (isolated mode); failing that, the
    first that departs end to end, or has no layout in common with its ONNX tensor."""
    def entry(layer, mode):
        figures = getattr(layer, mode) if mode != "shape" else None
        return {"original_layer": layer.original_layer, "onnx_nodes": layer.onnx_nodes,
                "max_abs_diff": figures["max_abs_diff"] if figures else None, "mode": mode,
                "covers": layer.covers, "kind": layer.kind}

    for layer in layers:
        if layer.isolated is not None and not layer.isolated["within_tolerance"]:
            return entry(layer, "isolated")
    for layer in layers:
        if layer.layout is None:
            return entry(layer, "shape")
        if layer.cumulative is not None and not layer.cumulative["within_tolerance"]:
            return entry(layer, "cumulative")
    return None
