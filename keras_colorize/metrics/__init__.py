"""Metrics of the evaluation protocol, all comparing sRGB images in [0, 1].

Per-image functions (shape (N,) float32) and the `keras.metrics.Metric`
classes that average them over images: PSNR, SSIM, MAE on the 0-255 scale,
colourfulness and its gap to the ground truth, CIEDE2000 and LPIPS; and the
set metrics FID and KID with the FID Inception network. Pretrained weights are
converted once into `weights_cache_dir()` (see `keras_colorize.metrics.weights`).
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
from keras_colorize.metrics.fid import (
    FIDInceptionV3,
    FrechetInceptionDistance,
    KernelInceptionDistance,
    fid_inception_features,
    frechet_distance,
    kernel_inception_distance,
    load_fid_inception,
    polynomial_mmd2,
)
from keras_colorize.metrics.lpips import LPIPS, LPIPSLoss, LPIPSNetwork, load_lpips_network, lpips_distance
from keras_colorize.metrics.weights import (
    WeightsNotFoundError,
    convert_fid_inception_weights,
    convert_lpips_torch_weights,
    convert_lpips_weights,
    weights_cache_dir,
)

__all__ = [
    "CIEDE2000",
    "LPIPS",
    "MAE255",
    "PSNR",
    "SSIM",
    "Colorfulness",
    "ColorfulnessGap",
    "FIDInceptionV3",
    "FrechetInceptionDistance",
    "KernelInceptionDistance",
    "LPIPSLoss",
    "LPIPSNetwork",
    "WeightsNotFoundError",
    "ciede2000",
    "colorfulness",
    "colorfulness_gap",
    "convert_fid_inception_weights",
    "convert_lpips_torch_weights",
    "convert_lpips_weights",
    "default_metrics",
    "fid_inception_features",
    "frechet_distance",
    "kernel_inception_distance",
    "load_fid_inception",
    "load_lpips_network",
    "lpips_distance",
    "mean_absolute_error_255",
    "mean_ciede2000",
    "polynomial_mmd2",
    "psnr",
    "ssim",
    "weights_cache_dir",
]
