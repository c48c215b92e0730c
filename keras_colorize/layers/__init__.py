"""Reusable building blocks."""

from keras_colorize.layers.blocks import decoder_block, encoder_block
from keras_colorize.layers.fast_paths import FastBatchNormalization, FastConv2D
from keras_colorize.layers.transposed_conv import PhaseSplitConv2DTranspose

__all__ = ["FastBatchNormalization", "FastConv2D", "PhaseSplitConv2DTranspose", "decoder_block", "encoder_block"]
