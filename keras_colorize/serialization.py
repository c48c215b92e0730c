"""Keras serialization of the package's classes: one package name for every registered object."""

import keras

PACKAGE = "keras_colorize"
"""The package name under which classes are registered (`"keras_colorize>ClassName"`)."""


def register(cls):
    """Register a class with Keras serialization under the package name.

    Args:
        cls: type. A Keras layer, model, loss or metric class.

    Returns:
        The class itself, registered.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
