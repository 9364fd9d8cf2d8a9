"""``onnxparity bench``: samples/s and latency of every backend, interleaved so the ratios hold.

``bench(models, BenchConfig(...))`` (:mod:`onnxparity.bench.run`) returns a :class:`BenchReport`
(plain data, ``to_dict()`` for JSON); :mod:`onnxparity.bench.report` renders it as text or
Markdown; :mod:`onnxparity.bench.variants` holds the ways of running a model that are timed, and
:mod:`onnxparity.bench.worker` what runs in each backend group's process.
"""

from onnxparity.bench.run import BenchConfig, BenchModel, BenchReport, bench, find_models

__all__ = ["bench", "BenchConfig", "BenchModel", "BenchReport", "find_models"]
