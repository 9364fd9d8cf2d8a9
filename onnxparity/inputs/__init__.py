"""The one data loader: the inputs every backend sees, from one of five sources, and how each model is fed them.

- **Digits** (:mod:`.digits`, a digit model's default): real held-out digits of ``--data`` plus
  seeded edge cases, kept as raw pixels and preprocessed per model by its spec.
- **Synthesized** (:mod:`.synthetic`, any other model): seeded samples from the signature, plus
  edge cases per dtype.
- **Given** (:mod:`.files`, ``--inputs``): an ``.npz``/``.npy`` of arrays, or a folder of images.
- **Saved test data** (:mod:`.testdata`, ``--reference``): inputs with their expected outputs.
- **Calibration and held-out parts** (:mod:`.split`) for quantize.

:mod:`.choose` decides which source a model gets; an :class:`Inputs` holds either raw ``images``
or named ``arrays``, and :mod:`.feeding` turns it into one model's named arrays.
"""

from onnxparity.inputs.choose import choose, default_inputs, fixed_batch, model_batch, single_batch
from onnxparity.inputs.digits import load_digits_inputs
from onnxparity.inputs.feeding import feeds, open_feeds, prepare
from onnxparity.inputs.files import load_given
from onnxparity.inputs.samples import Inputs, release_pages
from onnxparity.inputs.split import CALIBRATION_SIZE, CalibrationSplit, calibration_split
from onnxparity.inputs.synthetic import DEFAULT_SAMPLES, sample_shapes, seeded_normal, synthesize
from onnxparity.inputs.testdata import load_reference

__all__ = [
    "CALIBRATION_SIZE", "DEFAULT_SAMPLES", "CalibrationSplit", "Inputs", "calibration_split", "choose",
    "default_inputs", "feeds", "fixed_batch", "model_batch", "load_digits_inputs", "load_given", "load_reference", "open_feeds",
    "prepare", "release_pages", "sample_shapes", "seeded_normal", "single_batch", "synthesize",
]
