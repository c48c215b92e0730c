"""pix2pix-style U-Net colorizers: L in [-1, 1] -> ab in [-1, 1].

References:
    Isola et al., "Image-to-Image Translation with Conditional Adversarial
    Networks", CVPR 2017.
"""

import keras
from keras import layers

from keras_colorize.errors import UserInputError
from keras_colorize.layers import decoder_block, encoder_block
from keras_colorize.models.registry import register_model


class UNet(keras.Model):
    """A U-Net of 4x4 convolutions, with or without skip concatenations.

    The first encoder block has stride 1, every other one stride 2; each decoder
    block doubles the resolution, so the input's height and width must be
    divisible by `2 ** (len(encoder_filters) - 1)` (see `size_divisor`). The
    network is fully convolutional: any such size works with the same weights.

    Args:
        encoder_filters: sequence of int. Filters of the encoder blocks (the first
            at stride 1, the rest at stride 2).
        decoder_filters: sequence of int. Filters of the decoder blocks, one fewer
            than the encoder blocks.
        skip_connections: bool. Concatenate each decoder output with the mirrored
            encoder output.
        dropout_blocks: int. Number of leading decoder blocks with dropout.
            Defaults to 3.
        dropout_rate: float. Dropout rate in those blocks. Defaults to 0.5.
        kernel_size: int. Kernel size of every convolution. Defaults to 4.
        input_channels: int. Channels of the input (1: model-space L). Defaults
            to 1.
        output_channels: int. Channels of the output (2: model-space ab).
            Defaults to 2.

    Inputs: model-space L in [-1, 1], float, shape `(N, H, W, input_channels)`.
    Outputs: model-space ab in [-1, 1] (tanh), shape `(N, H, W, output_channels)`.
    """

    def __init__(
        self,
        encoder_filters,
        decoder_filters,
        skip_connections,
        dropout_blocks=3,
        dropout_rate=0.5,
        kernel_size=4,
        input_channels=1,
        output_channels=2,
        **kwargs,
    ):
        encoder_filters = tuple(int(f) for f in encoder_filters)
        decoder_filters = tuple(int(f) for f in decoder_filters)
        if len(encoder_filters) < 2 or len(decoder_filters) != len(encoder_filters) - 1:
            raise UserInputError(
                f"a U-Net needs at least 2 encoder blocks and one decoder block fewer than encoder "
                f"blocks; got {len(encoder_filters)} encoder and {len(decoder_filters)} decoder blocks"
            )
        name = kwargs.pop("name", None) or type(self).__name__.lower()

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="l_input")
        x = inputs
        skips = []
        for index, filters in enumerate(encoder_filters):
            x = encoder_block(
                x, filters, strides=1 if index == 0 else 2, name=f"encoder_{index + 1}", kernel_size=kernel_size
            )
            skips.append(x)
        mirrored = reversed(skips[:-1])
        for index, (filters, skip) in enumerate(zip(decoder_filters, mirrored)):
            x = decoder_block(
                x,
                filters,
                name=f"decoder_{index + 1}",
                kernel_size=kernel_size,
                dropout_rate=dropout_rate if index < dropout_blocks else 0.0,
            )
            if skip_connections:
                x = layers.Concatenate(name=f"decoder_{index + 1}_skip")([x, skip])
        outputs = layers.Conv2D(
            output_channels, kernel_size, padding="same", activation="tanh", dtype="float32", name="ab_output"
        )(x)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.encoder_filters = encoder_filters
        self.decoder_filters = decoder_filters
        self.skip_connections = skip_connections
        self.dropout_blocks = dropout_blocks
        self.dropout_rate = dropout_rate
        self.kernel_size = kernel_size
        self.input_channels = input_channels
        self.output_channels = output_channels

    @property
    def size_divisor(self):
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.encoder_filters) - 1)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder_filters": list(self.encoder_filters),
            "decoder_filters": list(self.decoder_filters),
            "dropout_blocks": self.dropout_blocks,
            "dropout_rate": self.dropout_rate,
            "kernel_size": self.kernel_size,
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register_model
class UNetV1(UNet):
    """U-Net v1 with skip concatenations; 42,036,738 parameters at the defaults.

    Encoder 64 (stride 1), 64, 128, 256, 512, 512, 512, 512 (stride 2), each with
    BatchNorm and LeakyReLU(0.2); decoder 512, 512, 512, 256, 128, 64, 64 (4x4
    transposed convolutions, stride 2) with BatchNorm and ReLU, dropout 0.5 on
    the first three, each concatenated with the mirrored encoder output; a 4x4
    convolution to 2 channels with tanh. Designed for 256x256 inputs (any
    multiple of 128 works).

    Args:
        encoder_filters: sequence of int. Filters of the encoder blocks (the first
            at stride 1). Defaults to (64, 64, 128, 256, 512, 512, 512, 512).
        decoder_filters: sequence of int. One fewer than the encoder blocks.
            Defaults to (512, 512, 512, 256, 128, 64, 64).
        dropout_blocks: int. Leading decoder blocks with dropout. Defaults to 3.
        dropout_rate: float. Their dropout rate. Defaults to 0.5.
        kernel_size: int. Kernel size of every convolution. Defaults to 4.
        input_channels: int. Input channels. Defaults to 1.
        output_channels: int. Output channels. Defaults to 2.

    Inputs: model-space L (L*/50 - 1) in [-1, 1], float, shape `(N, H, W, 1)`,
        H and W multiples of `size_divisor`.
    Outputs: model-space ab ((a*, b*) / 128) in [-1, 1] (tanh), float32, shape
        `(N, H, W, 2)`.

    References:
        Isola et al., "Image-to-Image Translation with Conditional Adversarial
        Networks", CVPR 2017.

    Examples:
        >>> from keras_colorize.models import UNetV1
        >>> tiny = UNetV1(encoder_filters=(8, 16, 16), decoder_filters=(16, 8))
        >>> tiny.size_divisor
        4
    """

    def __init__(
        self,
        encoder_filters=(64, 64, 128, 256, 512, 512, 512, 512),
        decoder_filters=(512, 512, 512, 256, 128, 64, 64),
        dropout_blocks=3,
        dropout_rate=0.5,
        kernel_size=4,
        input_channels=1,
        output_channels=2,
        **kwargs,
    ):
        kwargs.pop("skip_connections", None)
        super().__init__(
            encoder_filters,
            decoder_filters,
            skip_connections=True,
            dropout_blocks=dropout_blocks,
            dropout_rate=dropout_rate,
            kernel_size=kernel_size,
            input_channels=input_channels,
            output_channels=output_channels,
            **kwargs,
        )


@register_model
class UNetV2(UNet):
    """U-Net v2: the v1 blocks without skip concatenations; 26,565,314 parameters.

    Encoder 64 (stride 1), 64, 128, 256, 512, 512, 512; decoder 512, 512, 512,
    256, 128, 64; a 4x4 convolution to 2 channels with tanh. Designed for
    128x128 inputs (any multiple of 64 works).

    Args:
        encoder_filters: sequence of int. Filters of the encoder blocks (the first
            at stride 1). Defaults to (64, 64, 128, 256, 512, 512, 512).
        decoder_filters: sequence of int. One fewer than the encoder blocks.
            Defaults to (512, 512, 512, 256, 128, 64).
        dropout_blocks: int. Leading decoder blocks with dropout. Defaults to 3.
        dropout_rate: float. Their dropout rate. Defaults to 0.5.
        kernel_size: int. Kernel size of every convolution. Defaults to 4.
        input_channels: int. Input channels. Defaults to 1.
        output_channels: int. Output channels. Defaults to 2.

    Inputs: model-space L (L*/50 - 1) in [-1, 1], float, shape `(N, H, W, 1)`,
        H and W multiples of `size_divisor`.
    Outputs: model-space ab ((a*, b*) / 128) in [-1, 1] (tanh), float32, shape
        `(N, H, W, 2)`.

    Examples:
        >>> from keras_colorize.models import UNetV2
        >>> tiny = UNetV2(encoder_filters=(8, 16, 16), decoder_filters=(16, 8))
        >>> tuple(tiny.compute_output_shape((1, 32, 32, 1)))
        (1, 32, 32, 2)
    """

    def __init__(
        self,
        encoder_filters=(64, 64, 128, 256, 512, 512, 512),
        decoder_filters=(512, 512, 512, 256, 128, 64),
        dropout_blocks=3,
        dropout_rate=0.5,
        kernel_size=4,
        input_channels=1,
        output_channels=2,
        **kwargs,
    ):
        kwargs.pop("skip_connections", None)
        super().__init__(
            encoder_filters,
            decoder_filters,
            skip_connections=False,
            dropout_blocks=dropout_blocks,
            dropout_rate=dropout_rate,
            kernel_size=kernel_size,
            input_channels=input_channels,
            output_channels=output_channels,
            **kwargs,
        )
