"""pix2pix-style U-Net colorizers: L in [-1, 1] -> ab in [-1, 1].

References:
    Isola et al., "Image-to-Image Translation with Conditional Adversarial
    Networks", CVPR 2017.
"""

import keras
from keras import layers

from keras_colorize.errors import UserInputError
from keras_colorize.layers import FastConv2D, decoder_block, encoder_block
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
        outputs = FastConv2D(
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

    @property
    def fusion_points(self):
        """Names of the points where `call_with_hook` exposes feature maps, in order.

        "encoder_1" .. "encoder_n" are the encoder block outputs; "decoder_1" ..
        "decoder_{n-1}" the decoder block outputs after their skip concatenation
        (what the next layer reads).
        """
        encoder = [f"encoder_{i + 1}" for i in range(len(self.encoder_filters))]
        decoder = [f"decoder_{i + 1}" for i in range(len(self.decoder_filters))]
        return encoder + decoder

    @property
    def fusion_point_channels(self):
        """Channels of the feature map at each fusion point: dict name -> int."""
        channels = {f"encoder_{i + 1}": f for i, f in enumerate(self.encoder_filters)}
        depth = len(self.encoder_filters)
        for i, filters in enumerate(self.decoder_filters):
            skip = self.encoder_filters[depth - 2 - i] if self.skip_connections else 0
            channels[f"decoder_{i + 1}"] = filters + skip
        return channels

    @property
    def fusion_point_strides(self):
        """Downsampling factor of the feature map at each fusion point (input size /
        map size): dict name -> int; 1 is full resolution."""
        depth = len(self.encoder_filters)
        strides = {f"encoder_{i + 1}": 2**i for i in range(depth)}
        strides.update({f"decoder_{i + 1}": 2 ** (depth - 2 - i) for i in range(len(self.decoder_filters))})
        return strides

    def call_with_hook(self, l_norm, hook, training=None, stop_at=None):
        """Run the network layer by layer, letting `hook` read or replace the
        feature map at every fusion point.

        The layers and their order are those of the functional model: with the
        identity hook the output equals `model(l_norm)` exactly. A replaced map
        feeds everything downstream (the next block and, for encoder points,
        the skip concatenation).

        Args:
            l_norm: tensor. Model-space L (L*/50 - 1) in [-1, 1], shape
                `(N, H, W, input_channels)`, H and W multiples of `size_divisor`.
            hook: callable `(point, tensor) -> tensor`. Called at each name of
                `fusion_points` in order, with the feature map of shape
                `(N, H / stride, W / stride, channels)` (see
                `fusion_point_strides` and `fusion_point_channels`); returns the
                map to use from there on (same shape).
            training: bool or None. Training mode of batch normalization and
                dropout. Defaults to None.
            stop_at: str or None. A fusion point: return the hooked feature map
                there and skip the rest of the network. Defaults to None.

        Returns:
            Model-space ab in [-1, 1], shape `(N, H, W, output_channels)`, or the
            feature map at `stop_at`.
        """
        if stop_at is not None and stop_at not in self.fusion_points:
            raise UserInputError(
                f"unknown fusion point {stop_at!r} (expected one of: {', '.join(self.fusion_points)})"
            )
        names = {layer.name for layer in self.layers}

        def apply(name, x):
            layer = self.get_layer(name)
            if isinstance(layer, (layers.BatchNormalization, layers.Dropout)):
                return layer(x, training=training)
            return layer(x)

        x = l_norm
        skips = []
        for index in range(len(self.encoder_filters)):
            point = f"encoder_{index + 1}"
            for suffix in ("conv", "bn", "act"):
                if f"{point}_{suffix}" in names:
                    x = apply(f"{point}_{suffix}", x)
            x = hook(point, x)
            if point == stop_at:
                return x
            skips.append(x)
        mirrored = list(reversed(skips[:-1]))
        for index in range(len(self.decoder_filters)):
            point = f"decoder_{index + 1}"
            for suffix in ("deconv", "bn", "dropout", "act"):
                if f"{point}_{suffix}" in names:
                    x = apply(f"{point}_{suffix}", x)
            if self.skip_connections:
                x = apply(f"{point}_skip", [x, mirrored[index]])
            x = hook(point, x)
            if point == stop_at:
                return x
        return apply("ab_output", x)

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
