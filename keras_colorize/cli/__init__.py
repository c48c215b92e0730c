"""The `keras-colorize` command line: fit, evaluate, colorize, export, convert, weights, models,
recipes, samples.

`app` holds the group and its commands, `common` what they share (backend choice,
options, exit codes), `export` and `weights` their commands. Importing this package
imports no Keras: `keras-colorize --help` and `keras-colorize recipes` stay fast.
"""

from keras_colorize.cli.app import cli, main
from keras_colorize.cli.common import (
    BACKENDS,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    check_model_argument,
    import_keras_quietly,
    select_backend,
)

__all__ = [
    "BACKENDS",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "check_model_argument",
    "cli",
    "import_keras_quietly",
    "main",
    "select_backend",
]
