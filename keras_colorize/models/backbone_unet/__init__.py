"""U-Net decoders on pretrained image backbones (the built-in VGG16 or keras-hub's)."""

from keras_colorize.models.backbone_unet.backbone_unet import BackboneUNet
from keras_colorize.models.backbone_unet.vgg16 import VGG16Encoder

__all__ = ["BackboneUNet", "VGG16Encoder"]
