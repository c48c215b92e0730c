"""Metrics of the evaluation protocol, all comparing sRGB images in [0, 1].

Per-image functions (shape (N,) float32) and the `keras.metrics.Metric`
classes that average them over images: PSNR, SSIM, MAE on the 0-255 scale,
colourfulness and its gap to the ground truth, and CIEDE2000.
"""

from keras_colorize.metrics.color_difference import CIEDE2000, ciede2000, mean_ciede2000
from keras_colorize.metrics.image_quality import (
    MAE255,
    PSNR,
    SSIM,
    Colorfulness,
    ColorfulnessGap,
    colorfulness,
    colorfulness_gap,
    default_metrics,
    mean_absolute_error_255,
    psnr,
    ssim,
)

__all__ = [
    "CIEDE2000",
    "MAE255",
    "PSNR",
    "SSIM",
    "Colorfulness",
    "ColorfulnessGap",
    "ciede2000",
    "colorfulness",
    "colorfulness_gap",
    "default_metrics",
    "mean_absolute_error_255",
    "mean_ciede2000",
    "psnr",
    "ssim",
]
