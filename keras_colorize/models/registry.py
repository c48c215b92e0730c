"""The model zoo: the Keras serialization registry, filtered to zoo classes.

A zoo class is registered once with `register_model`; `list_models()` and
`get_model()` read Keras's registry, so there is no second list to keep in sync.
"""

import keras

from keras_colorize.errors import UserInputError

PACKAGE = "keras_colorize"


def register(cls):
    """Register a class with Keras serialization under the package name."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def register_model(cls):
    """Register a zoo network (generator or critic): serializable, listed by `list_models()`."""
    cls.is_zoo_model = True
    return register(cls)


def _zoo():
    prefix = PACKAGE + ">"
    return {
        key[len(prefix):]: obj
        for key, obj in keras.saving.get_custom_objects().items()
        if key.startswith(prefix) and isinstance(obj, type) and obj.__dict__.get("is_zoo_model")
    }


def list_models():
    """Names of the registered zoo models, sorted.

    Example:
    >>> from keras_colorize.models import list_models
    >>> "UNetV1" in list_models()
    True
    """
    return sorted(_zoo())


def get_model_class(name):
    """The zoo class registered as `name`; a one-line error names the choices."""
    zoo = _zoo()
    if name not in zoo:
        raise UserInputError(f"unknown model {name!r} (available: {', '.join(sorted(zoo))})")
    return zoo[name]


def get_model(name, **kwargs):
    """Build the zoo model `name` with constructor arguments `kwargs`.

    Example:
    >>> from keras_colorize.models import get_model
    >>> model = get_model("UNetV2", encoder_filters=(8, 16), decoder_filters=(8,))
    """
    return get_model_class(name)(**kwargs)
