"""Model-space normalisation of CIE L*a*b*: the one definition used everywhere.

L* in [0, 100] maps to [-1, 1] as ``L / 50 - 1``; a* and b* (about [-128, 127])
map to about [-1, 1] as ``ab / 128``.
"""

from keras import ops

L_SCALE = 50.0
L_OFFSET = 1.0
AB_SCALE = 128.0


def normalize_l(lightness):
    """L* in [0, 100] -> model L in [-1, 1], as `L / 50 - 1`.

    Args:
        lightness: tensor or array of L* values in [0, 100].

    Returns:
        Model-space L in [-1, 1], the same shape.

    Examples:
        >>> from keras_colorize.color import normalize_l
        >>> normalize_l(75.0)
        0.5
    """
    return lightness / L_SCALE - L_OFFSET


def denormalize_l(l_norm):
    """Model L in [-1, 1] -> L* in [0, 100], as `(L + 1) * 50`.

    Args:
        l_norm: tensor or array of model-space L in [-1, 1].

    Returns:
        L* in [0, 100], the same shape.
    """
    return (l_norm + L_OFFSET) * L_SCALE


def normalize_ab(ab):
    """a*, b* (about [-128, 127]) -> model ab in about [-1, 1], as `ab / 128`.

    Args:
        ab: tensor or array of a* and b* values.

    Returns:
        Model-space ab, the same shape.
    """
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    """Model ab in [-1, 1] -> a*, b* in [-128, 128], as `ab * 128`.

    Args:
        ab_norm: tensor or array of model-space ab in [-1, 1].

    Returns:
        a* and b*, the same shape.
    """
    return ab_norm * AB_SCALE


def split_lab(lab, data_format="channels_last"):
    """Split an L*a*b* tensor into (L, ab) along the channel axis.

    Args:
        lab: tensor of shape `(..., H, W, 3)` (or `(..., 3, H, W)`), L*a*b* or
            model space.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            "channels_last".

    Returns:
        A tuple `(lightness, ab)` with 1 and 2 channels on the channel axis.
    """
    axis = -1 if data_format == "channels_last" else -3
    lightness, ab = ops.split(lab, [1], axis=axis)
    return lightness, ab
