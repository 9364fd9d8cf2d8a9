"""``onnxparity bench``: samples/s and latency of every backend, interleaved so the ratios hold.

``bench(models, BenchConfig(...))`` (:mod:`onnxparity.bench.run`) returns a :class:`BenchReport`
(plain data, ``to_dict()`` for JSON); :mod:`onnxparity.bench.report` renders it as text or
Markdown; :mod:`onnxparity.bench.models` finds the models, :mod:`onnxparity.bench.results` turns
the timed rounds into rows and ratios, and :mod:`onnxparity.bench.worker` is what runs in each
framework's process. The backends and the ways each is timed come from :mod:`onnxparity.backends`.
"""

from onnxparity.bench.models import BenchModel, find_models
from onnxparity.bench.run import BenchConfig, BenchReport, bench

__all__ = ["bench", "BenchConfig", "BenchModel", "BenchReport", "find_models"]
