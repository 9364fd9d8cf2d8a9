"""The zoo: many models checked at once on a Ray cluster (or this machine), with reports that CI
systems read.

A manifest (:mod:`onnxparity.zoo.manifest`) lists the models with ``check``'s options; every entry
is validated before any work. Each model's matrix is one Ray task running
:func:`onnxparity.parity.check` (:mod:`onnxparity.zoo.run`), its backends on warm workers that keep
each framework loaded per node and device (:mod:`onnxparity.zoo.warm`). The result
(:mod:`onnxparity.zoo.results`) holds every model's parity result and its regressions against a
previous run; ``results.json``, JUnit XML, a Markdown summary and an HTML index are views of it
(:mod:`onnxparity.zoo.reports`).

    from onnxparity.zoo import Entry, check_zoo
    result = check_zoo([Entry("torch_net", "runs/torch.onnx", original="runs/torch", options={"n": 200})],
                       "zoo-results")
    result.passed, [(m.name, m.status) for m in result.models]
"""

from onnxparity.zoo.manifest import Entry
from onnxparity.zoo.manifest import load as load_manifest
from onnxparity.zoo.results import ModelRun, ZooResult
from onnxparity.zoo.run import check_zoo

__all__ = ["Entry", "ModelRun", "ZooResult", "check_zoo", "load_manifest"]
