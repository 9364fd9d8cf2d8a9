"""The article's Keras CNN, trained natively with ``compile`` + ``fit``.

Checkpoint folder: ``model.keras`` (weights and optimizer state, so training can resume),
optionally the article's ``model.h5``, ``spec.json`` and ``history.json`` (epochs done, metrics).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from onnxparity._io import atomic_path, write_text
from onnxparity.data import Digits, load_digits
from onnxparity.errors import InputError, first_line
from onnxparity.models import checkpoint
from onnxparity.models.config import TrainConfig, preset
from onnxparity.signature import BATCH, Signature, TensorSpec
from onnxparity.spec import ModelSpec

# TensorFlow's C++ start-up chatter is noise to users; warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL_FILE = "model.keras"
H5_FILE = "model.h5"

SPEC = ModelSpec(name="keras_cnn", framework="keras", input_shape=(28, 28, 1), layout="NHWC",
                 scale=1.0 / 255.0, output="probabilities",
                 signature=Signature((TensorSpec("input", "float32", (BATCH, 28, 28, 1)),),
                                     (TensorSpec("probabilities", "float32", (BATCH, 10)),)))


def build():
    """Conv2D(32,3,relu), Conv2D(64,3,relu), MaxPooling2D(2), Dropout(0.25), Flatten,
    Dense(128,relu), Dropout(0.5), Dense(10,softmax): the article's model, layer for layer."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=SPEC.input_shape, name="input"),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ],
        name=SPEC.name,
    )
    return model


def compile_model(model, config: TrainConfig) -> None:
    import keras

    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        metrics=["accuracy"],
    )


def keras_view(digits: Digits) -> tuple[np.ndarray, np.ndarray]:
    """The article's Keras inputs: NHWC float32 x/255 and one-hot labels."""
    import keras

    x = SPEC.preprocess(digits.images)
    y = keras.utils.to_categorical(digits.labels, 10)
    return x, y


class SavedModel:
    """A TensorFlow SavedModel folder through its ``serving_default`` signature (no Python code runs),
    with the two things the Keras runner asks of a model: ``predict_on_batch`` and the input shape."""

    def __init__(self, path: Path):
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(path))
            self._signature = self._loaded.signatures["serving_default"]
        except KeyError:
            raise InputError(f"{path}: the SavedModel has no serving_default signature") from None
        except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad folder
            raise InputError(f"{path}: cannot load as a SavedModel ({type(exc).__name__})") from None
        _, kwargs = self._signature.structured_input_signature
        if len(kwargs) != 1:
            raise InputError(f"{path}: the serving signature takes {len(kwargs)} inputs; only one-input models run")
        (self._arg, spec), = kwargs.items()
        self.name = path.name
        self.sample_shape = tuple(spec.shape[1:])

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        outputs = self._signature(**{self._arg: tf.constant(x)})
        return np.asarray(outputs[sorted(outputs)[0]])


def load(path: str | Path):
    """Load a ``.keras`` / ``.h5`` file (or a checkpoint folder) with Keras' safe mode on, or a SavedModel
    folder; the modules named with ``--import`` (custom layers) first."""
    import keras

    from onnxparity._process import import_requested

    import_requested()
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return SavedModel(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise InputError(f"{path}: no such Keras model file")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file
        if "safe_mode" in str(exc) or "arbitrary code" in str(exc):
            raise InputError(f"{path}: Keras safe mode refused to load it: it carries Python code (such as a "
                             "Lambda layer's function); convert it from Python with a model you built yourself") from None
        custom = any(w in str(exc) for w in ("Could not locate", "could not be deserialized", "Unknown layer"))
        hint = "; if it has custom layers, pass --import MODULE, the module that registers them" if custom else ""
        raise InputError(f"{path}: cannot load as a Keras model ({first_line(exc)}){hint}") from None


def fit_verbosity(verbose: str | int) -> str | int:
    """Keras' per-step progress bar on a terminal, one line per epoch where output is a log or a pipe
    (``"auto"``); anything else as given."""
    import sys

    return (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose


def train(out_dir: str | Path, data: str | None = None, epochs: int | None = None, preset_name: str = "default",
          resume: bool = False, save_h5: bool = False, n_train: int | None = None, verbose: str | int = "auto") -> dict:
    """Train (or resume) the Keras CNN into ``out_dir``; returns a summary with test accuracy.

    The checkpoint is saved at the end of every epoch (:mod:`onnxparity.models.checkpoint`), so
    an interrupt keeps the finished epochs and ``resume`` continues from them.
    """
    out = Path(out_dir)
    # Arguments and data are checked before TensorFlow loads, so a bad one costs no start-up.
    config = preset("keras", preset_name)
    done, to_run = checkpoint.start(out, MODEL_FILE, resume, epochs, config.epochs)
    config = config.with_overrides(epochs=to_run)
    train_digits = load_digits(data, "train").head(n_train)
    test_digits = load_digits(data, "test")
    import keras

    x_train, y_train = keras_view(train_digits)
    x_test, y_test = keras_view(test_digits)

    keras.utils.set_random_seed(config.seed)
    model = load(out / MODEL_FILE) if resume else build()
    if not resume:
        compile_model(model, config)
    planned = done + config.epochs
    summary = {"framework": "keras", "checkpoint": str(out / MODEL_FILE), "epochs_done": done,
               "epochs_planned": planned, "train_digits": len(train_digits), "test_digits": len(test_digits),
               "config": config.__dict__}
    started = time.perf_counter()

    def save(epoch: int, logs: dict) -> None:
        def write_weights() -> None:
            with atomic_path(out / MODEL_FILE) as tmp:
                model.save(tmp)

        summary.update(epochs_done=epoch + 1, test_loss=float(logs.get("val_loss", float("nan"))),
                       test_accuracy=float(logs.get("val_accuracy", float("nan"))),
                       train_seconds=round(time.perf_counter() - started, 2))
        checkpoint.save_epoch(out, write_weights, SPEC.with_classes(train_digits.class_names), summary)

    try:
        model.fit(x_train, y_train, batch_size=config.batch_size, epochs=planned, initial_epoch=done,
                  verbose=fit_verbosity(verbose), validation_data=(x_test, y_test),
                  callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=save)])
    except KeyboardInterrupt as exc:
        raise checkpoint.interrupted(exc, out, "keras", summary["epochs_done"], planned) from None
    seconds = time.perf_counter() - started
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=config.test_batch_size, verbose=0)
    if save_h5:
        with atomic_path(out / H5_FILE) as tmp:
            model.save(tmp)
    summary.update(test_loss=float(loss), test_accuracy=float(accuracy), train_seconds=round(seconds, 2))
    write_text(out / checkpoint.HISTORY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def train_from(src: str | Path, out: str | Path, data: str | None = None, epochs: int | None = None,
               preset_name: str = "default", n_train: int | None = None, verbose: str | int = "auto") -> dict:
    """Continue training any Keras checkpoint folder (a migrated one too) with ``fit``.

    A model saved compiled keeps its optimizer and state; one saved without (a migrated model) is
    compiled as the reference is, with Adam at the preset's rate and the cross-entropy that fits its
    output kind. Inputs go through the spec's own preprocessing; ``epochs`` defaults to 1.
    """
    from onnxparity._io import atomic_dir

    src, out = Path(src), Path(out)
    spec = ModelSpec.load(src)
    config = preset("keras", preset_name).with_overrides(epochs=epochs or 1)
    train_digits, test_digits = load_digits(data, "train").head(n_train), load_digits(data, "test")
    import keras

    model = load(src / MODEL_FILE)
    if len(model.outputs) != 1 or model.outputs[0].shape[-1] != len(spec.labels) or len(model.outputs[0].shape) != 2:
        raise InputError(f"{spec.name}: train continues single-output classifiers of {len(spec.labels)} classes; "
                         "this model returns something else")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        # Softmax of log-probabilities gives the probabilities back, so from_logits fits both.
        loss = (keras.losses.CategoricalCrossentropy() if spec.output == "probabilities"
                else keras.losses.CategoricalCrossentropy(from_logits=True))
        model.compile(loss=loss, optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                      metrics=["accuracy"])
    x_train, y_train = spec.preprocess(train_digits.images), keras.utils.to_categorical(train_digits.labels, 10)
    x_test, y_test = spec.preprocess(test_digits.images), keras.utils.to_categorical(test_digits.labels, 10)
    done = 0
    if (src / checkpoint.HISTORY_FILE).is_file():
        done = int(json.loads((src / checkpoint.HISTORY_FILE).read_text()).get("epochs_done", 0))

    keras.utils.set_random_seed(config.seed + done)
    started = time.perf_counter()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=done + config.epochs, initial_epoch=done,
              verbose=fit_verbosity(verbose), validation_data=(x_test, y_test))
    seconds = time.perf_counter() - started
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=config.test_batch_size, verbose=0)
    summary = {
        "framework": "keras", "from": str(src), "checkpoint": str(out / MODEL_FILE), "epochs_done": done + config.epochs,
        "train_digits": len(train_digits), "test_digits": len(test_digits), "test_loss": float(loss),
        "test_accuracy": float(accuracy), "train_seconds": round(seconds, 2), "config": config.__dict__,
    }
    with atomic_dir(out) as folder:
        model.save(folder / MODEL_FILE)
        spec.save(folder)
        write_text(folder / checkpoint.HISTORY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary
