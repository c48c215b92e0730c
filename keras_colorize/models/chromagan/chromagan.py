"""A pix2pix U-Net colorizer with a parallel classification branch whose
global features are fused into the bottleneck (after ChromaGAN).

References:
    Isola et al., "Image-to-Image Translation with Conditional Adversarial
    Networks", CVPR 2017.
    Vitoria, Raad and Ballester, "ChromaGAN: Adversarial Picture Colorization
    with Semantic Class Distribution", WACV 2020.
"""

import keras
from keras import layers

from keras_colorize.errors import UserInputError
from keras_colorize.layers import PhaseSplitConv2DTranspose, decoder_block, encoder_block
from keras_colorize.models.registry import register_model


@register_model
class ChromaGANGenerator(keras.Model):
    """U-Net generator (L -> ab) with a classification branch fused into it.

    Generator: the pix2pix U-Net. Encoder blocks are 4x4 stride-2 convolutions
    (the first with a bias and no normalisation, the others bias-free with
    BatchNorm), each followed by LeakyReLU(0.2), down to
    `image_size / 2 ** len(encoder_filters)` (1x1 at the defaults). Decoder
    blocks are 4x4 stride-2 transposed convolutions (bias-free) with BatchNorm,
    dropout on the first `dropout_blocks`, ReLU, each concatenated with the
    mirrored encoder output; a last 4x4 stride-2 transposed convolution to 2
    channels with tanh gives ab.

    Branch: reads the output of encoder block `branch_from` (32x32x256 at the
    defaults), runs `branch_filters` more encoder blocks (stride 2, BatchNorm,
    LeakyReLU(0.2)) and flattens (4x4x512 = 8,192 features at the defaults).
    Fusion: Dense layers of `fusion_units` with LeakyReLU(0.2); the last vector
    is broadcast over the bottleneck and concatenated with it, so the first
    decoder block reads 512 + 512 = 1,024 channels. Head: Dense layers of
    `head_units`, each with dropout and ReLU, then Dense(num_classes) logits.

    Parameters at the defaults (BatchNorm moving statistics included), 97,110,031
    in all:

    - the plain pix2pix U-Net would have 54,421,826: encoder 19,542,592
      (1,088 + 131,584 + 525,312 + 2,099,200 + 4 x 4,196,352) and decoder
      34,879,234 (4,196,352 + 3 x 8,390,656 + 4,195,328 + 1,049,088 + 262,400
      + 4,098 for the ab output);
    - the fusion doubles the first decoder block's input channels, adding
      4 * 4 * 512 * 512 = 4,194,304, so the L -> ab path of the U-Net holds
      58,616,130;
    - branch blocks 10,491,904 (2,099,200 + 2 x 4,196,352);
    - fusion Dense layers 8,914,432 (8,192 * 1,024 + 1,024 + 1,024 * 512 + 512);
    - classification head 19,087,565 (8,192 * 2,048 + 2,048 + 2,048 * 1,024
      + 1,024 + 1,024 * 205 + 205).

    The Dense layers fix the input size: the model is built for
    `image_size` x `image_size` inputs only.

    Args:
        num_classes: int. Number of scene classes. Defaults to 205 (Places205).
        encoder_filters: sequence of int. Filters of the encoder blocks, all at
            stride 2. Defaults to (64, 128, 256, 512, 512, 512, 512, 512).
        decoder_filters: sequence of int. Filters of the decoder blocks, one
            fewer than the encoder blocks. Defaults to
            (512, 512, 512, 512, 256, 128, 64).
        branch_filters: sequence of int. Filters of the branch's encoder blocks
            (stride 2). Defaults to (512, 512, 512).
        branch_from: int. The encoder block (1-based) whose output the branch
            reads. Defaults to 3.
        fusion_units: sequence of int. Units of the fusion Dense layers; empty
            for no fusion. Defaults to (1024, 512).
        head_units: sequence of int. Units of the hidden Dense layers of the
            classification head. Defaults to (2048, 1024).
        dropout_blocks: int. Number of leading decoder blocks with dropout.
            Defaults to 3.
        dropout_rate: float. Dropout rate of the first decoder blocks and of
            the head's hidden layers. Defaults to 0.5.
        image_size: int. Input height and width; a multiple of
            `2 ** len(encoder_filters)` (`size_divisor`). Defaults to 256.

    Inputs: model-space L (L*/50 - 1) in [-1, 1], float, shape
        `(N, image_size, image_size, 1)`.
    Outputs: a dict with "ab": model-space ab (a*/128, b*/128) in [-1, 1]
        (tanh), float32, shape `(N, image_size, image_size, 2)`, and
        "class_logits": float32, shape `(N, num_classes)`.

    Examples:
        >>> from keras_colorize.models import ChromaGANGenerator
        >>> tiny = ChromaGANGenerator(
        ...     num_classes=5, encoder_filters=(8, 16, 16, 16), decoder_filters=(16, 16, 8),
        ...     branch_filters=(16,), branch_from=2, fusion_units=(16,), head_units=(16,),
        ...     image_size=32)
        >>> shapes = tiny.compute_output_shape((1, 32, 32, 1))
        >>> tuple(shapes["ab"]), tuple(shapes["class_logits"])
        ((1, 32, 32, 2), (1, 5))
    """

    def __init__(
        self,
        num_classes=205,
        encoder_filters=(64, 128, 256, 512, 512, 512, 512, 512),
        decoder_filters=(512, 512, 512, 512, 256, 128, 64),
        branch_filters=(512, 512, 512),
        branch_from=3,
        fusion_units=(1024, 512),
        head_units=(2048, 1024),
        dropout_blocks=3,
        dropout_rate=0.5,
        image_size=256,
        **kwargs,
    ):
        encoder_filters = tuple(int(f) for f in encoder_filters)
        decoder_filters = tuple(int(f) for f in decoder_filters)
        branch_filters = tuple(int(f) for f in branch_filters)
        fusion_units = tuple(int(u) for u in fusion_units)
        head_units = tuple(int(u) for u in head_units)
        num_classes, branch_from, image_size = int(num_classes), int(branch_from), int(image_size)
        depth = len(encoder_filters)
        if depth < 2 or len(decoder_filters) != depth - 1:
            raise UserInputError(
                f"ChromaGANGenerator needs at least 2 encoder blocks and one decoder block fewer than "
                f"encoder blocks; got {depth} encoder and {len(decoder_filters)} decoder blocks"
            )
        if image_size < 2**depth or image_size % 2**depth:
            raise UserInputError(
                f"ChromaGANGenerator image_size must be a multiple of 2 ** {depth} = {2**depth}, got {image_size}"
            )
        if not 1 <= branch_from <= depth:
            raise UserInputError(f"ChromaGANGenerator branch_from must be in 1..{depth}, got {branch_from}")
        branch_depth = branch_from + len(branch_filters)
        if image_size % 2**branch_depth:
            raise UserInputError(
                f"ChromaGANGenerator image_size {image_size} must be a multiple of 2 ** {branch_depth} "
                f"(branch_from + len(branch_filters)) for the classification branch"
            )
        if num_classes < 1:
            raise UserInputError(f"ChromaGANGenerator num_classes must be at least 1, got {num_classes}")
        name = kwargs.pop("name", None) or "chromagan_generator"

        # === Functional model ===
        inputs = keras.Input(shape=(image_size, image_size, 1), name="l_input")
        x = inputs
        skips = []
        for index, filters in enumerate(encoder_filters):
            x = encoder_block(
                x, filters, strides=2, name=f"encoder_{index + 1}", normalization=index > 0, use_bias=index == 0
            )
            skips.append(x)

        # Classification branch on a mid-level encoder output.
        branch = skips[branch_from - 1]
        for index, filters in enumerate(branch_filters):
            branch = encoder_block(branch, filters, strides=2, name=f"branch_{index + 1}", use_bias=False)
        branch = layers.Flatten(name="branch_flatten")(branch)

        # Global features fused into the bottleneck.
        if fusion_units:
            fused = branch
            for index, units in enumerate(fusion_units):
                fused = layers.Dense(units, name=f"fusion_{index + 1}_dense")(fused)
                fused = layers.LeakyReLU(negative_slope=0.2, name=f"fusion_{index + 1}_act")(fused)
            fused = layers.Reshape((1, 1, fusion_units[-1]), name="fusion_reshape")(fused)
            bottleneck_size = image_size // 2**depth
            if bottleneck_size > 1:
                fused = layers.UpSampling2D(bottleneck_size, name="fusion_broadcast")(fused)
            x = layers.Concatenate(name="fusion_concat")([x, fused])

        # Decoder with skip concatenations.
        for index, (filters, skip) in enumerate(zip(decoder_filters, reversed(skips[:-1]))):
            x = decoder_block(
                x,
                filters,
                name=f"decoder_{index + 1}",
                dropout_rate=dropout_rate if index < dropout_blocks else 0.0,
                use_bias=False,
            )
            x = layers.Concatenate(name=f"decoder_{index + 1}_skip")([x, skip])
        ab = PhaseSplitConv2DTranspose(
            2, 4, strides=2, padding="same", activation="tanh", dtype="float32", name="ab_output"
        )(x)

        # Classification head.
        head = branch
        for index, units in enumerate(head_units):
            head = layers.Dense(units, name=f"head_{index + 1}_dense")(head)
            if dropout_rate:
                head = layers.Dropout(dropout_rate, name=f"head_{index + 1}_dropout")(head)
            head = layers.ReLU(name=f"head_{index + 1}_act")(head)
        class_logits = layers.Dense(num_classes, dtype="float32", name="class_logits")(head)

        super().__init__(inputs=inputs, outputs={"ab": ab, "class_logits": class_logits}, name=name, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.encoder_filters = encoder_filters
        self.decoder_filters = decoder_filters
        self.branch_filters = branch_filters
        self.branch_from = branch_from
        self.fusion_units = fusion_units
        self.head_units = head_units
        self.dropout_rate = dropout_rate
        self.dropout_blocks = dropout_blocks
        self.image_size = image_size

    @property
    def size_divisor(self):
        """Input height and width must be multiples of this (and equal `image_size`)."""
        return 2 ** len(self.encoder_filters)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "encoder_filters": list(self.encoder_filters),
            "decoder_filters": list(self.decoder_filters),
            "branch_filters": list(self.branch_filters),
            "branch_from": self.branch_from,
            "fusion_units": list(self.fusion_units),
            "head_units": list(self.head_units),
            "dropout_rate": self.dropout_rate,
            "dropout_blocks": self.dropout_blocks,
            "image_size": self.image_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
