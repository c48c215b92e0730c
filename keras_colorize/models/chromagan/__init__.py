"""ChromaGAN-style generator: a pix2pix U-Net with a scene-classification branch."""

from keras_colorize.models.chromagan.chromagan import ChromaGANGenerator

__all__ = ["ChromaGANGenerator"]
