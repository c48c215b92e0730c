"""Self-attention over the positions of a feature map (SAGAN), as DeOldify's decoder uses once."""

import keras
from keras import ops

from keras_colorize.serialization import register


@register
class SelfAttention2D(keras.layers.Layer):
    """`x + gamma * attention(x)` over all positions of a channels-last feature map.

    Queries and keys are 1x1 projections to `channels // reduction` channels, values
    a 1x1 projection to `channels`; each position attends to every position
    (softmax over positions). `gamma` starts at 0, so the block is the identity
    when it is added and learns how much to use.

    Args:
        reduction: int. Channel reduction of queries and keys. Defaults to 8.

    Inputs: float tensor of shape (N, H, W, C), C >= `reduction`.
    Outputs: the same shape.

    References:
        Zhang, Goodfellow, Metaxas and Odena, "Self-Attention Generative Adversarial
        Networks", ICML 2019.
    """

    def __init__(self, reduction=8, **kwargs):
        super().__init__(**kwargs)
        self.reduction = int(reduction)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        inner = max(1, channels // self.reduction)
        self.query = keras.layers.Dense(inner, use_bias=False, name="query", dtype=self.dtype_policy)
        self.key = keras.layers.Dense(inner, use_bias=False, name="key", dtype=self.dtype_policy)
        self.value = keras.layers.Dense(channels, use_bias=False, name="value", dtype=self.dtype_policy)
        for layer, width in ((self.query, channels), (self.key, channels), (self.value, channels)):
            layer.build((None, width))
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, x):
        batch = ops.shape(x)[0]
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        if height is None or width is None:
            height, width = ops.shape(x)[1], ops.shape(x)[2]
        flat = ops.reshape(x, (batch, -1, channels))
        query, key, value = self.query(flat), self.key(flat), self.value(flat)
        attention = ops.softmax(ops.matmul(query, ops.transpose(key, (0, 2, 1))), axis=-1)
        attended = ops.reshape(ops.matmul(attention, value), (batch, height, width, channels))
        return x + ops.cast(self.gamma, x.dtype) * attended

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}
