"""The model zoo: the Keras serialization registry, filtered to zoo classes.

A zoo class is registered once with `register_model`; `list_models()` and
`get_model()` read Keras's registry, so there is no second list to keep in sync.
"""

import warnings

import keras

from keras_colorize.errors import UserInputError
from keras_colorize.serialization import PACKAGE, register


ROLES = ("generator", "discriminator", "fusion")
_OLD_ROLES = {"critic": "discriminator"}  # deprecated name -> role


def _role(role):
    if role in _OLD_ROLES:
        warnings.warn(f"role {role!r} is deprecated; use {_OLD_ROLES[role]!r}", DeprecationWarning, stacklevel=3)
        return _OLD_ROLES[role]
    return role


def register_model(cls=None, role="generator"):
    """Register a zoo network: serializable, listed by `list_models()`.

    Use as `@register_model` (a generator: model-space L -> ab),
    `@register_model(role="discriminator")` (L and ab -> patch scores) or
    `@register_model(role="fusion")` (L, instance crops and boxes -> ab).

    Args:
        cls: type or None. The class, when used without arguments. Defaults to None.
        role: "generator", "discriminator" or "fusion". What a recipe may use the
            class as. Defaults to "generator".

    Returns:
        The class itself (registered), or a decorator when `cls` is None.
    """
    role = _role(role)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")

    def decorate(cls):
        cls.is_zoo_model = True
        cls.zoo_role = role
        return register(cls)

    return decorate if cls is None else decorate(cls)


def _zoo():
    prefix = PACKAGE + ">"
    return {
        key[len(prefix):]: obj
        for key, obj in keras.saving.get_custom_objects().items()
        if key.startswith(prefix) and isinstance(obj, type) and obj.__dict__.get("is_zoo_model")
    }


def list_models(role=None):
    """Names of the registered zoo models, sorted.

    Args:
        role: "generator", "discriminator", "fusion" or None (all). Defaults to None.

    Examples:
        >>> from keras_colorize.models import list_models
        >>> "UNetV1" in list_models()
        True
    """
    role = None if role is None else _role(role)
    return sorted(name for name, cls in _zoo().items() if role is None or cls.zoo_role == role)


def get_model_class(name):
    """The zoo class registered as `name`.

    Args:
        name: str. A name from `list_models()`.

    Returns:
        The registered `keras.Model` subclass.

    Raises:
        UserInputError: unknown name (the one-line message lists the zoo).
    """
    zoo = _zoo()
    if name not in zoo:
        raise UserInputError(f"unknown model {name!r} (available: {', '.join(sorted(zoo))})")
    return zoo[name]


def get_model(name, **kwargs):
    """Build the zoo model `name` with constructor arguments `kwargs`.

    Args:
        name: str. A name from `list_models()`.
        **kwargs: constructor arguments of the class.

    Returns:
        The model, a new `keras.Model`.

    Raises:
        UserInputError: unknown name.

    Examples:
        >>> from keras_colorize.models import get_model
        >>> model = get_model("UNetV2", encoder_filters=(8, 16), decoder_filters=(8,))
    """
    return get_model_class(name)(**kwargs)
