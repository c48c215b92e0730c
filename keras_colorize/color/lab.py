"""sRGB <-> CIE L*a*b* (D65 white, 2 degree observer) over ``keras.ops``.

The definition is the one of scikit-image's ``rgb2lab`` and ``lab2rgb``: the sRGB
transfer curve with its knee at 0.04045, the ITU-R BT.709 primaries, and the
CIE 1976 L*a*b* formulas with the 0.008856 threshold.
"""

import numpy as np
from keras import ops

from keras_colorize.color.normalization import (
    denormalize_ab,
    denormalize_l,
    normalize_ab,
    normalize_l,
    split_lab,
)

# Linear sRGB -> CIE XYZ (D65), as in scikit-image.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
D65_WHITE = (0.95047, 1.0, 1.08883)

SRGB_KNEE = 0.04045  # encoded value where the sRGB curve turns linear
SRGB_LINEAR_KNEE = 0.0031308  # the same point in linear light
LAB_EPSILON = 0.008856  # (6/29)^3, rounded as in the CIE standard
LAB_KAPPA = 7.787  # slope of the linear part of f(t)
LAB_DELTA = 16.0 / 116.0
LAB_F_KNEE = 0.2068966  # f(LAB_EPSILON)


def _channel_axis(data_format):
    if data_format is None:
        from keras import config

        data_format = config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}"
        )
    return -1 if data_format == "channels_last" else -3


def _compute_dtype(x):
    """Colour maths runs in float32 (float64 stays float64)."""
    dtype = ops.dtype(x) if hasattr(x, "dtype") else "float32"
    return "float64" if dtype == "float64" else "float32"


def _mix(channels, matrix):
    """Apply a 3x3 matrix to three channel tensors as explicit weighted sums."""
    c0, c1, c2 = channels
    return [float(row[0]) * c0 + float(row[1]) * c1 + float(row[2]) * c2 for row in matrix]


def _unstack(x, axis):
    return [ops.squeeze(c, axis=axis) for c in ops.split(x, 3, axis=axis)]


def _stack(channels, axis):
    return ops.stack(channels, axis=axis)


def rgb_to_lab(images, data_format=None):
    """Convert sRGB images to CIE L*a*b* (D65, 2 degree observer).

    Args:
        images: tensor of shape `(..., H, W, 3)` (or `(..., 3, H, W)` with
            `data_format="channels_first"`), sRGB in [0, 1], float32, float16,
            bfloat16 or float64.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        L*a*b* tensor of the same shape and dtype: L* in [0, 100], a* and b* in
        about [-128, 127].

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.color import rgb_to_lab
        >>> lab = rgb_to_lab(np.ones((1, 1, 3), "float32"))  # white: L=100, a=b=0
    """
    axis = _channel_axis(data_format)
    input_dtype = ops.dtype(images) if hasattr(images, "dtype") else "float32"
    compute_dtype = _compute_dtype(images)
    x = ops.cast(images, compute_dtype)

    # sRGB transfer curve -> linear light. The power branch is clamped so its
    # gradient stays finite where the linear branch is the one selected.
    power = ops.power((ops.maximum(x, SRGB_KNEE) + 0.055) / 1.055, 2.4)
    linear = ops.where(x > SRGB_KNEE, power, x / 12.92)

    xyz = _mix(_unstack(linear, axis), XYZ_FROM_RGB)
    f = []
    for value, white in zip(xyz, D65_WHITE):
        t = value / white
        cube_root = ops.power(ops.maximum(t, LAB_EPSILON), 1.0 / 3.0)
        f.append(ops.where(t > LAB_EPSILON, cube_root, LAB_KAPPA * t + LAB_DELTA))
    fx, fy, fz = f
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return ops.cast(_stack([lightness, a, b], axis), input_dtype)


def lab_to_rgb(lab, data_format=None):
    """Convert CIE L*a*b* (D65, 2 degree observer) to sRGB.

    Colours outside the sRGB gamut are clipped to [0, 1].

    Args:
        lab: tensor of shape `(..., H, W, 3)` (or `(..., 3, H, W)` with
            `data_format="channels_first"`): L* in [0, 100], a* and b* in about
            [-128, 127].
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        sRGB tensor in [0, 1] with the shape and dtype of `lab`.
    """
    axis = _channel_axis(data_format)
    input_dtype = ops.dtype(lab) if hasattr(lab, "dtype") else "float32"
    x = ops.cast(lab, _compute_dtype(lab))
    lightness, a, b = _unstack(x, axis)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = ops.maximum(fy - b / 200.0, 0.0)

    xyz = []
    for f, white in zip((fx, fy, fz), D65_WHITE):
        t = ops.where(f > LAB_F_KNEE, f * f * f, (f - LAB_DELTA) / LAB_KAPPA)
        xyz.append(t * white)

    rgb = []
    for linear in _mix(xyz, RGB_FROM_XYZ):
        clamped = ops.maximum(linear, SRGB_LINEAR_KNEE)
        encoded = ops.where(
            linear > SRGB_LINEAR_KNEE,
            1.055 * ops.power(clamped, 1.0 / 2.4) - 0.055,
            12.92 * linear,
        )
        rgb.append(ops.clip(encoded, 0.0, 1.0))
    return ops.cast(_stack(rgb, axis), input_dtype)


def rgb_to_lightness(images, data_format=None):
    """sRGB in [0, 1] -> CIE L* in [0, 100], one channel (cheaper than `rgb_to_lab`).

    Args:
        images: tensor of shape `(..., H, W, 3)` (or `(..., 3, H, W)` with
            `data_format="channels_first"`), sRGB in [0, 1], float.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        L* in [0, 100], shape `(..., H, W, 1)` (or `(..., 1, H, W)`), in the dtype
        of `images`.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.color import rgb_to_lightness
        >>> lightness = rgb_to_lightness(np.full((1, 2, 2, 3), 0.5, "float32"), "channels_last")
        >>> round(float(lightness[0, 0, 0, 0]), 2)  # mid-gray sRGB
        53.39
    """
    axis = _channel_axis(data_format)
    input_dtype = ops.dtype(images) if hasattr(images, "dtype") else "float32"
    x = ops.cast(images, _compute_dtype(images))
    power = ops.power((ops.maximum(x, SRGB_KNEE) + 0.055) / 1.055, 2.4)
    linear = _unstack(ops.where(x > SRGB_KNEE, power, x / 12.92), axis)
    y = _mix(linear, XYZ_FROM_RGB[1:2])[0] / D65_WHITE[1]
    fy = ops.where(y > LAB_EPSILON, ops.power(ops.maximum(y, LAB_EPSILON), 1.0 / 3.0), LAB_KAPPA * y + LAB_DELTA)
    return ops.cast(ops.expand_dims(116.0 * fy - 16.0, axis), input_dtype)


def rgb_to_model_inputs(images, data_format=None):
    """sRGB in [0, 1] -> (L in [-1, 1], ab in about [-1, 1]), the model space.

    The generator's input is `l_norm = L*/50 - 1` and its target `ab_norm = (a*, b*) / 128`.

    Args:
        images: tensor of shape `(..., H, W, 3)` (or `(..., 3, H, W)` with
            `data_format="channels_first"`), sRGB in [0, 1], float.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        A tuple `(l_norm, ab_norm)`: model-space L in [-1, 1] with 1 channel and
        model-space ab in about [-1, 1] with 2 channels on the channel axis.
    """
    if data_format is None:
        from keras import config

        data_format = config.image_data_format()
    lightness, ab = split_lab(rgb_to_lab(images, data_format), data_format)
    return normalize_l(lightness), normalize_ab(ab)


def model_outputs_to_rgb(l_norm, ab_norm, data_format=None):
    """(L in [-1, 1], ab in [-1, 1]) in model space -> sRGB in [0, 1].

    The inverse of `rgb_to_model_inputs`; colours outside the sRGB gamut are clipped.

    Args:
        l_norm: model-space L (L*/50 - 1) in [-1, 1], 1 channel, shape
            `(..., H, W, 1)` (or `(..., 1, H, W)`).
        ab_norm: model-space ab ((a*, b*) / 128) in [-1, 1], 2 channels, the same
            leading shape.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        sRGB in [0, 1], 3 channels, in the dtype of `l_norm`.
    """
    if data_format is None:
        from keras import config

        data_format = config.image_data_format()
    axis = -1 if data_format == "channels_last" else -3
    lab = ops.concatenate(
        [denormalize_l(l_norm), denormalize_ab(ops.cast(ab_norm, ops.dtype(l_norm)))],
        axis=axis,
    )
    return lab_to_rgb(lab, data_format)
