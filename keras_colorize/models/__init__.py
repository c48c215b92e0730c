"""The model zoo. Importing this package registers every family."""

from keras_colorize.models.backbone_unet import BackboneUNet, VGG16Encoder
from keras_colorize.models.chromagan import ChromaGANGenerator
from keras_colorize.models.fusion import FusionColorizer, SimpleWeightModel
from keras_colorize.models.patchgan import PatchGANDiscriminator
from keras_colorize.models.registry import get_model, get_model_class, list_models, register, register_model
from keras_colorize.models.unet import UNetV1, UNetV2

__all__ = [
    "BackboneUNet",
    "ChromaGANGenerator",
    "FusionColorizer",
    "PatchGANDiscriminator",
    "SimpleWeightModel",
    "UNetV1",
    "UNetV2",
    "VGG16Encoder",
    "get_model",
    "get_model_class",
    "list_models",
    "register",
    "register_model",
]
