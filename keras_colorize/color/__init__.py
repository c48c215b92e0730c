"""Colour spaces: sRGB <-> CIE L*a*b* and the model-space normalisation."""

from keras_colorize.color.lab import (
    lab_to_rgb,
    model_outputs_to_rgb,
    rgb_to_lab,
    rgb_to_lightness,
    rgb_to_model_inputs,
)
from keras_colorize.color.normalization import (
    AB_SCALE,
    L_OFFSET,
    L_SCALE,
    denormalize_ab,
    denormalize_l,
    normalize_ab,
    normalize_l,
    split_lab,
)

__all__ = [
    "AB_SCALE",
    "L_OFFSET",
    "L_SCALE",
    "denormalize_ab",
    "denormalize_l",
    "lab_to_rgb",
    "model_outputs_to_rgb",
    "normalize_ab",
    "normalize_l",
    "rgb_to_lab",
    "rgb_to_lightness",
    "rgb_to_model_inputs",
    "split_lab",
]
