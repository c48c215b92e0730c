"""The pix2pix PatchGAN: one logit per overlapping image patch.

References:
    Isola et al., "Image-to-Image Translation with Conditional Adversarial
    Networks", CVPR 2017.
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
"""

import keras
from keras import layers

from keras_colorize.errors import UserInputError
from keras_colorize.layers import FastBatchNormalization, FastConv2D
from keras_colorize.models.registry import register_model

NORMALIZATIONS = ("batch", None)


@register_model(role="discriminator")
class PatchGANDiscriminator(keras.Model):
    """PatchGAN discriminator, or the WGAN-GP critic with `normalization=None`.

    Every block is ZeroPadding2D(1) -> Conv2D (kernel 4, 'valid') ->
    [BatchNormalization] -> LeakyReLU(0.2); all blocks but the last have stride
    2, the last has stride 1 (the pix2pix padding). The first block has no
    normalisation. A last padded 4x4 convolution gives one logit per patch. At
    the defaults a 256x256 input gives 30x30 logits, each seeing a 70x70 patch
    (`receptive_field`), and the model has 2,767,425 parameters (of which
    1,792 are BatchNorm moving statistics). Convolutions followed by
    BatchNorm have no bias; without normalisation every convolution has one.

    Args:
        filters: sequence of int. Filters of the blocks. Defaults to
            (64, 128, 256, 512).
        normalization: "batch" or None. BatchNorm after every block but the
            first, or none at all (the gradient penalty of WGAN-GP needs a
            critic without batch statistics). Defaults to "batch".
        kernel_size: int. Kernel size of every convolution. Defaults to 4.
        input_channels: int. Channels of the input. Defaults to 3 (L and ab).

    Inputs: model-space L (L*/50 - 1) and ab (a*/128, b*/128) concatenated,
        values in [-1, 1], float, shape `(N, H, W, input_channels)`, H and W
        at least 24 (at the defaults).
    Outputs: logits (or critic scores), float32, shape `(N, H', W', 1)`;
        H' = H / 8 - 2 for H a multiple of 8.

    Examples:
        >>> from keras_colorize.models import PatchGANDiscriminator
        >>> critic = PatchGANDiscriminator(filters=(8, 16, 16, 32), normalization=None)
        >>> critic.receptive_field
        70
    """

    def __init__(
        self,
        filters=(64, 128, 256, 512),
        normalization="batch",
        kernel_size=4,
        input_channels=3,
        **kwargs,
    ):
        filters = tuple(int(f) for f in filters)
        if not filters:
            raise UserInputError("PatchGANDiscriminator needs at least one entry in filters")
        if normalization not in NORMALIZATIONS:
            raise UserInputError(
                f"PatchGANDiscriminator normalization must be 'batch' or null, got {normalization!r}"
            )
        name = kwargs.pop("name", None) or "patchgan_discriminator"

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="lab_input")
        x = inputs
        for index, block_filters in enumerate(filters):
            block = f"block_{index + 1}"
            normalize = normalization == "batch" and index > 0
            x = layers.ZeroPadding2D(1, name=f"{block}_pad")(x)
            x = FastConv2D(
                block_filters,
                kernel_size,
                strides=2 if index < len(filters) - 1 else 1,
                padding="valid",
                use_bias=not normalize,
                name=f"{block}_conv",
            )(x)
            if normalize:
                x = FastBatchNormalization(name=f"{block}_bn")(x)
            x = layers.LeakyReLU(negative_slope=0.2, name=f"{block}_act")(x)
        x = layers.ZeroPadding2D(1, name="logits_pad")(x)
        outputs = FastConv2D(1, kernel_size, padding="valid", dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.filters = filters
        self.normalization = normalization
        self.kernel_size = kernel_size
        self.input_channels = input_channels

    @property
    def receptive_field(self):
        """Side in input pixels of the patch that one output logit sees."""
        field, jump = 1, 1
        for layer in self.layers:
            if isinstance(layer, layers.Conv2D):
                field += (layer.kernel_size[0] - 1) * jump
                jump *= layer.strides[0]
        return field

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "filters": list(self.filters),
            "normalization": self.normalization,
            "kernel_size": self.kernel_size,
            "input_channels": self.input_channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
