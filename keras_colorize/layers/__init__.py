"""Reusable building blocks."""

from keras_colorize.layers.blocks import decoder_block, encoder_block

__all__ = ["decoder_block", "encoder_block"]
