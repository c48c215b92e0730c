"""CIEDE2000 colour difference over ``keras.ops``.

The formulas are those of Sharma, Wu and Dalal (2005) with kL = kC = kH = 1, the
definition of scikit-image's ``deltaE_ciede2000``, computed in float32. Angles are in radians
throughout; the published constants in degrees are converted once below.
"""

import math

from keras import ops

from keras_colorize.color import rgb_to_lab
from keras_colorize.metrics._common import ImageMetric, prepare_pair
from keras_colorize.serialization import register

_TWO_PI = 2.0 * math.pi
_POW25_7 = 25.0**7
_DEG = math.pi / 180.0


def _polar(a, b):
    """Chroma and hue angle in [0, 2 pi); the hue is 0 where the chroma is 0."""
    chroma = ops.sqrt(a * a + b * b)
    hue = ops.arctan2(b, a)
    hue = ops.where(hue < 0.0, hue + _TWO_PI, hue)
    return chroma, ops.where(chroma == 0.0, ops.zeros_like(hue), hue)


def _chroma_weight(mean_chroma):
    """sqrt(C^7 / (C^7 + 25^7)), the chroma factor of G and R_C."""
    c7 = ops.power(mean_chroma, 7.0)
    return ops.sqrt(c7 / (c7 + _POW25_7))


def ciede2000(lab_true, lab_pred):
    """CIEDE2000 colour difference per pixel.

    Args:
        lab_true: tensor. Reference colours, CIE L*a*b* (D65) with L* in [0, 100]
            and a*, b* in about [-128, 127], shape (..., 3), for example the
            output of `keras_colorize.color.rgb_to_lab` of shape (N, H, W, 3).
        lab_pred: tensor. Compared colours, CIE L*a*b*, same shape.

    Returns:
        float32 tensor of shape (...) (for images (N, H, W)): Delta E 2000 of
        each pixel, 0 for identical colours.

    References:
        Sharma, Wu and Dalal, "The CIEDE2000 color-difference formula:
        implementation notes, supplementary test data, and mathematical
        observations", Color Research and Application 30(1), 2005.

    Examples:
        >>> from keras_colorize.metrics import ciede2000
        >>> delta = ciede2000([[50.0, 0.0, 0.0]], [[50.0, -1.0, 2.0]])  # about 2.3669
    """
    lab_true = ops.convert_to_tensor(lab_true)
    lab_pred = ops.convert_to_tensor(lab_pred)
    for name, lab in (("lab_true", lab_true), ("lab_pred", lab_pred)):
        if len(lab.shape) < 1 or lab.shape[-1] not in (3, None):
            raise ValueError(
                f"{name} must have CIE L*a*b* on a last axis of size 3, "
                f"got shape {tuple(lab.shape)}"
            )
    lab_true = ops.cast(lab_true, "float32")
    lab_pred = ops.cast(lab_pred, "float32")
    l1, a1, b1 = lab_true[..., 0], lab_true[..., 1], lab_true[..., 2]
    l2, a2, b2 = lab_pred[..., 0], lab_pred[..., 1], lab_pred[..., 2]

    # Stretch a* by the mean chroma, then work in the primed LCh coordinates.
    mean_chroma = 0.5 * (ops.sqrt(a1 * a1 + b1 * b1) + ops.sqrt(a2 * a2 + b2 * b2))
    scale = 1.5 - 0.5 * _chroma_weight(mean_chroma)  # 1 + G
    a1 = a1 * scale
    a2 = a2 * scale
    c1, h1 = _polar(a1, b1)
    c2, h2 = _polar(a2, b2)

    # Lightness.
    mean_l = 0.5 * (l1 + l2)
    offset = ops.square(mean_l - 50.0)
    s_l = 1.0 + 0.015 * offset / ops.sqrt(20.0 + offset)
    l_term = (l2 - l1) / s_l

    # Chroma.
    mean_c = 0.5 * (c1 + c2)
    c_term = (c2 - c1) / (1.0 + 0.045 * mean_c)

    # Hue difference in [-pi, pi], taken from the cross and dot products of the
    # two (a', b') vectors rather than by wrapping h2 - h1, so that float32
    # rounding of the angles cannot flip which way round the circle is shorter.
    # Hues exactly 180 degrees apart keep the sign of h2 - h1 and count as not
    # wrapped (Sharma et al.'s pairs 10 and 14). 0 when either colour is neutral.
    chroma_product = c1 * c2
    neutral = chroma_product == 0.0
    h_diff = h2 - h1
    cross = a1 * b2 - b1 * a2
    dot = a1 * a2 + b1 * b2
    opposite = ops.logical_and(cross == 0.0, dot < 0.0)
    d_h = ops.where(
        opposite,
        ops.where(h_diff >= 0.0, math.pi, -math.pi),
        ops.arctan2(cross, dot),
    )
    d_h = ops.where(neutral, ops.zeros_like(d_h), d_h)
    d_h_term = 2.0 * ops.sqrt(chroma_product) * ops.sin(0.5 * d_h)

    # Mean hue: the sum when either colour is neutral, else the mean of the two
    # angles taken the short way round the circle. h2 - h1 is then either d_h or
    # d_h -+ 2 pi, two values far apart, so the test below is robust.
    h_sum = h1 + h2
    across_zero = ops.abs(h_diff - d_h) > math.pi
    wrapped_sum = ops.where(
        across_zero,
        ops.where(h_sum < _TWO_PI, h_sum + _TWO_PI, h_sum - _TWO_PI),
        h_sum,
    )
    mean_h = ops.where(neutral, h_sum, 0.5 * wrapped_sum)

    t = (
        1.0
        - 0.17 * ops.cos(mean_h - 30.0 * _DEG)
        + 0.24 * ops.cos(2.0 * mean_h)
        + 0.32 * ops.cos(3.0 * mean_h + 6.0 * _DEG)
        - 0.20 * ops.cos(4.0 * mean_h - 63.0 * _DEG)
    )
    h_term = d_h_term / (1.0 + 0.015 * mean_c * t)

    # Rotation of the blue region.
    delta_theta = 30.0 * _DEG * ops.exp(-ops.square((mean_h / _DEG - 275.0) / 25.0))
    r_c = 2.0 * _chroma_weight(mean_c)
    r_term = -ops.sin(2.0 * delta_theta) * r_c * c_term * h_term

    squared = ops.square(l_term) + ops.square(c_term) + ops.square(h_term) + r_term
    return ops.cast(ops.sqrt(ops.maximum(squared, 0.0)), "float32")


def mean_ciede2000(y_true, y_pred):
    """Mean CIEDE2000 colour difference per image, from sRGB images.

    Both batches go through `keras_colorize.color.rgb_to_lab` (D65, the
    definition of scikit-image's `rgb2lab`), then `ciede2000` per pixel.

    Args:
        y_true: tensor. Reference images, sRGB in [0, 1], shape (N, H, W, 3).
        y_pred: tensor. Compared images, sRGB in [0, 1], shape (N, H, W, 3).

    Returns:
        float32 tensor of shape (N,): mean Delta E 2000 over the pixels of each image.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    lab_true = rgb_to_lab(y_true, data_format="channels_last")
    lab_pred = rgb_to_lab(y_pred, data_format="channels_last")
    return ops.mean(ciede2000(lab_true, lab_pred), axis=(1, 2))


@register
class CIEDE2000(ImageMetric):
    """Mean CIEDE2000 colour difference, per image then over images (lower is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3); see `mean_ciede2000`.

    Args:
        name: str. Name of the metric. Defaults to "ciede2000".
        dtype: str. Dtype of the result. Defaults to None (floatx).
    """

    def __init__(self, name="ciede2000", dtype=None):
        super().__init__(mean_ciede2000, name=name, dtype=dtype, direction="down")
