"""Training: runs from recipes (run directory, resume), callbacks, adversarial trainers.

Names resolve lazily so that importing this package does not import Keras.

Examples:
    >>> from keras_colorize.training import run_training
    >>> run_dir = run_training("quickstart", overrides=["train.epochs=1"])  # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "AdversarialTrainer": "keras_colorize.training.gan",
    "GANTrainer": "keras_colorize.training.gan",
    "WGANGPTrainer": "keras_colorize.training.gan",
    "input_gradients": "keras_colorize.training.gradients",
    "value_and_gradients": "keras_colorize.training.gradients",
    "AtomicCheckpoint": "keras_colorize.training.callbacks",
    "LossCurve": "keras_colorize.training.callbacks",
    "SampleGrid": "keras_colorize.training.callbacks",
    "TerminateOnNonFinite": "keras_colorize.training.callbacks",
    "atomic_file": "keras_colorize.atomic_files",
    "read_history": "keras_colorize.training.callbacks",
    "write_json_atomic": "keras_colorize.atomic_files",
    "RunDirectoryError": "keras_colorize.training.run",
    "TrainingDivergedError": "keras_colorize.training.run",
    "environment_info": "keras_colorize.training.run",
    "read_state": "keras_colorize.training.run",
    "run_training": "keras_colorize.training.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_colorize.training' has no attribute {name!r}")


def __dir__():
    return __all__
