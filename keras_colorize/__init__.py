"""keras-colorize: automatic image colorization with Keras 3.

The public API is re-exported here. Names resolve lazily, so importing the
package (for example by the command line, which chooses the Keras backend
first) does not import Keras.

Examples:
    >>> import keras_colorize
    >>> "UNetV1" in keras_colorize.list_models()
    True
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Colorizer": "keras_colorize.colorizer",
    "gray_baseline": "keras_colorize.colorizer",
    "load_colorizer": "keras_colorize.loading",
    "list_models": "keras_colorize.models",
    "get_model": "keras_colorize.models",
    "UNetV1": "keras_colorize.models",
    "UNetV2": "keras_colorize.models",
    "rgb_to_lab": "keras_colorize.color",
    "lab_to_rgb": "keras_colorize.color",
    "rgb_to_model_inputs": "keras_colorize.color",
    "model_outputs_to_rgb": "keras_colorize.color",
    "ImageFolder": "keras_colorize.data",
    "make_datasets": "keras_colorize.data",
    "load_image": "keras_colorize.data",
    "sample_photos": "keras_colorize.data",
    "default_metrics": "keras_colorize.metrics",
    "load_checkpoint": "keras_colorize.loading",
    "ChromaGANGenerator": "keras_colorize.models",
    "PatchGANDiscriminator": "keras_colorize.models",
    "BackboneUNet": "keras_colorize.models",
    "GANTrainer": "keras_colorize.training",
    "WGANGPTrainer": "keras_colorize.training",
    "run_training": "keras_colorize.training",
}

# Subpackages, imported on first access (`keras_colorize.models.UNetV1` works
# without importing `keras_colorize.models` first).
SUBPACKAGES = (
    "color",
    "data",
    "evaluation",
    "export",
    "layers",
    "losses",
    "metrics",
    "models",
    "recipes",
    "training",
)

__all__ = sorted(_EXPORTS) + sorted(SUBPACKAGES) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in SUBPACKAGES:
        return importlib.import_module(f"keras_colorize.{name}")
    raise AttributeError(f"module 'keras_colorize' has no attribute {name!r}")


def __dir__():
    return __all__
