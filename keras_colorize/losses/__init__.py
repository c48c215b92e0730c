"""Losses: reconstruction (L1, L2, Huber)."""

from keras_colorize.losses.reconstruction import RECONSTRUCTION_LOSSES, get_reconstruction_loss

__all__ = ["RECONSTRUCTION_LOSSES", "get_reconstruction_loss"]
