"""What the commands share: the backend choice, the common options, exit codes, path checks.

Nothing here imports Keras: the backend is chosen before Keras is imported.
"""

import os
import sys
from pathlib import Path

import click

from keras_colorize.errors import UserInputError

BACKENDS = ("tensorflow", "jax", "torch")
KERAS_ONLY_BACKENDS = ("numpy", "openvino")  # inference-only Keras backends (KERAS_BACKEND only)

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


# ----------------------------------------------------------------------------- backend


def select_backend(backend):
    """Make `backend` the Keras backend of this process, before Keras is imported.

    Args:
        backend: str or None. "tensorflow", "jax" or "torch"; None keeps
            `KERAS_BACKEND` (Keras's own default when unset).

    Raises:
        UserInputError: Keras is already imported with another backend.
    """
    if backend is None:
        configured = os.environ.get("KERAS_BACKEND")
        if configured and configured not in BACKENDS + KERAS_ONLY_BACKENDS and "keras" not in sys.modules:
            raise UserInputError(
                f"KERAS_BACKEND={configured} is not a Keras backend (use one of: {', '.join(BACKENDS)})"
            )
        return
    if "keras" in sys.modules:
        keras = sys.modules["keras"]
        current = keras.backend.backend() if hasattr(keras, "backend") else os.environ.get("KERAS_BACKEND")
        if current != backend:
            raise UserInputError(
                f"Keras is already imported with the {current} backend; cannot switch to {backend} "
                f"in this process (set KERAS_BACKEND={backend} before starting Python)"
            )
        return
    os.environ["KERAS_BACKEND"] = backend


def import_keras_quietly():
    """Import Keras (and so the backend library) with TensorFlow's C++ start-up lines hidden."""
    from keras_colorize.quiet_import import import_quietly

    import_quietly("keras")


def backend_option(function):
    """The `--backend` option of a command (the same choices and help everywhere)."""
    return click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default=None,
        help="Keras backend for this command (default: KERAS_BACKEND, else tensorflow).",
    )(function)


def overwrite_option(help_text):
    """The `--overwrite` flag of a command that writes files (`--force` is its old name on `export`)."""

    def decorate(function):
        return click.option("--overwrite", is_flag=True, help=help_text)(function)

    return decorate


def size_option(default_text, minimum=8, extra=""):
    """The `--size` option: the side in pixels of the square the model runs at, everywhere."""

    def decorate(function):
        return click.option(
            "--size",
            type=click.IntRange(min=minimum),
            default=None,
            help=f"Side in pixels of the square the model runs at{extra} (default: {default_text}).",
        )(function)

    return decorate


def check_model_argument(path, exported=False):
    """A one-line error unless `path` is a checkpoint file or a preset (built-in name or folder).

    With `exported`, a folder (a SavedModel or an InstructPix2Pix preset) is accepted too.
    """
    from keras_colorize.presets import is_preset

    if not (Path(path).is_file() or is_preset(path) or (exported and Path(path).is_dir())):
        raise UserInputError(f"{path}: checkpoint not found (nor a preset: keras-colorize models lists the built-in ones)")


def refuse_existing(paths, overwrite):
    """A one-line error for the first of `paths` that exists, unless `overwrite`."""
    if overwrite:
        return
    for path in paths:
        if Path(path).exists():
            raise UserInputError(f"{path}: already exists; pass --overwrite to replace it, or choose another -o")


