"""The quantize report: plain data (the fields docs/quantize.md describes), as JSON and as console lines."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from onnxparity import views


@dataclass
class QuantizeReport:
    written: bool  # the gate passed and the variant is at ``path``
    path: str  # where the variant is (or would have been) written
    variant: str  # "int8" or "fp16"
    top1_agreement: float | None  # None when no output holds class scores
    accuracy: dict | None  # {"fp32": x, "<variant>": y} on the held-out data; None without labels
    max_abs_diff: dict  # per output name, variant against fp32
    speedup: float | None  # the variant's images/s over fp32's at batch 64 on settings["speed_device"]
    images_per_second: dict  # {"cpu": {"1": {"fp32": x, "<variant>": y}, "64": {...}}, "cpu-plain": ..., "cuda": ...}
    excluded_nodes: list[str]  # layers kept in float (int8)
    settings: dict  # format, per_channel, reduce_range, calibration_method, calibration_fingerprint, gate...
    notes: list[str] = field(default_factory=list)  # gate refusals, "slower than fp32 here", skipped devices
    cosine: dict = field(default_factory=dict)  # per other float output: {"median", "lowest", "snr_db"}

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return views.to_json(self.to_dict())

    def save(self, path: str | Path) -> None:
        from onnxparity._io import write_text

        write_text(path, self.to_json())

    def summary(self) -> str:
        s = self.settings
        lines = [f"{self.variant} variant of {s['source']}: " + ("written to " + self.path if self.written
                                                                 else "NOT written (the gate refused it)")]
        if self.variant == "int8":
            lines.append(f"  {s['format']}, per channel {s['per_channel']}, reduce_range {s['reduce_range']} "
                         f"({s['cpu']}), {s['activation_type']}/{s['weight_type']}, calibration "
                         f"{s['calibration_method']} on {s['calibration_data']} ({s['calibration_fingerprint'][:12]})"
                         + (f"; only {', '.join(s['op_types'])} quantized" if s.get("op_types") else ""))
        acc = self.accuracy
        if self.top1_agreement is not None:
            lines.append(f"  on {s['held_out']}: top-1 agreement {self.top1_agreement:.2%} (at least "
                         f"{s['min_agreement']:.2%})" + ("" if acc is None else
                         f", accuracy fp32 {acc['fp32']:.4f} -> {self.variant} {acc[self.variant]:.4f} (drop at "
                         f"most {s['max_accuracy_drop']:.4f})"))
        for out, c in self.cosine.items():
            lines.append(f"  {out}: cosine median {c['median']:.4f}, lowest {c['lowest']:.4f} (at least "
                         f"{s['min_cosine_median']:g} and {s['min_cosine']:g}), SNR {c['snr_db']:.1f} dB "
                         f"(at least {s['min_snr_db']:g})")
        lines.append("  max abs diff: " + ", ".join(f"{k} {'-' if v is None else format(v, '.3g')}"
                                                    for k, v in self.max_abs_diff.items()))
        for kind, rows in self.images_per_second.items():
            if "skipped" in rows:
                continue
            cells = [f"batch {b}: fp32 {r['fp32']:,.0f}, {self.variant} {r[self.variant]:,.0f} images/s "
                     f"({r[self.variant] / r['fp32']:.2f}x)" for b, r in rows.items()]
            lines.append(f"  speed {kind}: " + "; ".join(cells))
        if self.excluded_nodes:
            lines.append(f"  kept in float: {', '.join(self.excluded_nodes)}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
