"""Model-space normalisation of CIE L*a*b*: the one definition used everywhere.

L* in [0, 100] maps to [-1, 1] as ``L / 50 - 1``; a* and b* (about [-128, 127])
map to about [-1, 1] as ``ab / 128``.
"""

from keras import ops

L_SCALE = 50.0
L_OFFSET = 1.0
AB_SCALE = 128.0


def normalize_l(lightness):
    """L* in [0, 100] -> model L in [-1, 1]."""
    return lightness / L_SCALE - L_OFFSET


def denormalize_l(l_norm):
    """Model L in [-1, 1] -> L* in [0, 100]."""
    return (l_norm + L_OFFSET) * L_SCALE


def normalize_ab(ab):
    """a*, b* (about [-128, 127]) -> model ab in about [-1, 1]."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    """Model ab in [-1, 1] -> a*, b* in [-128, 128]."""
    return ab_norm * AB_SCALE


def split_lab(lab, data_format="channels_last"):
    """Split an L*a*b* tensor into (L, ab) along the channel axis."""
    axis = -1 if data_format == "channels_last" else -3
    lightness, ab = ops.split(lab, [1], axis=axis)
    return lightness, ab
