"""Keras <-> PyTorch through ONNX: ``migrate(source, "torch" | "keras", out)``, with parity on every leg.

See docs/migrate.md. The walk over the ONNX graph (:mod:`.walk`) plans the target model; the
writers (:mod:`.to_torch`, :mod:`.to_keras`) spell the plan out; :mod:`.pipeline` runs the legs.
"""

from onnxparity.migrate.pipeline import Leg, MigrateResult, migrate

__all__ = ["migrate", "MigrateResult", "Leg"]
