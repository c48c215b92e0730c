"""Reusable building blocks."""

from keras_colorize.layers.ab_decoding import AnnealedMeanDecoding
from keras_colorize.layers.attention import SelfAttention2D
from keras_colorize.layers.blocks import decoder_block, encoder_block
from keras_colorize.layers.fast_paths import FastBatchNormalization, FastConv2D
from keras_colorize.layers.gray_input import GrayToBackboneInput
from keras_colorize.layers.transposed_conv import PhaseSplitConv2DTranspose

__all__ = [
    "AnnealedMeanDecoding",
    "FastBatchNormalization",
    "FastConv2D",
    "GrayToBackboneInput",
    "PhaseSplitConv2DTranspose",
    "SelfAttention2D",
    "decoder_block",
    "encoder_block",
]
