"""keras-hub, the source of pretrained backbones and object detectors: one way to import
and install it.

keras-hub is installed without its declared dependencies beside the pinned stack
(`KERAS_HUB_INSTALL`, see docs/install.md); everything that needs it imports it through
`import_keras_hub`, which turns its absence into a one-line error.
"""

import importlib.util

from keras_colorize.errors import UserInputError

KERAS_HUB_INSTALL = "pip install --no-deps keras-hub==0.32.0 && pip install kagglehub"
"""How to install keras-hub beside the pinned stack (see docs/install.md)."""


def import_keras_hub(purpose="keras-hub backbones"):
    """The keras_hub module (its TensorFlow start-up lines hidden).

    Args:
        purpose: str. What needs it, for the error message. Defaults to
            "keras-hub backbones".

    Raises:
        UserInputError: keras-hub is not installed; the message names the install command.
    """
    if importlib.util.find_spec("keras_hub") is None:
        raise UserInputError(f"{purpose} need keras-hub: {KERAS_HUB_INSTALL}")
    from keras_colorize.quiet_import import import_quietly

    return import_quietly("keras_hub")
