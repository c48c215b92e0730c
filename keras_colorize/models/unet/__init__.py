"""pix2pix-style U-Nets: v1 with skip concatenations, v2 without."""

from keras_colorize.models.unet.unet import UNet, UNetV1, UNetV2

__all__ = ["UNet", "UNetV1", "UNetV2"]
