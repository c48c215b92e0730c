"""Encoder and decoder blocks of the pix2pix-style U-Nets, as functional-API helpers.

Each helper creates named layers (`{name}_conv`, `{name}_bn`, ...) so weight paths
are stable for converters and optimizer routing.
"""

from keras import layers

from keras_colorize.layers.fast_paths import FastBatchNormalization, FastConv2D
from keras_colorize.layers.transposed_conv import PhaseSplitConv2DTranspose


def encoder_block(x, filters, strides, name, kernel_size=4, normalization=True, use_bias=True):
    """Conv2D ('same' padding) -> [BatchNormalization] -> LeakyReLU(0.2).

    Args:
        x: Keras tensor, channels last.
        filters: int. Filters of the convolution.
        strides: int. Stride of the convolution.
        name: str. Prefix of the layer names (`{name}_conv`, `{name}_bn`,
            `{name}_act`).
        kernel_size: int. Kernel size. Defaults to 4.
        normalization: bool. Add BatchNormalization. Defaults to True.
        use_bias: bool. Give the convolution a bias. Defaults to True.

    Returns:
        The block's output tensor.
    """
    x = FastConv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv"
    )(x)
    if normalization:
        x = FastBatchNormalization(name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=0.2, name=f"{name}_act")(x)


def decoder_block(x, filters, name, kernel_size=4, dropout_rate=0.0, use_bias=True):
    """Transposed convolution (stride 2, 'same' padding) -> BatchNormalization -> [Dropout] -> ReLU.

    The transposed convolution is a `PhaseSplitConv2DTranspose` (a
    `Conv2DTranspose` that trains fast on JAX).

    Args:
        x: Keras tensor, channels last.
        filters: int. Filters of the transposed convolution.
        name: str. Prefix of the layer names (`{name}_deconv`, `{name}_bn`,
            `{name}_dropout`, `{name}_act`).
        kernel_size: int. Kernel size. Defaults to 4.
        dropout_rate: float. Dropout rate; 0 for no Dropout layer. Defaults to 0.0.
        use_bias: bool. Give the transposed convolution a bias. Defaults to True.

    Returns:
        The block's output tensor, at twice the input's height and width.
    """
    x = PhaseSplitConv2DTranspose(
        filters, kernel_size, strides=2, padding="same", use_bias=use_bias, name=f"{name}_deconv"
    )(x)
    x = FastBatchNormalization(name=f"{name}_bn")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)
