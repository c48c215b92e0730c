"""Image files to batches: listing, decoding, filtering, resize/crop/flip, labels, instance boxes, sample photos.

File-level functions (`list_images`, `load_image`, `read_boxes`, ...) do not
import Keras; `ImageFolder`, `make_datasets` and the instance data sets do, and
are resolved on first use.

Examples:
    >>> from keras_colorize.data import make_datasets
    >>> train, val = make_datasets("samples", image_size=64, batch_size=4,
    ...                            validation_fraction=0.25)  # doctest: +SKIP
    >>> images = train[0]  # sRGB in [0, 1], float32, shape (4, 64, 64, 3)  # doctest: +SKIP
"""

import importlib

from keras_colorize.data.boxes import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MIN_SCORE,
    DEFAULT_MIN_VARIANCE,
    Box,
    InstanceBoxes,
    InstanceBoxesError,
    read_boxes,
    select_instances,
)
from keras_colorize.data.files import (
    IMAGE_EXTENSIONS,
    NoImagesError,
    SkippedImageWarning,
    UnreadableImageError,
    center_crop,
    is_grayscale,
    list_images,
    load_image,
    resize_short_side,
    split_files,
)
from keras_colorize.data.samples import SAMPLE_PHOTOS, sample_photo_paths, sample_photos

_LAZY = {
    "ImageFolder": "keras_colorize.data.dataset",
    "make_datasets": "keras_colorize.data.dataset",
    "holdout_files": "keras_colorize.data.dataset",
    "CACHE_LIMIT_BYTES": "keras_colorize.data.dataset",
    "InstanceImageFolder": "keras_colorize.data.instances",
    "InstanceCropFolder": "keras_colorize.data.instances",
    "make_instance_datasets": "keras_colorize.data.instances",
    "crop_instances": "keras_colorize.data.instances",
    "pack_instances": "keras_colorize.data.instances",
}

__all__ = sorted(
    [
        "Box",
        "DEFAULT_MAX_INSTANCES",
        "DEFAULT_MIN_SCORE",
        "DEFAULT_MIN_VARIANCE",
        "IMAGE_EXTENSIONS",
        "InstanceBoxes",
        "InstanceBoxesError",
        "NoImagesError",
        "SAMPLE_PHOTOS",
        "SkippedImageWarning",
        "UnreadableImageError",
        "center_crop",
        "is_grayscale",
        "list_images",
        "load_image",
        "read_boxes",
        "resize_short_side",
        "sample_photo_paths",
        "sample_photos",
        "select_instances",
        "split_files",
        *_LAZY,
    ]
)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_colorize.data' has no attribute {name!r}")


def __dir__():
    return __all__
