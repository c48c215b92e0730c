"""Image-quality metrics in sRGB: PSNR, SSIM, MAE on the 0-255 scale and colourfulness.

Every function takes batches of sRGB images in [0, 1] of shape `(N, H, W, 3)`
(channels last, any float dtype) and returns one float32 value per image, shape
`(N,)`. Every `keras.metrics.Metric` here reports the mean of those per-image
values over all the images it has seen (weighted by `sample_weight` when given).
Maths runs in float32 whatever the input dtype.
"""

from keras import ops

from keras_colorize.metrics._common import ImageMetric, check_rgb_batch, prepare_pair
from keras_colorize.metrics.color_difference import CIEDE2000
from keras_colorize.serialization import register

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
# PSNR of identical images: the MSE is floored at this fraction of max_val**2,
# so a perfect image scores 100 dB instead of infinity and batch means stay finite.
PSNR_MSE_FLOOR = 1e-10


def psnr(y_true, y_pred, max_val=1.0):
    """Peak signal-to-noise ratio per image, in dB.

    The MSE runs over all pixels and channels of an image. Identical images give
    100 dB (the MSE is floored at `1e-10 * max_val**2`) where scikit-image's
    `peak_signal_noise_ratio` gives infinity; any real difference (above about
    1e-5 per pixel) gives the same value as scikit-image.

    Args:
        y_true: tensor. Reference images, sRGB in [0, max_val], shape (N, H, W, 3).
        y_pred: tensor. Compared images, sRGB in [0, max_val], shape (N, H, W, 3).
        max_val: float. The data range of the images. Defaults to 1.0.

    Returns:
        float32 tensor of shape (N,): PSNR of each image in dB, at most 100.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.metrics import psnr
        >>> values = psnr(np.zeros((1, 8, 8, 3)), np.full((1, 8, 8, 3), 0.1))  # 20 dB
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    mse = ops.mean(ops.square(y_true - y_pred), axis=(1, 2, 3))
    peak = float(max_val) ** 2
    mse = ops.maximum(mse, PSNR_MSE_FLOOR * peak)
    return ops.cast(10.0 * ops.log10(peak / mse), "float32")


def ssim(y_true, y_pred, max_val=1.0):
    """Structural similarity per image (Wang et al., 2004), on the RGB channels.

    Gaussian 11x11 window with sigma 1.5, population covariances, K1 = 0.01,
    K2 = 0.03, averaged over the valid region (the 5-pixel border is left out)
    and over the three channels: the definition of scikit-image's
    `structural_similarity(..., channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)`, computed with
    `keras.ops.image.ssim`.

    Args:
        y_true: tensor. Reference images, sRGB in [0, max_val], shape (N, H, W, 3)
            with H, W >= 11.
        y_pred: tensor. Compared images, sRGB in [0, max_val], shape (N, H, W, 3).
        max_val: float. The data range of the images. Defaults to 1.0.

    Returns:
        float32 tensor of shape (N,): SSIM of each image, 1 for identical images.

    References:
        Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from
        error visibility to structural similarity", IEEE TIP 13(4), 2004.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred, min_size=SSIM_FILTER_SIZE)
    values = ops.image.ssim(
        y_true,
        y_pred,
        max_val=float(max_val),
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
        data_format="channels_last",
    )
    return ops.cast(values, "float32")


def mean_absolute_error_255(y_true, y_pred):
    """Mean absolute error per image on the 0-255 scale.

    Args:
        y_true: tensor. Reference images, sRGB in [0, 1], shape (N, H, W, 3).
        y_pred: tensor. Compared images, sRGB in [0, 1], shape (N, H, W, 3).

    Returns:
        float32 tensor of shape (N,): mean |y_true - y_pred| * 255 over the pixels
        and channels of each image.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    return ops.cast(255.0 * ops.mean(ops.abs(y_true - y_pred), axis=(1, 2, 3)), "float32")


def colorfulness(images, floor=0.0):
    """Colourfulness per image (Hasler and Suesstrunk, 2003), on the 0-255 scale.

    With R, G, B on the 0-255 scale, rg = R - G and yb = (R + G) / 2 - B, the
    colourfulness is `sqrt(std_rg**2 + std_yb**2) + 0.3 * sqrt(mean_rg**2 +
    mean_yb**2)`, with population standard deviations over the pixels. A gray
    image scores 0; natural photos score about 15 to 110.

    Args:
        images: tensor. sRGB in [0, 1], shape (N, H, W, 3), any float dtype.
        floor: float. Lower bound of the squared terms under the square roots
            (0-255 scale); a small positive value keeps gradients finite at gray
            images (training losses). Defaults to 0.0 (the exact measure).

    Returns:
        float32 tensor of shape (N,): the colourfulness of each image.

    References:
        Hasler and Suesstrunk, "Measuring colourfulness in natural images",
        Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003.
    """
    images = ops.convert_to_tensor(images)
    check_rgb_batch("images", images)
    images = 255.0 * ops.cast(images, "float32")
    red, green, blue = images[..., 0], images[..., 1], images[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = ops.sqrt(ops.maximum(ops.var(rg, axis=(1, 2)) + ops.var(yb, axis=(1, 2)), floor))
    mean_rg = ops.mean(rg, axis=(1, 2))
    mean_yb = ops.mean(yb, axis=(1, 2))
    offset = ops.sqrt(ops.maximum(ops.square(mean_rg) + ops.square(mean_yb), floor))
    return ops.cast(spread + 0.3 * offset, "float32")


def colorfulness_gap(y_true, y_pred):
    """Absolute colourfulness difference per image, |C(y_pred) - C(y_true)|.

    Args:
        y_true: tensor. Reference images, sRGB in [0, 1], shape (N, H, W, 3).
        y_pred: tensor. Compared images, sRGB in [0, 1], shape (N, H, W, 3).

    Returns:
        float32 tensor of shape (N,), on the colourfulness scale of `colorfulness`.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    return ops.abs(colorfulness(y_pred) - colorfulness(y_true))


def _prediction_colorfulness(y_true, y_pred):
    del y_true
    return colorfulness(y_pred)


@register
class PSNR(ImageMetric):
    """Mean PSNR over images, in dB (data range 1, see `psnr`; higher is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3) and an optional per-image weight of shape (N,).

    Args:
        name: str. Name of the metric. Defaults to "psnr".
        dtype: str. Dtype of the result. Defaults to None (floatx).

    Examples:
        >>> from keras_colorize.metrics import PSNR
        >>> metric = PSNR()
    """

    def __init__(self, name="psnr", dtype=None):
        super().__init__(psnr, name=name, dtype=dtype, direction="up")


@register
class SSIM(ImageMetric):
    """Mean SSIM over images (Gaussian window, sigma 1.5, on RGB; higher is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3), H and W at least 11.

    Args:
        name: str. Name of the metric. Defaults to "ssim".
        dtype: str. Dtype of the result. Defaults to None (floatx).
    """

    def __init__(self, name="ssim", dtype=None):
        super().__init__(ssim, name=name, dtype=dtype, direction="up")


@register
class MAE255(ImageMetric):
    """Mean absolute error on the 0-255 scale, averaged over images (lower is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3).

    Args:
        name: str. Name of the metric. Defaults to "mae".
        dtype: str. Dtype of the result. Defaults to None (floatx).
    """

    def __init__(self, name="mae", dtype=None):
        super().__init__(mean_absolute_error_255, name=name, dtype=dtype, direction="down")


@register
class Colorfulness(ImageMetric):
    """Mean colourfulness (Hasler and Suesstrunk) of the predicted images.

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3); only `y_pred` is measured. Neither higher nor
    lower is better by itself (compare with `ColorfulnessGap`), so callbacks that
    monitor it need an explicit `mode`.

    Args:
        name: str. Name of the metric. Defaults to "colorfulness".
        dtype: str. Dtype of the result. Defaults to None (floatx).
    """

    def __init__(self, name="colorfulness", dtype=None):
        super().__init__(_prediction_colorfulness, name=name, dtype=dtype)


@register
class ColorfulnessGap(ImageMetric):
    """Mean over images of |C(y_pred) - C(y_true)|, the colourfulness gap (lower is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3).

    Args:
        name: str. Name of the metric. Defaults to "colorfulness_gap".
        dtype: str. Dtype of the result. Defaults to None (floatx).
    """

    def __init__(self, name="colorfulness_gap", dtype=None):
        super().__init__(colorfulness_gap, name=name, dtype=dtype, direction="down")


def default_metrics():
    """Fresh instances of the six sRGB metrics of the evaluation protocol.

    Returns:
        list of `keras.metrics.Metric`: PSNR, SSIM, MAE255, Colorfulness,
        ColorfulnessGap and CIEDE2000, each comparing sRGB images in [0, 1].

    Examples:
        >>> from keras_colorize.metrics import default_metrics
        >>> [m.name for m in default_metrics()]
        ['psnr', 'ssim', 'mae', 'colorfulness', 'colorfulness_gap', 'ciede2000']
    """
    return [PSNR(), SSIM(), MAE255(), Colorfulness(), ColorfulnessGap(), CIEDE2000()]
