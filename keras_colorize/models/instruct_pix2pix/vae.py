"""The Stable Diffusion v1 variational autoencoder (AutoencoderKL): encoder, decoder, latent sampling.

The default configurations have the weight layouts of KerasCV's `ImageEncoder` and `Decoder` (the
same ordered list of weight shapes, so KerasCV's weight files load into them) and the numerics of
diffusers' `AutoencoderKL` with the SD v1 configuration. Unlike KerasCV's, the encoder returns the
full latent moments (mean and log-variance) and the decoder takes unscaled latents: callers multiply
by `LATENT_SCALE` after encoding and divide by it before decoding.

References:
    Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022.
    Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""

import keras
from keras import layers, ops

from keras_colorize.errors import UserInputError
from keras_colorize.serialization import register

TINY_VAE = dict(channels=(32, 64), layers_per_block=1)
"""A tiny VAE configuration (both halves) for tests: 2x downsampling, 1 residual block per level."""

EPSILON = 1e-6
"""Group-normalisation epsilon of the SD v1 autoencoder (diffusers / the original checkpoints)."""

LOGVAR_RANGE = (-30.0, 20.0)
"""Range to which the log-variance is clipped before sampling (as the original implementation)."""


def _conv(filters, kernel_size, name, dtype, strides=1, padding="same"):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format="channels_last",
        dtype=dtype,
        name=name,
    )


def _group_norm(groups, epsilon, name, dtype):
    return layers.GroupNormalization(groups=groups, epsilon=epsilon, dtype=dtype, name=name)


@register
class VAEResnetBlock(layers.Layer):
    """Pre-activation residual block: GroupNorm, swish, 3x3 conv, twice; 1x1 shortcut when the width changes.

    Sub-layers in the order of KerasCV's ResnetBlock weights: `norm1`, `conv1`, `norm2`, `conv2`,
    then `shortcut` (only when the input width differs from `filters`).

    Args:
        filters: int. Output channels.
        groups: int. Groups of the group normalisations. Defaults to 32.
        epsilon: float. Epsilon of the group normalisations. Defaults to 1e-6.

    Inputs: feature maps, float, shape `(N, H, W, C)`.
    Outputs: feature maps, float, shape `(N, H, W, filters)`.
    """

    def __init__(self, filters, groups=32, epsilon=EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.groups = int(groups)
        self.epsilon = float(epsilon)
        policy = self.dtype_policy
        self.norm1 = _group_norm(self.groups, self.epsilon, "norm1", policy)
        self.conv1 = _conv(self.filters, 3, "conv1", policy)
        self.norm2 = _group_norm(self.groups, self.epsilon, "norm2", policy)
        self.conv2 = _conv(self.filters, 3, "conv2", policy)
        self.shortcut = None

    def build(self, input_shape):
        channels = input_shape[-1]
        output_shape = tuple(input_shape[:-1]) + (self.filters,)
        self.norm1.build(input_shape)
        self.conv1.build(input_shape)
        self.norm2.build(output_shape)
        self.conv2.build(output_shape)
        if channels != self.filters:
            self.shortcut = _conv(self.filters, 1, "shortcut", self.dtype_policy)
            self.shortcut.build(input_shape)

    def call(self, inputs):
        x = self.conv1(ops.silu(self.norm1(inputs)))
        x = self.conv2(ops.silu(self.norm2(x)))
        residual = inputs if self.shortcut is None else self.shortcut(inputs)
        return x + residual

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, groups=self.groups, epsilon=self.epsilon)
        return config


@register
class VAEAttentionBlock(layers.Layer):
    """Single-head spatial self-attention with a residual connection (the VAE's mid-block attention).

    Sub-layers in the order of KerasCV's AttentionBlock weights: `norm`, `query`, `key`, `value`,
    `proj_out` (1x1 convolutions, as KerasCV stores them).

    Args:
        channels: int. Channels of the input and of the attention.
        groups: int. Groups of the group normalisation. Defaults to 32.
        epsilon: float. Epsilon of the group normalisation. Defaults to 1e-6.

    Inputs: feature maps, float, shape `(N, H, W, channels)`.
    Outputs: feature maps, float, shape `(N, H, W, channels)`.
    """

    def __init__(self, channels, groups=32, epsilon=EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.groups = int(groups)
        self.epsilon = float(epsilon)
        policy = self.dtype_policy
        self.norm = _group_norm(self.groups, self.epsilon, "norm", policy)
        self.query = _conv(self.channels, 1, "query", policy)
        self.key = _conv(self.channels, 1, "key", policy)
        self.value = _conv(self.channels, 1, "value", policy)
        self.proj_out = _conv(self.channels, 1, "proj_out", policy)

    def build(self, input_shape):
        for layer in (self.norm, self.query, self.key, self.value, self.proj_out):
            layer.build(input_shape)

    def call(self, inputs):
        x = self.norm(inputs)
        shape = ops.shape(inputs)
        tokens = (shape[0], -1, 1, self.channels)  # (batch, H*W, one head, channels)
        query = ops.reshape(self.query(x), tokens)
        key = ops.reshape(self.key(x), tokens)
        value = ops.reshape(self.value(x), tokens)
        attended = ops.dot_product_attention(query, key, value)
        attended = ops.reshape(attended, shape)
        return self.proj_out(attended) + inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels, groups=self.groups, epsilon=self.epsilon)
        return config


def _check_config(class_name, channels, layers_per_block, latent_channels, groups):
    channels = tuple(int(c) for c in channels)
    if not channels:
        raise UserInputError(f"{class_name} needs at least one entry in channels")
    if int(layers_per_block) < 1 or int(latent_channels) < 1:
        raise UserInputError(f"{class_name} layers_per_block and latent_channels must be positive")
    for width in channels:
        if width % int(groups):
            raise UserInputError(f"{class_name} channels {list(channels)} must be multiples of groups={groups}")
    return channels


def _output_dtype(dtype):
    """float32 outputs under a mixed policy (float32 variables), else the policy itself."""
    policy = keras.config.dtype_policy() if dtype is None else keras.dtype_policies.get(dtype)
    return "float32" if policy.variable_dtype == "float32" else policy


def _mid_block(x, width, groups, epsilon, dtype):
    x = VAEResnetBlock(width, groups, epsilon, dtype=dtype, name="mid_resnet_0")(x)
    x = VAEAttentionBlock(width, groups, epsilon, dtype=dtype, name="mid_attention")(x)
    return VAEResnetBlock(width, groups, epsilon, dtype=dtype, name="mid_resnet_1")(x)


class _VAEHalf(keras.Model):
    """Config handling shared by the encoder and the decoder."""

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "channels": list(self.channels),
            "layers_per_block": self.layers_per_block,
            "latent_channels": self.latent_channels,
            "groups": self.groups,
            "epsilon": self.epsilon,
        }
        if self.layers_dtype is not None:
            config["dtype"] = keras.dtype_policies.serialize(keras.dtype_policies.get(self.layers_dtype))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


@register
class VAEEncoder(_VAEHalf):
    """The VAE encoder: an image to the moments of its latent distribution.

    conv_in, then per level `layers_per_block` residual blocks and (all but the last level) a
    stride-2 3x3 convolution after zero padding of one pixel at the bottom and right; a mid block
    (residual, single-head attention, residual); GroupNorm, swish, a 3x3 convolution to
    `2 * latent_channels`, and the 1x1 `quant_conv`. The default configuration is SD v1's
    (34,163,664 parameters, the weight layout of KerasCV's `ImageEncoder`).

    Args:
        channels: sequence of int. Widths of the levels; the image is downsampled by
            `2 ** (len(channels) - 1)`. Defaults to (128, 256, 512, 512).
        layers_per_block: int. Residual blocks per level. Defaults to 2.
        latent_channels: int. Channels of the latent space. Defaults to 4.
        groups: int. Groups of every group normalisation. Defaults to 32.
        epsilon: float. Epsilon of every group normalisation. Defaults to 1e-6 (SD v1 and
            diffusers; KerasCV's port computes with 1e-5).
        **kwargs: `keras.Model` arguments: `name`, and `dtype` (str, DTypePolicy or None), the
            dtype policy of every layer (None: the global policy); under a mixed policy the
            moments are float32.

    Inputs: sRGB scaled to [-1, 1] (2 * rgb - 1), float, shape `(N, H, W, 3)`, H and W multiples of
        the downsampling factor.
    Outputs: latent moments `[mean, log-variance]` concatenated on the channels, float32 (or the
        dtype of a non-mixed `dtype` policy), shape
        `(N, H / f, W / f, 2 * latent_channels)`, unscaled (multiply a latent by `LATENT_SCALE`).

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.vae import TINY_VAE, VAEEncoder
        >>> encoder = VAEEncoder(**TINY_VAE)
        >>> encoder.downsampling_factor
        2
    """

    def __init__(
        self,
        channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        groups=32,
        epsilon=EPSILON,
        **kwargs,
    ):
        channels = _check_config("VAEEncoder", channels, layers_per_block, latent_channels, groups)
        layers_per_block, latent_channels, groups = int(layers_per_block), int(latent_channels), int(groups)
        epsilon = float(epsilon)
        name = kwargs.pop("name", None) or "vae_encoder"
        dtype = kwargs.pop("dtype", None)
        output_dtype = _output_dtype(dtype)

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, 3), name="images")
        x = _conv(channels[0], 3, "conv_in", dtype)(inputs)
        for level, width in enumerate(channels):
            for index in range(layers_per_block):
                x = VAEResnetBlock(width, groups, epsilon, dtype=dtype, name=f"down_{level}_resnet_{index}")(x)
            if level < len(channels) - 1:
                x = layers.ZeroPadding2D(((0, 1), (0, 1)), dtype=dtype, name=f"down_{level}_downsample_pad")(x)
                x = _conv(width, 3, f"down_{level}_downsample", dtype, strides=2, padding="valid")(x)
        x = _mid_block(x, channels[-1], groups, epsilon, dtype)
        x = _group_norm(groups, epsilon, "norm_out", dtype)(x)
        x = layers.Activation("silu", dtype=dtype, name="act_out")(x)
        x = _conv(2 * latent_channels, 3, "conv_out", dtype)(x)
        moments = _conv(2 * latent_channels, 1, "quant_conv", output_dtype)(x)
        super().__init__(inputs=inputs, outputs=moments, name=name, **kwargs)

        # === Config ===
        self.channels = channels
        self.layers_per_block = layers_per_block
        self.latent_channels = latent_channels
        self.groups = groups
        self.epsilon = epsilon
        self.layers_dtype = dtype

    @property
    def downsampling_factor(self):
        """Image pixels per latent pixel along each side."""
        return 2 ** (len(self.channels) - 1)


@register
class VAEDecoder(_VAEHalf):
    """The VAE decoder: unscaled latents to an image.

    The 1x1 `post_quant_conv`, conv_in, a mid block (residual, single-head attention, residual),
    then per level (widest first) `layers_per_block + 1` residual blocks and (all but the last
    level) 2x nearest-neighbour upsampling followed by a 3x3 convolution; GroupNorm, swish and a 3x3
    convolution to 3 channels. The default configuration is SD v1's (49,490,199 parameters, the
    weight layout of KerasCV's `Decoder`).

    Args:
        channels: sequence of int. Widths of the levels, in encoder order (the decoder runs them
            reversed); latents are upsampled by `2 ** (len(channels) - 1)`. Defaults to
            (128, 256, 512, 512).
        layers_per_block: int. Residual blocks per level, plus one. Defaults to 2.
        latent_channels: int. Channels of the latent space. Defaults to 4.
        groups: int. Groups of every group normalisation. Defaults to 32.
        epsilon: float. Epsilon of every group normalisation. Defaults to 1e-6 (SD v1 and
            diffusers; KerasCV's port computes with 1e-5).
        **kwargs: `keras.Model` arguments: `name`, and `dtype` (str, DTypePolicy or None), the
            dtype policy of every layer (None: the global policy); under a mixed policy the
            image is float32.

    Inputs: UNSCALED latents (a diffusion latent divided by `LATENT_SCALE`), float, shape
        `(N, h, w, latent_channels)`.
    Outputs: sRGB scaled to [-1, 1] (not clipped: map with `(x + 1) / 2` and clip), float32 (or
        the dtype of a non-mixed `dtype` policy), shape
        `(N, h * f, w * f, 3)`.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.vae import TINY_VAE, VAEDecoder
        >>> decoder = VAEDecoder(**TINY_VAE)
        >>> decoder.upsampling_factor
        2
    """

    def __init__(
        self,
        channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        groups=32,
        epsilon=EPSILON,
        **kwargs,
    ):
        channels = _check_config("VAEDecoder", channels, layers_per_block, latent_channels, groups)
        layers_per_block, latent_channels, groups = int(layers_per_block), int(latent_channels), int(groups)
        epsilon = float(epsilon)
        name = kwargs.pop("name", None) or "vae_decoder"
        dtype = kwargs.pop("dtype", None)
        output_dtype = _output_dtype(dtype)

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, latent_channels), name="latents")
        x = _conv(latent_channels, 1, "post_quant_conv", dtype)(inputs)
        x = _conv(channels[-1], 3, "conv_in", dtype)(x)
        x = _mid_block(x, channels[-1], groups, epsilon, dtype)
        for level, width in enumerate(reversed(channels)):
            for index in range(layers_per_block + 1):
                x = VAEResnetBlock(width, groups, epsilon, dtype=dtype, name=f"up_{level}_resnet_{index}")(x)
            if level < len(channels) - 1:
                x = layers.UpSampling2D(2, interpolation="nearest", dtype=dtype, name=f"up_{level}_upsample")(x)
                x = _conv(width, 3, f"up_{level}_upsample_conv", dtype)(x)
        x = _group_norm(groups, epsilon, "norm_out", dtype)(x)
        x = layers.Activation("silu", dtype=dtype, name="act_out")(x)
        outputs = _conv(3, 3, "conv_out", output_dtype)(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.channels = channels
        self.layers_per_block = layers_per_block
        self.latent_channels = latent_channels
        self.groups = groups
        self.epsilon = epsilon
        self.layers_dtype = dtype

    @property
    def upsampling_factor(self):
        """Image pixels per latent pixel along each side."""
        return 2 ** (len(self.channels) - 1)



def latent_mean(moments):
    """The mean of the latent distribution (the deterministic encoding).

    Args:
        moments: tensor. `[mean, log-variance]` on the last axis, shape `(N, h, w, 2 * C)`, as
            returned by `VAEEncoder`.

    Returns:
        Unscaled latents, shape `(N, h, w, C)`, the dtype of `moments`.
    """
    channels = moments.shape[-1]
    if channels is None or channels % 2:
        raise ValueError(f"latent moments need an even, known number of channels, got shape {moments.shape}")
    return moments[..., : channels // 2]


def sample_latents(moments, seed=None):
    """A draw from the latent distribution: mean + exp(0.5 * clip(logvar, -30, 20)) * N(0, 1).

    Args:
        moments: tensor. `[mean, log-variance]` on the last axis, shape `(N, h, w, 2 * C)`, as
            returned by `VAEEncoder`.
        seed: int, keras.random.SeedGenerator or None. Seed of the normal draw (a SeedGenerator
            advances, so it is the one to use inside a training step). Defaults to None (unseeded).

    Returns:
        Unscaled latents, shape `(N, h, w, C)`, the dtype of `moments`.
    """
    mean = latent_mean(moments)
    log_variance = ops.clip(moments[..., mean.shape[-1] :], *LOGVAR_RANGE)
    noise = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=seed)
    return mean + ops.exp(0.5 * log_variance) * noise
