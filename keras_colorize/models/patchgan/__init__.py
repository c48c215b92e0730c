"""PatchGAN discriminator (BatchNorm) and WGAN-GP critic (no normalisation)."""

from keras_colorize.models.patchgan.patchgan import PatchGANDiscriminator

__all__ = ["PatchGANDiscriminator"]
