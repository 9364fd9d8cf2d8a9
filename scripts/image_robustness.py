"""How often the digit found in a photo-like picture is the clean drawing's, per case (tests/test_images.py).

    PYTHONPATH=. python scripts/image_robustness.py [N]

For the first N bundled held-out digits (default 500), each drawn large in ink on paper and then put
through each case, the share whose 28x28 result matches the clean drawing's (correlation > 0.9 at
the best 1-pixel shift), and the median time per picture.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from onnxparity.data import load_digits
from onnxparity.data.images import NoDigit, to_mnist
from tests.test_images import CASES, ink_on_paper, similarity


def main(n: int) -> None:
    digits = load_digits(None, "test").images[:n]
    pages = [ink_on_paper(d) for d in digits]
    clean = [to_mnist(p) for p in pages]
    print(f"{'case':45s} {'same digit':>10s} {'no digit':>9s} {'ms/picture':>11s}")
    for name, make in CASES.items():
        same, missing, times = 0, 0, []
        for page, want in zip(pages, clean):
            picture = make(page)
            started = time.perf_counter()
            try:
                got = to_mnist(picture)
            except NoDigit:
                missing += 1
                continue
            finally:
                times.append(time.perf_counter() - started)
            same += similarity(got, want) > 0.9
        print(f"{name:45s} {same / n:10.1%} {missing:9d} {1000 * np.median(times):11.2f}")
    raw = np.mean([similarity(to_mnist(d), d) > 0.9 for d in digits])
    print(f"{'MNIST digit itself (white on black, 28x28)':45s} {raw:10.1%}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
