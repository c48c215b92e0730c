"""The Stable Diffusion v1 denoising U-Net with InstructPix2Pix's 8-channel input, in Keras 3.

The default configuration has exactly the weight layout of KerasCV's `DiffusionModel` (the same
ordered list of weight shapes, the input convolution widened from 4 to 8 channels), so KerasCV's
weight files and diffusers' `UNet2DConditionModel` checkpoints convert into it
(`keras_colorize.models.instruct_pix2pix.convert.unet_weights`). Sizes are constructor arguments:
`TINY_UNET` is a configuration small enough for tests.

References:
    Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022.
    Brooks et al., "InstructPix2Pix: Learning to Follow Image Editing Instructions", CVPR 2023.
"""

import contextlib
import math

import keras
import numpy as np
from keras import layers, ops

from keras_colorize.errors import UserInputError
from keras_colorize.serialization import register

TINY_UNET = dict(widths=(32, 64), layers_per_block=2, attention_levels=(True, False), heads=2, context_dim=32)
"""A two-level U-Net for tests: 32 and 64 channels, attention at the first level only."""

_NORM_EPSILON = 1e-5
_TRANSFORMER_NORM_EPSILON = 1e-6


@register
class UNetTimestepEmbedding(layers.Layer):
    """Sinusoidal embedding of diffusion timesteps: `[cos(t * f), sin(t * f)]`.

    The frequencies are `f_i = exp(-ln(10000) * i / (dim / 2))` for `i < dim / 2` (KerasCV's
    layout, diffusers' `flip_sin_to_cos=True, downscale_freq_shift=0`). Computed in float32.

    Args:
        dim: int. Width of the embedding (even).

    Inputs: timesteps, float (N,), 0..999.
    Outputs: float32 (N, dim).
    """

    def __init__(self, dim, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if dim % 2:
            raise UserInputError(f"the timestep embedding width must be even, got {dim}")
        self.dim = dim
        half = dim // 2
        exponent = np.float32(-math.log(10000.0)) * np.arange(half, dtype=np.float32) / np.float32(half)
        self._frequencies = np.exp(exponent).astype(np.float32)
        self.built = True

    def call(self, timesteps):
        timesteps = ops.cast(timesteps, "float32")
        arguments = ops.expand_dims(timesteps, -1) * ops.convert_to_tensor(self._frequencies)[None, :]
        return ops.concatenate([ops.cos(arguments), ops.sin(arguments)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config["dim"] = self.dim
        return config


@register
class UNetResBlock(layers.Layer):
    """Residual block with the time embedding: GroupNorm, swish, conv, + dense(swish(time)),
    GroupNorm, swish, conv, plus the input (through a 1x1 conv when the widths differ).

    Args:
        width: int. Output channels.
        groups: int. GroupNorm groups. Defaults to 32.

    Inputs: `[x, time]`: features (N, h, w, c), time embedding (N, t).
    Outputs: features (N, h, w, width).
    """

    def __init__(self, width, groups=32, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.groups = groups
        dtype = self.dtype_policy
        with keras.RematScope(mode=None):
            self.norm_1 = layers.GroupNormalization(groups, epsilon=_NORM_EPSILON, dtype=dtype, name="norm_1")
            self.conv_1 = layers.Conv2D(width, 3, padding="same", dtype=dtype, name="conv_1")
            self.time_projection = layers.Dense(width, dtype=dtype, name="time_projection")
            self.norm_2 = layers.GroupNormalization(groups, epsilon=_NORM_EPSILON, dtype=dtype, name="norm_2")
            self.conv_2 = layers.Conv2D(width, 3, padding="same", dtype=dtype, name="conv_2")
        self.shortcut = None

    def build(self, input_shape):
        x_shape, time_shape = input_shape
        x_shape = tuple(x_shape)
        out_shape = x_shape[:-1] + (self.width,)
        self.norm_1.build(x_shape)
        self.conv_1.build(x_shape)
        self.time_projection.build(tuple(time_shape))
        self.norm_2.build(out_shape)
        self.conv_2.build(out_shape)
        if x_shape[-1] != self.width:
            with keras.RematScope(mode=None):
                self.shortcut = layers.Conv2D(self.width, 1, dtype=self.dtype_policy, name="shortcut")
            self.shortcut.build(x_shape)

    def call(self, inputs):
        x, time = inputs
        h = self.conv_1(ops.silu(self.norm_1(x)))
        h = h + self.time_projection(ops.silu(time))[:, None, None, :]
        h = self.conv_2(ops.silu(self.norm_2(h)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return h + shortcut

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])[:-1] + (self.width,)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, groups=self.groups)
        return config


@register
class UNetAttention(layers.Layer):
    """Multi-head attention with Dense query/key/value (no bias) and output projections.

    Scores are scaled by `1 / sqrt(head_dim)`; the softmax runs in float32 under mixed precision
    (`keras.ops.dot_product_attention`, a fused kernel where the backend has one).

    Args:
        heads: int. Number of heads.
        head_dim: int. Width of one head.

    Inputs: `x` (N, T, c) and optional `context` (N, S, d) (None: self-attention).
    Outputs: (N, T, heads * head_dim).
    """

    def __init__(self, heads, head_dim, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.head_dim = head_dim
        width = heads * head_dim
        dtype = self.dtype_policy
        with keras.RematScope(mode=None):
            self.query = layers.Dense(width, use_bias=False, dtype=dtype, name="query")
            self.key = layers.Dense(width, use_bias=False, dtype=dtype, name="key")
            self.value = layers.Dense(width, use_bias=False, dtype=dtype, name="value")
            self.output_projection = layers.Dense(width, dtype=dtype, name="output")

    def build(self, x_shape, context_shape=None):
        x_shape = tuple(x_shape)
        context_shape = x_shape if context_shape is None else tuple(context_shape)
        self.query.build(x_shape)
        self.key.build(context_shape)
        self.value.build(context_shape)
        self.output_projection.build(x_shape[:-1] + (self.heads * self.head_dim,))

    def call(self, x, context=None):
        context = x if context is None else context
        batch = ops.shape(x)[0]
        query = ops.reshape(self.query(x), (batch, -1, self.heads, self.head_dim))
        key = ops.reshape(self.key(context), (batch, -1, self.heads, self.head_dim))
        value = ops.reshape(self.value(context), (batch, -1, self.heads, self.head_dim))
        attended = ops.dot_product_attention(query, key, value, scale=self.head_dim**-0.5)
        attended = ops.reshape(attended, (batch, -1, self.heads * self.head_dim))
        return self.output_projection(attended)

    def compute_output_shape(self, x_shape, context_shape=None):
        return tuple(x_shape)[:-1] + (self.heads * self.head_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(heads=self.heads, head_dim=self.head_dim)
        return config


@register
class UNetTransformerBlock(layers.Layer):
    """LayerNorm, self-attention, LayerNorm, cross-attention, LayerNorm, GEGLU feed-forward,
    each with a residual connection.

    Args:
        width: int. Channels of the tokens.
        heads: int. Attention heads (`width` divisible by it).
        context_dim: int. Width of the text states.

    Inputs: `[x, context]`: tokens (N, T, width), text states (N, S, context_dim).
    Outputs: tokens (N, T, width).
    """

    def __init__(self, width, heads, context_dim, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.context_dim = context_dim
        dtype = self.dtype_policy
        with keras.RematScope(mode=None):
            self.norm_1 = layers.LayerNormalization(epsilon=_NORM_EPSILON, dtype=dtype, name="norm_1")
            self.self_attention = UNetAttention(heads, width // heads, dtype=dtype, name="self_attention")
            self.norm_2 = layers.LayerNormalization(epsilon=_NORM_EPSILON, dtype=dtype, name="norm_2")
            self.cross_attention = UNetAttention(heads, width // heads, dtype=dtype, name="cross_attention")
            self.norm_3 = layers.LayerNormalization(epsilon=_NORM_EPSILON, dtype=dtype, name="norm_3")
            self.feed_forward_in = layers.Dense(width * 8, dtype=dtype, name="feed_forward_in")
            self.feed_forward_out = layers.Dense(width, dtype=dtype, name="feed_forward_out")

    def build(self, input_shape):
        x_shape, context_shape = (tuple(s) for s in input_shape)
        self.norm_1.build(x_shape)
        self.self_attention.build(x_shape)
        self.norm_2.build(x_shape)
        self.cross_attention.build(x_shape, context_shape)
        self.norm_3.build(x_shape)
        self.feed_forward_in.build(x_shape)
        self.feed_forward_out.build(x_shape[:-1] + (self.width * 4,))

    def call(self, inputs):
        x, context = inputs
        x = self.self_attention(self.norm_1(x)) + x
        x = self.cross_attention(self.norm_2(x), context) + x
        hidden, gate = ops.split(self.feed_forward_in(self.norm_3(x)), 2, axis=-1)
        return self.feed_forward_out(hidden * ops.gelu(gate, approximate=False)) + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, context_dim=self.context_dim)
        return config


@register
class UNetSpatialTransformer(layers.Layer):
    """GroupNorm (eps 1e-6), 1x1 conv in, one transformer block over the h*w tokens, 1x1 conv
    out, plus the input.

    Args:
        width: int. Channels of the features.
        heads: int. Attention heads.
        context_dim: int. Width of the text states.
        groups: int. GroupNorm groups. Defaults to 32.

    Inputs: `[x, context]`: features (N, h, w, width), text states (N, S, context_dim).
    Outputs: features (N, h, w, width).
    """

    def __init__(self, width, heads, context_dim, groups=32, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.context_dim = context_dim
        self.groups = groups
        dtype = self.dtype_policy
        with keras.RematScope(mode=None):
            self.norm = layers.GroupNormalization(groups, epsilon=_TRANSFORMER_NORM_EPSILON, dtype=dtype, name="norm")
            self.projection_in = layers.Conv2D(width, 1, dtype=dtype, name="projection_in")
            self.block = UNetTransformerBlock(width, heads, context_dim, dtype=dtype, name="transformer")
            self.projection_out = layers.Conv2D(width, 1, dtype=dtype, name="projection_out")

    def build(self, input_shape):
        x_shape, context_shape = (tuple(s) for s in input_shape)
        self.norm.build(x_shape)
        self.projection_in.build(x_shape)
        self.block.build([(x_shape[0], None, self.width), context_shape])
        self.projection_out.build(x_shape)

    def call(self, inputs):
        x, context = inputs
        shape = ops.shape(x)
        h = self.projection_in(self.norm(x))
        h = ops.reshape(h, (shape[0], -1, self.width))
        h = self.block([h, context])
        h = ops.reshape(h, (shape[0], shape[1], shape[2], self.width))
        return self.projection_out(h) + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, context_dim=self.context_dim, groups=self.groups)
        return config


@register
class InstructPix2PixUNet(keras.Model):
    """The Stable Diffusion v1 denoising U-Net, with an 8-channel input for InstructPix2Pix.

    Predicts the noise in noisy latents given the diffusion timestep and the text states. Each
    level holds `layers_per_block` residual blocks (each followed by a spatial transformer where
    `attention_levels` says so) and, except the last, a stride-2 convolution; a middle block
    (residual, transformer, residual); then the mirrored levels with `layers_per_block + 1`
    residual blocks on skip concatenations and nearest-neighbour x2 upsampling. The default
    configuration is SD v1's (KerasCV's `DiffusionModel` weight layout, 859,532,484 parameters
    with 8 input channels, 859,520,964 with 4).

    Args:
        input_channels: int. Latent channels in: 4 noisy-target + 4 conditioning-image latents.
            Defaults to 8.
        output_channels: int. Channels of the predicted noise. Defaults to 4.
        widths: sequence of int. Channels of each resolution level. Defaults to
            (320, 640, 1280, 1280).
        layers_per_block: int. Residual blocks per down level (one more per up level).
            Defaults to 2.
        attention_levels: sequence of bool. Whether each level has spatial transformers (the
            middle block always has one). Defaults to (True, True, True, False).
        heads: int. Attention heads at every level (head width: level width / heads).
            Defaults to 8.
        context_dim: int. Width of the text encoder's states. Defaults to 768.
        groups: int. GroupNorm groups. Defaults to 32.
        remat: bool. Rematerialise every block in the backward pass (gradient checkpointing:
            less memory, more compute; identical results). Defaults to False.
        **kwargs: `name`, `trainable`, and `dtype`: the dtype policy of every layer (such as
            "mixed_bfloat16"; None: the global policy). The output is float32 in any case.

    Inputs: `[latents, timesteps, context]`: latents float (N, h, w, input_channels) with h and w
    multiples of `size_divisor`; timesteps float32 (N,) in 0..999; text states float
    (N, L, context_dim).
    Outputs: predicted noise float32 (N, h, w, output_channels).

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet, TINY_UNET
        >>> unet = InstructPix2PixUNet(**TINY_UNET)  # SD v1 sizes: InstructPix2PixUNet()
        >>> noise = unet([np.zeros((1, 8, 8, 8)), np.array([10.0]), np.zeros((1, 77, 32))])
        >>> tuple(noise.shape)
        (1, 8, 8, 4)
    """

    def __init__(
        self,
        input_channels=8,
        output_channels=4,
        widths=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_levels=(True, True, True, False),
        heads=8,
        context_dim=768,
        groups=32,
        remat=False,
        **kwargs,
    ):
        widths = tuple(int(w) for w in widths)
        attention_levels = tuple(bool(a) for a in attention_levels)
        _check_configuration(widths, attention_levels, heads, groups, layers_per_block)
        dtype = kwargs.pop("dtype", None)
        name = kwargs.pop("name", None) or "instruct_pix2pix_unet"
        time_width = 4 * widths[0]

        # === Functional model ===
        latents = keras.Input(shape=(None, None, input_channels), name="latents")
        timesteps = keras.Input(shape=(), dtype="float32", name="timesteps")
        context = keras.Input(shape=(None, context_dim), name="context")
        with keras.RematScope(mode="full") if remat else contextlib.nullcontext():
            time = UNetTimestepEmbedding(widths[0], name="timestep_embedding")(timesteps)
            time = layers.Dense(time_width, dtype=dtype, name="time_dense_1")(time)
            time = layers.Activation("silu", dtype=dtype, name="time_activation")(time)
            x = layers.Conv2D(widths[0], 3, padding="same", dtype=dtype, name="conv_in")(latents)
            time = layers.Dense(time_width, dtype=dtype, name="time_dense_2")(time)

            skips = [x]
            for level, width in enumerate(widths):
                for index in range(layers_per_block):
                    x = UNetResBlock(width, groups, dtype=dtype, name=f"down_{level}_res_{index}")([x, time])
                    if attention_levels[level]:
                        x = UNetSpatialTransformer(
                            width, heads, context_dim, groups, dtype=dtype, name=f"down_{level}_attention_{index}"
                        )([x, context])
                    skips.append(x)
                if level < len(widths) - 1:
                    x = layers.ZeroPadding2D(1, dtype=dtype, name=f"down_{level}_pad")(x)
                    x = layers.Conv2D(width, 3, strides=2, dtype=dtype, name=f"down_{level}_downsample")(x)
                    skips.append(x)

            x = UNetResBlock(widths[-1], groups, dtype=dtype, name="mid_res_0")([x, time])
            x = UNetSpatialTransformer(widths[-1], heads, context_dim, groups, dtype=dtype, name="mid_attention")(
                [x, context]
            )
            x = UNetResBlock(widths[-1], groups, dtype=dtype, name="mid_res_1")([x, time])

            for level in reversed(range(len(widths))):
                width = widths[level]
                for index in range(layers_per_block + 1):
                    x = layers.Concatenate(dtype=dtype, name=f"up_{level}_concat_{index}")([x, skips.pop()])
                    x = UNetResBlock(width, groups, dtype=dtype, name=f"up_{level}_res_{index}")([x, time])
                    if attention_levels[level]:
                        x = UNetSpatialTransformer(
                            width, heads, context_dim, groups, dtype=dtype, name=f"up_{level}_attention_{index}"
                        )([x, context])
                if level > 0:
                    x = layers.UpSampling2D(2, dtype=dtype, name=f"up_{level}_upsample")(x)
                    x = layers.Conv2D(width, 3, padding="same", dtype=dtype, name=f"up_{level}_upsample_conv")(x)

            x = layers.GroupNormalization(groups, epsilon=_NORM_EPSILON, dtype=dtype, name="norm_out")(x)
            x = layers.Activation("silu", dtype=dtype, name="activation_out")(x)
            x = layers.Conv2D(output_channels, 3, padding="same", dtype=dtype, name="conv_out")(x)
        outputs = layers.Activation("linear", dtype="float32", name="noise_prediction")(x)
        super().__init__(inputs=[latents, timesteps, context], outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.widths = widths
        self.layers_per_block = layers_per_block
        self.attention_levels = attention_levels
        self.heads = heads
        self.context_dim = context_dim
        self.groups = groups
        self.remat = remat
        self._layers_dtype = dtype
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    @property
    def size_divisor(self):
        """Latent height and width must be multiples of this."""
        return 2 ** (len(self.widths) - 1)

    def attention_projections(self):
        """The Dense query, key, value and output projections of every self- and cross-attention.

        Returns:
            list of keras.layers.Dense, in model order (the targets of LoRA).
        """
        projections = []
        for layer in self.layers:
            if isinstance(layer, UNetSpatialTransformer):
                for attention in (layer.block.self_attention, layer.block.cross_attention):
                    projections += [attention.query, attention.key, attention.value, attention.output_projection]
        return projections

    def enable_lora(self, rank, lora_alpha=None):
        """Freeze the U-Net and add trainable low-rank adapters to the attention projections.

        Afterwards only the LoRA weights are trainable (set variable by variable, so that it also
        holds for a U-Net loaded with `trainable: false`). Saving merges them into the kernels, so
        a saved LoRA U-Net loads as a plain one.

        Args:
            rank: int. Rank of the adapters.
            lora_alpha: float or None. LoRA scale numerator (None: `rank`). Defaults to None.
        """
        projections = self.attention_projections()
        if not projections:
            raise UserInputError("lora_rank: the U-Net has no attention projections to adapt")
        for dense in projections:
            if not dense.lora_enabled:
                dense.enable_lora(rank, lora_alpha=lora_alpha)
        adapters = {id(v) for dense in projections for v in (dense.lora_kernel_a, dense.lora_kernel_b)}
        for variable in self.weights:
            variable.trainable = id(variable) in adapters

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        if self._layers_dtype is not None:
            config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        config.update(
            input_channels=self.input_channels,
            output_channels=self.output_channels,
            widths=list(self.widths),
            layers_per_block=self.layers_per_block,
            attention_levels=list(self.attention_levels),
            heads=self.heads,
            context_dim=self.context_dim,
            groups=self.groups,
            remat=self.remat,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_configuration(widths, attention_levels, heads, groups, layers_per_block):
    if not widths:
        raise UserInputError("InstructPix2PixUNet: widths must name at least one level")
    if len(attention_levels) != len(widths):
        raise UserInputError(
            f"InstructPix2PixUNet: attention_levels has {len(attention_levels)} entries, widths {len(widths)}"
        )
    if layers_per_block < 1:
        raise UserInputError(f"InstructPix2PixUNet: layers_per_block must be at least 1, got {layers_per_block}")
    for width in widths:
        if width % heads or width % groups:
            raise UserInputError(
                f"InstructPix2PixUNet: width {width} is not divisible by heads={heads} and groups={groups}"
            )
