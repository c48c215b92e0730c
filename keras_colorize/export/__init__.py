"""Export: SavedModel, ONNX and `.keras` artefacts of any colorizer, and clients for them.

Names resolve lazily so that importing this package (the command line does) does
not import Keras.

Examples:
    >>> from keras_colorize.export import SavedModelColorizer, export_colorizer
    >>> info = export_colorizer(colorizer, "exported/colorizer")  # doctest: +SKIP
    >>> rgb = SavedModelColorizer("exported/colorizer").colorize(photo)  # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "FORMATS": "keras_colorize.export.core",
    "ExportError": "keras_colorize.export.core",
    "ExportInfo": "keras_colorize.export.core",
    "export_colorizer": "keras_colorize.export.core",
    "export_colorizers": "keras_colorize.export.core",
    "read_metadata": "keras_colorize.export.artefacts",
    "to_uint8_image": "keras_colorize.export.artefacts",
    "ColorizationPipeline": "keras_colorize.export.pipeline",
    "colorize_uint8": "keras_colorize.export.pipeline",
    "resize_images": "keras_colorize.export.pipeline",
    "SavedModelColorizer": "keras_colorize.export.saved_model",
    "OnnxColorizer": "keras_colorize.export.onnx",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_colorize.export' has no attribute {name!r}")


def __dir__():
    return __all__
