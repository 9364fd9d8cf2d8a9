"""Locate's results as plain data: one :class:`LayerResult` per compared layer, saved as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from onnxparity import views


@dataclass
class LayerResult:
    """One original layer (call) against its ONNX tensor, in both modes (JSON: one item of ``layers``)."""

    order: int  # position in execution order among the compared layers
    original_layer: str  # Keras layer name or PyTorch module path (``#k`` for a module's k-th call)
    path: str  # nesting path (Keras: outer/inner/layer; PyTorch: the module path)
    kind: str  # the layer's class
    onnx_nodes: list[str]  # nodes owned by the layer (and the layers inside it)
    onnx_tensor: str  # the ONNX tensor compared
    shape: list  # the original's output shape per input
    onnx_shape: list | None
    layout: str | None  # how the original's tensor was mapped onto the ONNX one (None: no layout fits)
    layout_by_data: bool = False  # several layouts fitted the shapes; the first batch decided
    covers: list[str] = field(default_factory=list)  # layers with no node of their own, fused into this one
    aliases: list[str] = field(default_factory=list)  # calls with the same output (containers)
    isolated_via: list[str] = field(default_factory=list)  # other nodes the isolated copy runs (functional ops)
    cumulative: dict | None = None  # streaming.summarize(): max_abs_diff, max_rel_diff, sqnr_db, within_tolerance...
    isolated: dict | None = None
    note: str | None = None  # why a mode could not run

    @property
    def within_tolerance(self) -> bool:
        return all(m is None or m["within_tolerance"] for m in (self.cumulative, self.isolated)) and self.layout is not None

    @property
    def verdict(self) -> str:
        """``ok``; ``departs`` (wrong by itself, or no layout fits); ``inherits`` (only the error carried in)."""
        if self.layout is None or (self.isolated is not None and not self.isolated["within_tolerance"]):
            return "departs"
        if self.isolated is None and not self.within_tolerance:
            return "departs"
        return "ok" if self.within_tolerance else "inherits"


@dataclass
class LocateResult:
    original: str
    onnx: str
    framework: str
    inputs: dict  # source, n, batch_size
    tolerance: dict  # atol (scaled by each layer's peak |value|), rtol
    layers: list[LayerResult]
    not_in_onnx: list[dict]  # {"original_layer", "reason"}
    first_divergence: dict | None
    seconds: float
    created: str
    worst: list[dict] = field(default_factory=list)  # the layers that lose the most by themselves (isolated SQNR)

    @property
    def passed(self) -> bool:
        return all(layer.within_tolerance for layer in self.layers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        for layer, item in zip(self.layers, d["layers"]):
            item["within_tolerance"] = layer.within_tolerance
            item["verdict"] = layer.verdict
        return views.finite(d)

    def save(self, path: str | Path) -> Path:
        from onnxparity._io import write_text

        write_text(path, views.to_json(self.to_dict()))
        return Path(path)
