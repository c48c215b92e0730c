"""Encoder and decoder blocks of the pix2pix-style U-Nets, as functional-API helpers.

Each helper creates named layers (`{name}_conv`, `{name}_bn`, ...) so weight paths
are stable for converters and optimizer routing.
"""

from keras import layers


def encoder_block(x, filters, strides, name, kernel_size=4, normalization=True, use_bias=True):
    """Conv2D (kernel 4, 'same') -> BatchNormalization -> LeakyReLU(0.2)."""
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv"
    )(x)
    if normalization:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.LeakyReLU(negative_slope=0.2, name=f"{name}_act")(x)


def decoder_block(x, filters, name, kernel_size=4, dropout_rate=0.0, use_bias=True):
    """Conv2DTranspose (kernel 4, stride 2) -> BatchNormalization -> [Dropout] -> ReLU."""
    x = layers.Conv2DTranspose(
        filters, kernel_size, strides=2, padding="same", use_bias=use_bias, name=f"{name}_deconv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)
