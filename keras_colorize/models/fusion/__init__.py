"""Instance-aware fusion: full-image and instance U-Nets blended by learned weight maps."""

from keras_colorize.models.fusion.fusion import (
    FusionColorizer,
    SimpleWeightModel,
    WeightMapNetwork,
    clone_generator,
)
from keras_colorize.models.fusion.placement import box_masks, interpolation_matrices, place_in_boxes, snap_boxes

__all__ = [
    "FusionColorizer",
    "SimpleWeightModel",
    "WeightMapNetwork",
    "box_masks",
    "clone_generator",
    "interpolation_matrices",
    "place_in_boxes",
    "snap_boxes",
]
