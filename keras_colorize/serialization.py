"""Keras serialization of the package's classes: one package name for every registered object."""

import importlib

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


def import_config_modules(config):
    """Import the keras-colorize modules a serialized config names, registering their classes.

    A saved model's config records each object's `module`; importing those
    modules (and only those) before `keras.saving.deserialize_keras_object` or
    `load_model` makes the classes known without importing the whole package.
    A module this installation lacks is skipped (deserializing then names the
    class it cannot find).

    Args:
        config: dict or list. A serialized Keras object (nested).
    """
    modules = set()
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            module = node.get("module")
            if isinstance(module, str) and (module == PACKAGE or module.startswith(PACKAGE + ".")):
                modules.add(module)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    for module in sorted(modules):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
