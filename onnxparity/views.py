"""What every report's views share: numbers as text, text tables, JSON, HTML pages on disk.

Parity, locate, quantize and the bench keep their results as plain data and render them here the
same way: a missing number is ``-``; a text table has its header, a rule and aligned columns (or
is Markdown); JSON holds only finite numbers, with NaN and infinities written as ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def num(x, fmt: str = "{:.1e}") -> str:
    """``x`` in ``fmt``; ``-`` for a number that is not there (None)."""
    return "-" if x is None else fmt.format(x)


def cosine_snr(cosine_min, cosine_median, snr_db) -> str:
    """A float output's cosine (lowest / median over the samples) and SNR, compactly: ``0.9912/0.9987 31 dB``;
    ``-`` where none was measured (integer and bool outputs, nothing compared)."""
    if cosine_min is None:
        return "-"
    snr = "exact" if snr_db is None or math.isinf(snr_db) and snr_db > 0 else f"{snr_db:.0f} dB"
    return f"{cosine_min:.4f}/{cosine_median:.4f} {snr}"


def text_table(header, rows, *, numbers_right: bool = False, markdown: bool = False) -> list[str]:
    """The lines of a table: the header, a rule, then one line per row, columns padded to their
    widest cell (``numbers_right``: every column after the first right-aligned); or Markdown."""
    if markdown:
        return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"] + \
               ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells) -> str:
        return "  ".join(str(c).rjust(w) if numbers_right and i else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def finite(value):
    """``value`` (dicts, lists, tuples of numbers...) with NaN and infinities as None: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def to_json(value, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (see :func:`finite`), ending in a newline."""
    return json.dumps(finite(value), indent=indent, allow_nan=False) + "\n"


def write_html(path: str | Path, page: str) -> Path:
    """Write an HTML page atomically; returns its path."""
    from onnxparity._io import write_text

    write_text(path, page)
    return Path(path)
