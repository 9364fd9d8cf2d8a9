"""Training hyperparameters, with the article's values as a named preset.

The ``default`` presets differ from the article only where the bundled 4,500-digit training
part needs it: the article trains PyTorch for 3 epochs over 60,000 digits (2,800 steps); on
4,500 digits the same step count takes about 40 epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from onnxparity.errors import InputError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    test_batch_size: int = 1000
    learning_rate: float = 0.001
    momentum: float = 0.0
    seed: int = 1
    log_interval: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.test_batch_size < 1:
            raise InputError("epochs and batch sizes must be at least 1")

    def with_overrides(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS: dict[str, dict[str, TrainConfig]] = {
    "keras": {
        # Adam (Keras' default rate 0.001), categorical cross-entropy, batch 128, 10 epochs.
        "article": TrainConfig(epochs=10, batch_size=128, test_batch_size=128, seed=1),
        "default": TrainConfig(epochs=10, batch_size=128, test_batch_size=128, seed=1),
    },
    "torch": {
        # SGD lr 0.01 momentum 0.5, batch 64 (test 1000), 3 epochs, seed 1, log every 10 batches.
        "article": TrainConfig(epochs=3, batch_size=64, learning_rate=0.01, momentum=0.5, seed=1),
        "default": TrainConfig(epochs=40, batch_size=64, learning_rate=0.01, momentum=0.5, seed=1),
    },
}


def preset(framework: str, name: str = "default") -> TrainConfig:
    try:
        return PRESETS[framework][name]
    except KeyError:
        names = ", ".join(sorted(PRESETS.get(framework, {})))
        raise InputError(f"no preset {name!r} for {framework!r} (known: {names})") from None
