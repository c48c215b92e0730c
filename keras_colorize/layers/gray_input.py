"""Model-space L as the RGB input a pretrained image backbone expects."""

import keras
from keras import ops

from keras_colorize.color import model_outputs_to_rgb
from keras_colorize.serialization import register


@register
class GrayToBackboneInput(keras.layers.Layer):
    """Model-space L -> the gray photo in sRGB, normalised per channel for a backbone.

    The gray photo of lightness L* is the sRGB colour (L*, 0, 0) (R = G = B), what
    a backbone trained on colour photos sees for a black-and-white one; it is then
    mapped to the backbone's input range as `rgb * scale + offset`, channel by channel.

    Args:
        scale: sequence of 3 floats. Per-channel factor on sRGB in [0, 1].
        offset: sequence of 3 floats. Per-channel offset added after scaling.

    Inputs: model-space L (L*/50 - 1) in [-1, 1], shape (N, H, W, 1).
    Outputs: `rgb * scale + offset`, float, shape (N, H, W, 3).

    Examples:
        ImageNet normalisation (torchvision's mean and standard deviation):

        >>> from keras_colorize.layers import GrayToBackboneInput
        >>> layer = GrayToBackboneInput(scale=(1 / 0.229, 1 / 0.224, 1 / 0.225),
        ...                             offset=(-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225))
    """

    def __init__(self, scale, offset, **kwargs):
        super().__init__(**kwargs)
        self.scale = tuple(float(s) for s in scale)
        self.offset = tuple(float(o) for o in offset)
        if len(self.scale) != 3 or len(self.offset) != 3:
            raise ValueError(f"scale and offset need 3 values (R, G, B), got {self.scale} and {self.offset}")

    def call(self, l_norm):
        zeros = ops.zeros_like(ops.concatenate([l_norm, l_norm], axis=-1))
        rgb = model_outputs_to_rgb(l_norm, zeros, "channels_last")
        scale = ops.convert_to_tensor(self.scale, dtype=rgb.dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=rgb.dtype)
        return rgb * scale + offset

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)

    def get_config(self):
        return {**super().get_config(), "scale": list(self.scale), "offset": list(self.offset)}
