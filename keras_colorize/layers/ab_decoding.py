"""Per-pixel distributions over a*b* bins decoded into model-space ab."""

import keras

from keras_colorize.color.ab_bins import ANNEALED_MEAN_TEMPERATURE, annealed_mean
from keras_colorize.serialization import register


@register
class AnnealedMeanDecoding(keras.layers.Layer):
    """Bin logits -> model-space ab, the annealed mean of Zhang et al. (2016).

    Args:
        temperature: float > 0. Softmax temperature: 1 gives the mean of the
            predicted distribution (muted where unsure), values towards 0 its mode
            (vivid). Defaults to 0.38 (the paper's).

    Inputs: logits over the `ab_bin_centers()` bins, shape (N, H, W, Q).
    Outputs: model-space ab ((a*, b*) / 128) in [-1, 1], float32, shape (N, H, W, 2).
    """

    def __init__(self, temperature=ANNEALED_MEAN_TEMPERATURE, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def call(self, logits):
        return annealed_mean(logits, self.temperature)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
