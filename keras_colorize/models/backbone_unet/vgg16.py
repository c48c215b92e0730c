"""VGG16's convolutional part with torchvision's layout, as a feature-pyramid encoder.

The thirteen 3x3 convolutions (ReLU) and four 2x2 max pools of torchvision's
`vgg16().features` up to `conv5_3`, named "conv1_1" .. "conv5_3" as in the converted
weight files (`keras_colorize.metrics.weights.convert_vgg16_weights`). The pretrained
weights are torchvision's ImageNet ones (the `IMAGENET1K_V1` weights that LPIPS uses),
which expect sRGB in [0, 1] normalised per channel with `IMAGENET_MEAN` and
`IMAGENET_STD`.

References:
    Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
    Recognition", ICLR 2015.
"""

import keras

from keras_colorize.layers import FastConv2D
from keras_colorize.serialization import register

VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Filters of the convolutions of each stage; stage k (1-based) runs at stride 2^(k-1)."""

VGG16_CONV_LAYERS = tuple(
    f"conv{stage}_{index}" for stage, widths in enumerate(VGG16_STAGES, start=1) for index in range(1, len(widths) + 1)
)
"""Names of the thirteen convolutions, in order."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel mean of torchvision's ImageNet normalisation, sRGB in [0, 1]."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of torchvision's ImageNet normalisation, sRGB in [0, 1]."""


@register
class VGG16Encoder(keras.Model):
    """VGG16 up to `conv5_3` (14,714,688 parameters), with feature-pyramid outputs.

    `pyramid_outputs` follows keras-hub's `FeaturePyramidBackbone`: "Pn" is the
    feature map at stride 2^n, here the last ReLU of each stage: "P0" `conv1_2`
    (64 channels), "P1" `conv2_2` (128), "P2" `conv3_3` (256), "P3" `conv4_3` (512),
    "P4" `conv5_3` (512).

    Args:
        image_shape: tuple. Input shape, channels last. Defaults to (None, None, 3).

    Inputs: sRGB normalised with `IMAGENET_MEAN` and `IMAGENET_STD`, float,
        shape (N, H, W, 3).
    Outputs: the `conv5_3` features, shape (N, H / 16, W / 16, 512).

    Examples:
        >>> from keras_colorize.models.backbone_unet import VGG16Encoder
        >>> encoder = VGG16Encoder()
        >>> sorted(encoder.pyramid_outputs)
        ['P0', 'P1', 'P2', 'P3', 'P4']
    """

    def __init__(self, image_shape=(None, None, 3), **kwargs):
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        x = inputs
        pyramid_outputs = {}
        for stage, widths in enumerate(VGG16_STAGES, start=1):
            if stage > 1:
                x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{stage - 1}")(x)
            for index, filters in enumerate(widths, start=1):
                x = FastConv2D(filters, 3, padding="same", activation="relu", name=f"conv{stage}_{index}")(x)
            pyramid_outputs[f"P{stage - 1}"] = x
        kwargs.setdefault("name", "vgg16_encoder")
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self.image_shape = tuple(image_shape)
        self._pyramid_outputs = pyramid_outputs

    @property
    def pyramid_outputs(self):
        """dict str -> KerasTensor: the feature map at stride 2^n under "Pn"."""
        return self._pyramid_outputs

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "image_shape": list(self.image_shape)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def weight_arrays(self, path):
        """Converted VGG16 weights keyed by this encoder's variable paths.

        Args:
            path: str or Path. A `.npz` file with `conv<k>_<i>/kernel` (Keras
                layout, (3, 3, in, out)) and `conv<k>_<i>/bias` arrays
                (`convert_vgg16_weights`, or an LPIPS VGG file).

        Returns:
            dict str -> float32 array: variable path -> value, for the 26 kernels
            and biases (with LoRA enabled, the frozen base kernels).
        """
        from keras_colorize.metrics.weights import read_weight_file

        variables = {variable.path: variable for variable in self.variables}
        keys = [f"{name}/{kind}" for name in VGG16_CONV_LAYERS for kind in ("kernel", "bias")]
        missing = [key for key in keys if key not in variables]
        if missing:
            raise ValueError(f"{self.name} has no variable {missing[0]!r}")
        arrays = read_weight_file(path, {key: tuple(variables[key].shape) for key in keys})
        return {key: arrays[key] for key in keys}

    def load_weights_file(self, path):
        """Load converted VGG16 weights (see `weight_arrays`).

        Returns:
            set of str: the variable paths that were set.
        """
        arrays = self.weight_arrays(path)
        for variable in self.variables:
            if variable.path in arrays:
                variable.assign(arrays[variable.path])
        return set(arrays)
