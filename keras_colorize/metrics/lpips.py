"""LPIPS v0.1 (Zhang et al., 2018) in Keras: a metric, a per-image function and a loss.

The distance between two sRGB images in [0, 1] is computed as by the LPIPS authors'
package (`lpips.LPIPS(net=..., version="0.1")` on inputs in [-1, 1]):

1. map [0, 1] to [-1, 1], then the LPIPS scaling layer `(x - shift) / scale` with
   shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450);
2. the ReLU outputs of five stages of an ImageNet AlexNet (or VGG16) backbone;
3. each feature vector divided by its Euclidean norm over channels plus 1e-10;
4. the squared difference of the two normalised maps, weighted per channel by the
   non-negative 1x1 linear layer of the stage, averaged over the spatial positions;
5. the sum over the five stages.

Every operation is differentiable on all backends (the norm's square root is taken
of a value floored at 1e-20, so all-zero feature vectors keep finite gradients and
the value is unchanged), so `LPIPSLoss` trains models as a perceptual loss.

References:
    Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable Effectiveness of Deep
    Features as a Perceptual Metric", CVPR 2018.
"""

import keras
from keras import ops

from keras_colorize.metrics._common import ImageMetric, prepare_pair
from keras_colorize.metrics.weights import (
    LPIPS_CONV_LAYERS,
    LPIPS_LINEAR_LAYERS,
    canonical_lpips_network,
    lpips_weights_path,
    read_weight_file,
)
from keras_colorize.serialization import register

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# The LPIPS authors' epsilon in `normalize_tensor`: x / (||x|| + 1e-10).
LPIPS_NORM_EPSILON = 1e-10
# Floor of the squared norm before the square root (gradient stays finite at 0).
_SQUARED_NORM_FLOOR = 1e-20
# Smallest height and width each backbone accepts (its last stage is at least 1x1).
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
_VGG_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


@register
class LPIPSInputScaling(keras.layers.Layer):
    """Maps sRGB in [0, 1] to the LPIPS backbone input: (2x - 1 - shift) / scale, per channel.

    Inputs: sRGB in [0, 1], shape (N, H, W, 3). Outputs: float32, same shape.
    """

    def call(self, images):
        shift = ops.convert_to_tensor(LPIPS_SHIFT, dtype=self.compute_dtype)
        scale = ops.convert_to_tensor(LPIPS_SCALE, dtype=self.compute_dtype)
        return (2.0 * images - 1.0 - shift) / scale


@register
class NormalizedSquaredDifference(keras.layers.Layer):
    """(f0 / (||f0|| + eps) - f1 / (||f1|| + eps))^2, the norm over the channel axis.

    Inputs: two feature maps of shape (N, H, W, C). Output: shape (N, H, W, C).

    Args:
        epsilon: float. Added to the norm. Defaults to 1e-10 (the LPIPS authors' value).
    """

    def __init__(self, epsilon=LPIPS_NORM_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def _normalize(self, features):
        squared = ops.sum(ops.square(features), axis=-1, keepdims=True)
        return features / (ops.sqrt(ops.maximum(squared, _SQUARED_NORM_FLOOR)) + self.epsilon)

    def call(self, inputs):
        first, second = inputs
        return ops.square(self._normalize(first) - self._normalize(second))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@register
class SumOverStages(keras.layers.Layer):
    """Sums a list of (N, 1) tensors into one value per image, shape (N,)."""

    def call(self, inputs):
        return ops.sum(ops.concatenate(inputs, axis=-1), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)


def lpips_backbone(network="alex"):
    """The LPIPS feature network: five ReLU stages of AlexNet or VGG16.

    Layer names are those of the weight files ("conv1".."conv5" for AlexNet,
    "conv1_1".."conv5_3" for VGG16). Padding and pooling follow torchvision
    (AlexNet's first convolution pads by 2 with stride 4, max pools are 'valid').

    Args:
        network: str. "alex" or "vgg". Defaults to "alex".

    Returns:
        keras.Model: input of shape (N, H, W, 3) on the LPIPS input scale
        (`LPIPSInputScaling`), outputs the list of five ReLU feature maps.
    """
    network = canonical_lpips_network(network)
    inputs = keras.Input((None, None, 3), name="scaled_images")
    outputs = []
    if network == "alex":
        x = keras.layers.ZeroPadding2D(2, name="conv1_pad")(inputs)
        x = keras.layers.Conv2D(64, 11, strides=4, activation="relu", name="conv1")(x)
        outputs.append(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        x = keras.layers.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(x)
        outputs.append(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool2")(x)
        for name, filters in (("conv3", 384), ("conv4", 256), ("conv5", 256)):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
            outputs.append(x)
    else:
        x = inputs
        for stage, widths in enumerate(_VGG_STAGES, start=1):
            if stage > 1:
                x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{stage - 1}")(x)
            for index, filters in enumerate(widths, start=1):
                x = keras.layers.Conv2D(
                    filters, 3, padding="same", activation="relu", name=f"conv{stage}_{index}"
                )(x)
            outputs.append(x)
    return keras.Model(inputs, outputs, name=f"lpips_{network}_backbone")


@register
class LPIPSNetwork(keras.Model):
    """The LPIPS v0.1 network: two sRGB batches in, one distance per image out.

    Built with random weights; `load_lpips_network` (or `load_weights_file`) loads
    the converted pretrained ones. Not trainable by default.

    Args:
        network: str. "alex" (AlexNet, the default of the LPIPS authors) or "vgg"
            (VGG16). Defaults to "alex".

    Inputs of `call`: `[y_true, y_pred]`, sRGB in [0, 1], float32, each of shape
    (N, H, W, 3), H and W at least 31 (AlexNet) or 16 (VGG16).
    Outputs of `call`: float32 distances of shape (N,), 0 for identical images.

    Examples:
        >>> from keras_colorize.metrics import load_lpips_network
        >>> network = load_lpips_network("alex")  # doctest: +SKIP
        >>> distances = network([y_true, y_pred])  # doctest: +SKIP
    """

    def __init__(self, network="alex", trainable=False, **kwargs):
        network = canonical_lpips_network(network)
        y_true = keras.Input((None, None, 3), name="y_true")
        y_pred = keras.Input((None, None, 3), name="y_pred")
        scaling = LPIPSInputScaling(name="scaling")
        backbone = lpips_backbone(network)
        features_true = backbone(scaling(y_true))
        features_pred = backbone(scaling(y_pred))
        stages = []
        for index, (first, second) in enumerate(zip(features_true, features_pred)):
            difference = NormalizedSquaredDifference(name=f"difference{index}")([first, second])
            weighted = keras.layers.Conv2D(1, 1, use_bias=False, name=LPIPS_LINEAR_LAYERS[index])(difference)
            stages.append(keras.layers.GlobalAveragePooling2D(name=f"spatial_mean{index}")(weighted))
        distance = SumOverStages(name="distance")(stages)
        kwargs.setdefault("name", f"lpips_{network}")
        super().__init__(inputs=[y_true, y_pred], outputs=distance, **kwargs)
        self.network = network
        self.trainable = trainable

    def backbone(self):
        """The feature network (a `keras.Model`) shared by both inputs."""
        return self.get_layer(f"lpips_{self.network}_backbone")

    def weight_shapes(self):
        """Shapes of the arrays of a weight file for this network, by key."""
        shapes = {}
        for layer_name in LPIPS_CONV_LAYERS[self.network]:
            layer = self.backbone().get_layer(layer_name)
            shapes[f"{layer_name}/kernel"] = tuple(layer.kernel.shape)
            shapes[f"{layer_name}/bias"] = tuple(layer.bias.shape)
        for layer_name in LPIPS_LINEAR_LAYERS:
            shapes[f"{layer_name}/kernel"] = tuple(self.get_layer(layer_name).kernel.shape)
        return shapes

    def load_weights_file(self, path):
        """Load a converted LPIPS `.npz` file (see `convert_lpips_weights`).

        Args:
            path: str or Path. The `.npz` file.
        """
        arrays = read_weight_file(path, self.weight_shapes())
        for layer_name in LPIPS_CONV_LAYERS[self.network]:
            self.backbone().get_layer(layer_name).set_weights(
                [arrays[f"{layer_name}/kernel"], arrays[f"{layer_name}/bias"]]
            )
        for layer_name in LPIPS_LINEAR_LAYERS:
            self.get_layer(layer_name).set_weights([arrays[f"{layer_name}/kernel"]])

    def get_config(self):
        return {"network": self.network, "trainable": self.trainable, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_NETWORKS = {}


def load_lpips_network(network="alex", weights=None):
    """The pretrained LPIPS network, loaded once per process and (network, file).

    Args:
        network: str. "alex" or "vgg". Defaults to "alex".
        weights: str or Path or None. A converted `.npz` file; None loads
            `weights_cache_dir() / "lpips_<network>.npz"`. Defaults to None.

    Returns:
        LPIPSNetwork: not trainable, with the weights loaded.

    Raises:
        WeightsNotFoundError: the weight file does not exist (the message names the
            converter to run).
    """
    network = canonical_lpips_network(network)
    path = lpips_weights_path(network, weights).resolve()
    key = (network, str(path), path.stat().st_mtime_ns)
    if key not in _NETWORKS:
        model = LPIPSNetwork(network)
        model.load_weights_file(path)
        _NETWORKS[key] = model
    return _NETWORKS[key]


def lpips_distance(y_true, y_pred, network="alex", weights=None):
    """LPIPS v0.1 distance per image pair (lower is more similar).

    Args:
        y_true: tensor. Reference images, sRGB in [0, 1], shape (N, H, W, 3),
            H and W at least 31 (AlexNet) or 16 (VGG16).
        y_pred: tensor. Compared images, sRGB in [0, 1], same shape.
        network: str. "alex" or "vgg". Defaults to "alex".
        weights: str or Path or None. Converted `.npz` file; None loads the cached
            one (see `convert_lpips_weights`). Defaults to None.

    Returns:
        float32 tensor of shape (N,): the distances, 0 for identical images;
        differentiable with respect to both inputs.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.metrics import lpips_distance
        >>> images = np.random.default_rng(0).random((2, 64, 64, 3), dtype="float32")
        >>> distances = lpips_distance(images, images[::-1])  # doctest: +SKIP
    """
    network = canonical_lpips_network(network)
    y_true, y_pred = prepare_pair(y_true, y_pred, min_size=LPIPS_MIN_SIZE[network])
    model = load_lpips_network(network, weights)
    return ops.cast(model([y_true, y_pred]), "float32")


@register
class LPIPS(ImageMetric):
    """Mean LPIPS v0.1 distance over images (lower is better).

    `update_state(y_true, y_pred, sample_weight=None)` takes sRGB batches in
    [0, 1] of shape (N, H, W, 3) and maps them to [-1, 1] itself; see
    `lpips_distance`. Works eagerly and inside compiled `fit`/`evaluate` steps.

    Args:
        network: str. "alex" (AlexNet) or "vgg" (VGG16). Defaults to "alex".
        weights: str or Path or None. Converted `.npz` file; None loads
            `weights_cache_dir() / "lpips_<network>.npz"` (an error naming the
            converter when it is missing). Defaults to None.
        name: str. Name of the metric. Defaults to "lpips".
        dtype: str. Dtype of the result. Defaults to None (floatx).

    Examples:
        >>> from keras_colorize.metrics import LPIPS
        >>> metric = LPIPS()  # doctest: +SKIP
        >>> metric.update_state(y_true, y_pred)  # doctest: +SKIP
        >>> float(metric.result())  # doctest: +SKIP
    """

    def __init__(self, network="alex", weights=None, name="lpips", dtype=None):
        self.network = canonical_lpips_network(network)
        self.weights_path = None if weights is None else str(weights)
        load_lpips_network(self.network, weights)  # fail now if the file is missing

        def distance(y_true, y_pred):
            return lpips_distance(y_true, y_pred, self.network, self.weights_path)

        super().__init__(distance, name=name, dtype=dtype, direction="down")

    def get_config(self):
        return {**super().get_config(), "network": self.network, "weights": self.weights_path}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register
class LPIPSLoss(keras.losses.Loss):
    """LPIPS v0.1 as a training loss: the per-image distance, reduced over the batch.

    `call(y_true, y_pred)` takes sRGB in [0, 1], shape (N, H, W, 3), and returns
    the distances of shape (N,); gradients flow to both inputs (the LPIPS network
    itself stays frozen).

    Args:
        network: str. "alex" or "vgg". Defaults to "alex".
        weights: str or Path or None. Converted `.npz` file; None loads the cached
            one. Defaults to None.
        reduction: str. Keras loss reduction. Defaults to "sum_over_batch_size".
        name: str. Name of the loss. Defaults to "lpips".

    Examples:
        `model` produces sRGB in [0, 1]:

        >>> from keras_colorize.metrics import LPIPSLoss
        >>> model.compile(optimizer="adam", loss=LPIPSLoss())  # doctest: +SKIP
    """

    def __init__(self, network="alex", weights=None, reduction="sum_over_batch_size", name="lpips", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.network = canonical_lpips_network(network)
        self.weights_path = None if weights is None else str(weights)
        load_lpips_network(self.network, weights)

    def call(self, y_true, y_pred):
        return lpips_distance(y_true, y_pred, self.network, self.weights_path)

    def get_config(self):
        return {**super().get_config(), "network": self.network, "weights": self.weights_path}
