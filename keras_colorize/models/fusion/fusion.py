"""Instance-aware fusion: a full-image and an instance U-Net blended by learned weight maps.

At each fusion point the full-image feature map and the feature maps of the
instance crops (resized into their boxes) are blended per pixel with softmax
weights predicted by small convolutional networks, and the blend replaces the
full-image map for the rest of the network.

References:
    Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020.
"""

import keras
import numpy as np
from keras import layers, ops

from keras_colorize.color import normalize_l, rgb_to_lightness
from keras_colorize.colorizer import Colorizer, _to_float_rgb, ab_output, recombine
from keras_colorize.data.boxes import DEFAULT_MAX_INSTANCES, DEFAULT_MIN_SCORE, DEFAULT_MIN_VARIANCE
from keras_colorize.errors import UserInputError
from keras_colorize.layers import FastConv2D
from keras_colorize.models.fusion.placement import box_masks, place_in_boxes
from keras_colorize.models.registry import register, register_model
from keras_colorize.models.unet import UNet

# Logit given to an instance outside its box: its softmax term is then selected away.
_EXCLUDED_LOGIT = -1e9


@register
class WeightMapNetwork(layers.Layer):
    """Three 3x3 convolutions that turn a feature map into a weight-map logit.

    Conv(filters) -> ReLU -> Conv(filters) -> ReLU -> Conv(1), all 3x3 with
    'same' padding; 9 * C * f + f + 9 * f * f + f + 9 * f + 1 parameters for C
    input channels and f = `filters`.

    Args:
        filters: int. Width of the two hidden convolutions. Defaults to 16.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Inputs: a feature map, float, shape `(N, h, w, C)`.
    Outputs: the logit map, shape `(N, h, w, 1)` (no activation).

    Examples:
        >>> from keras_colorize.models.fusion import WeightMapNetwork
        >>> network = WeightMapNetwork(filters=4)
        >>> network.build((None, 8, 8, 2))
        >>> network.count_params()  # 9*2*4+4 + 9*4*4+4 + 9*4+1
        261
    """

    def __init__(self, filters=16, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden_1 = FastConv2D(self.filters, 3, padding="same", activation="relu", name="hidden_1")
        self.hidden_2 = FastConv2D(self.filters, 3, padding="same", activation="relu", name="hidden_2")
        self.logit = FastConv2D(1, 3, padding="same", name="logit")

    def build(self, input_shape):
        hidden_shape = (*input_shape[:-1], self.filters)
        self.hidden_1.build(input_shape)
        self.hidden_2.build(hidden_shape)
        self.logit.build(hidden_shape)

    def call(self, features):
        return self.logit(self.hidden_2(self.hidden_1(features)))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        config = super().get_config()
        config["filters"] = self.filters
        return config


def clone_generator(generator, name=None):
    """A new generator with the configuration and weights of another.

    The weights are copied (batch-norm moving statistics included), so the
    clone's outputs equal the original's; the two then train independently.
    This is how the instance colorizer starts from the full-image colorizer.

    Args:
        generator: keras.Model. A zoo generator (e.g. UNetV1) with
            `get_config`/`from_config`.
        name: str or None. Name of the clone. Defaults to None (the original's).

    Returns:
        A new model of the same class, configuration and weights.

    Examples:
        >>> from keras_colorize.models import UNetV1
        >>> from keras_colorize.models.fusion import clone_generator
        >>> full = UNetV1(encoder_filters=(8, 16), decoder_filters=(8,))
        >>> clone_generator(full, name="instance").count_params() == full.count_params()
        True
    """
    config = dict(generator.get_config())
    if name is not None:
        config["name"] = name
    clone = type(generator).from_config(config)
    clone.set_weights(generator.get_weights())
    return clone


def _freeze(model):
    """Make a functional model and each of its layers non-trainable."""
    # A model rebuilt from a config with trainable=False leaves its layers
    # trainable; set every layer explicitly.
    model.trainable = False
    for layer in model.layers:
        layer.trainable = False


def _architecture(generator):
    config = dict(generator.get_config())
    config.pop("name", None)
    config.pop("trainable", None)
    return type(generator).__name__, config


def _check_generators(full_generator, instance_generator):
    for role, generator in (("full_generator", full_generator), ("instance_generator", instance_generator)):
        if not isinstance(generator, UNet):
            raise UserInputError(f"{role} must be a UNetV1 or UNetV2, got {type(generator).__name__}")
    full, instance = _architecture(full_generator), _architecture(instance_generator)
    if full != instance:
        differences = sorted(k for k in set(full[1]) | set(instance[1]) if full[1].get(k) != instance[1].get(k))
        what = f"{full[0]} vs {instance[0]}" if full[0] != instance[0] else ", ".join(differences)
        raise UserInputError(
            f"full_generator and instance_generator must have the same configuration (they differ in: {what})"
        )


def _default_fusion_points(generator):
    strides = generator.fusion_point_strides
    return [p for p in generator.fusion_points if p.startswith("decoder_") and strides[p] > 1]


def _resolve_fusion_points(generator, fusion_points):
    valid = generator.fusion_points
    if fusion_points is None:
        return tuple(_default_fusion_points(generator))
    if isinstance(fusion_points, str):
        fusion_points = [fusion_points]
    fusion_points = list(fusion_points)
    unknown = [p for p in fusion_points if p not in valid]
    if unknown:
        raise UserInputError(f"unknown fusion point {unknown[0]!r} (valid: {', '.join(valid)})")
    if not fusion_points:
        raise UserInputError(f"fusion_points is empty (valid: {', '.join(valid)})")
    if len(set(fusion_points)) != len(fusion_points):
        raise UserInputError(f"fusion_points lists a point twice: {', '.join(fusion_points)}")
    return tuple(p for p in valid if p in fusion_points)


@register_model(role="fusion")
class SimpleWeightModel(keras.Model):
    """Fuses a full-image U-Net with an instance U-Net through learned weight maps.

    The instance generator runs on every instance crop; at each fusion point,
    one `WeightMapNetwork` turns the full-image feature map into a logit map and
    another turns each crop's feature map into one, which is resized into the
    instance's box (see `place_in_boxes`) like the crop's features. Per pixel, a
    softmax over the background logit and the logits of the instances whose box
    covers the pixel gives the weights: fused = W_bg * F_full + sum_i W_i * F_i.
    An instance's weight is exactly 0 outside its box and for padding, so with no
    instance the output is exactly the full generator's. Both generators always
    run in inference mode (fixed batch-norm statistics, no dropout); gradients
    reach only the weight networks.

    Args:
        full_generator: UNetV1 or UNetV2. The full-image colorizer.
        instance_generator: UNetV1 or UNetV2 of the same configuration as
            `full_generator`. The instance colorizer.
        fusion_points: sequence of str or None. Names from the generators'
            `fusion_points` where the maps are fused. Defaults to None: every
            decoder point below full resolution.
        filters: int. Hidden width of the weight networks. Defaults to 16.
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Inputs of `call`: a dict of
        "l": model-space L (L*/50 - 1) in [-1, 1], float32, (B, H, W, 1);
        "crops_l": model-space L of the instance crops, float32, (B, N, S, S, 1);
        "boxes": (y_min, x_min, y_max, x_max) fractions of the image height and
        width in [0, 1], float32, (B, N, 4);
        "mask": 1.0 for a real instance, 0.0 for padding, float32, (B, N).
        H, W and S multiples of `size_divisor`. A plain L tensor (B, H, W, 1)
        runs the full generator alone.
    Outputs of `call`: model-space ab ((a*, b*) / 128) in [-1, 1], (B, H, W, 2).

    References:
        Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020.

    Examples:
        >>> from keras_colorize.models import SimpleWeightModel, UNetV2
        >>> full = UNetV2(encoder_filters=(8, 16, 16), decoder_filters=(16, 8))
        >>> fusion = SimpleWeightModel.from_generators(full, filters=4)
        >>> fusion.fusion_points
        ('decoder_1',)
    """

    def __init__(self, full_generator, instance_generator, fusion_points=None, filters=16, **kwargs):
        kwargs.setdefault("name", "simple_weight_model")
        super().__init__(**kwargs)
        _check_generators(full_generator, instance_generator)
        self.full_generator = full_generator
        self.instance_generator = instance_generator
        self.fusion_points = _resolve_fusion_points(full_generator, fusion_points)
        self.filters = int(filters)
        channels = full_generator.fusion_point_channels
        full_networks, instance_networks = [], []
        for point in self.fusion_points:
            for kind, networks in (("full", full_networks), ("instance", instance_networks)):
                network = WeightMapNetwork(self.filters, name=f"{point}_{kind}_weights")
                network.build((None, None, None, channels[point]))
                networks.append(network)
        self.full_weight_networks = full_networks
        self.instance_weight_networks = instance_networks
        self.built = True

    @classmethod
    def from_generators(cls, full_generator, instance_generator=None, **kwargs):
        """Build a fusion model; without an instance generator, clone the full one.

        The clone has the full generator's configuration and weights (batch-norm
        statistics included): the starting point of the instance stage.

        Args:
            full_generator: UNetV1 or UNetV2. The full-image colorizer.
            instance_generator: UNetV1, UNetV2 or None. The instance colorizer.
                Defaults to None (a copy of `full_generator`).
            **kwargs: the other constructor arguments (`fusion_points`,
                `filters`, `name`).

        Returns:
            A `SimpleWeightModel`.
        """
        if instance_generator is None:
            instance_generator = clone_generator(full_generator, name=f"{full_generator.name}_instance")
        return cls(full_generator, instance_generator, **kwargs)

    @property
    def size_divisor(self):
        """Input height and width (and crop size) must be multiples of this."""
        return self.full_generator.size_divisor

    def build(self, input_shape=None):
        self.built = True

    def _run(self, inputs, record=None):
        """The fused ab; `record` (a dict) receives the weights per fusion point."""
        l_norm = ops.convert_to_tensor(inputs["l"])
        crops_l = ops.convert_to_tensor(inputs["crops_l"])
        boxes = ops.cast(ops.convert_to_tensor(inputs["boxes"]), "float32")
        mask = ops.cast(ops.convert_to_tensor(inputs["mask"]), "float32")
        _, count, crop_height, crop_width, channels = crops_l.shape
        if count is None:  # a traced function with a varying number of instances
            count = ops.shape(crops_l)[1]
        points = self.fusion_points
        index = {point: i for i, point in enumerate(points)}

        instance_maps = {}

        def per_instance(maps):
            """(B * N, h, w, C) -> (B, N, h, w, C)."""
            return ops.reshape(maps, (-1, count, *maps.shape[1:]))

        def collect(point, features):
            if point in index:
                instance_maps[point] = ops.stop_gradient(features)
            return features

        flat_crops = ops.reshape(crops_l, (-1, crop_height, crop_width, channels))
        self.instance_generator.call_with_hook(flat_crops, collect, training=False, stop_at=points[-1])

        def fuse(point, features):
            if point == points[0]:
                # Nothing upstream of the first fusion point trains.
                features = ops.stop_gradient(features)
            if point not in index:
                return features
            i = index[point]
            grid = (int(features.shape[1]), int(features.shape[2]))
            crop_features = instance_maps[point]
            crop_logits = self.instance_weight_networks[i](crop_features)
            placed_features = place_in_boxes(per_instance(crop_features), boxes, mask, grid)
            placed_logits = place_in_boxes(per_instance(crop_logits), boxes, mask, grid)
            full_logits = self.full_weight_networks[i](features)
            # (B, N + 1, h, w, 1): the background first, then the instances.
            valid = ops.concatenate(
                [ops.ones_like(full_logits[:, None], dtype="bool"), box_masks(boxes, mask, grid) > 0.5], axis=1
            )
            logits = ops.concatenate(
                [ops.cast(full_logits, "float32")[:, None], ops.cast(placed_logits, "float32")], axis=1
            )
            logits = ops.where(valid, logits, _EXCLUDED_LOGIT)
            # Softmax over the maps covering each pixel; excluded maps get exactly 0
            # and, where only the background covers a pixel, its weight is exactly 1.
            shifted = logits - ops.stop_gradient(ops.max(logits, axis=1, keepdims=True))
            exponentials = ops.where(valid, ops.exp(shifted), 0.0)
            weights = exponentials / ops.sum(exponentials, axis=1, keepdims=True)
            covered = ops.any(valid[:, 1:], axis=1, keepdims=True)
            weights = ops.concatenate([ops.where(covered, weights[:, :1], 1.0), weights[:, 1:]], axis=1)
            if record is not None:
                record[point] = weights[..., 0]
            weights = ops.cast(weights, features.dtype)
            return weights[:, 0] * features + ops.sum(weights[:, 1:] * placed_features, axis=1)

        return self.full_generator.call_with_hook(l_norm, fuse, training=False)

    def call(self, inputs, training=None):
        """Colorize a batch with its instances.

        Args:
            inputs: dict with "l", "crops_l", "boxes" and "mask" (see the class
                docstring), or a plain model-space L tensor (B, H, W, 1) in
                [-1, 1] (the full generator alone).
            training: bool or None. Unused: both generators always run in
                inference mode and the weight networks have no training-only
                layers. Defaults to None.

        Returns:
            Model-space ab in [-1, 1], shape (B, H, W, 2).
        """
        if not isinstance(inputs, dict):
            return ab_output(self.full_generator(inputs, training=False))
        return self._run(inputs)

    def fusion_weights(self, inputs):
        """The blending weights at each fusion point.

        Args:
            inputs: dict with "l", "crops_l", "boxes" and "mask" (see the class
                docstring).

        Returns:
            dict fusion point -> float32 tensor (B, N + 1, h, w): the background
            weight first, then one per instance; they sum to 1 at every pixel,
            and an instance's weight is 0 outside its snapped box and for padding.
        """
        record = {}
        self._run(inputs, record=record)
        return record

    def compute_output_shape(self, input_shape):
        shape = input_shape["l"] if isinstance(input_shape, dict) else input_shape
        return (*shape[:-1], self.full_generator.output_channels)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "full_generator": keras.saving.serialize_keras_object(self.full_generator),
            "instance_generator": keras.saving.serialize_keras_object(self.instance_generator),
            "fusion_points": list(self.fusion_points),
            "filters": self.filters,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("full_generator", "instance_generator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@register
class FusionColorizer(Colorizer):
    """The instance-aware colorization task around a `SimpleWeightModel`.

    Both generators are frozen; training updates only the weight networks.
    Batches are the instance-aware dicts of sRGB images and crops; L is derived
    on the device. The loss compares the predicted and true ab of the images,
    metrics compare sRGB images (as `Colorizer`). `colorize` picks the
    instances of a photo from its boxes, predicts ab at `image_size` and
    recombines it with the photo's full-resolution L*.

    Args:
        fusion_model: SimpleWeightModel. The fused network.
        image_size: int or (int, int). The size (height, width) the network
            sees at inference. Defaults to 256.
        instance_size: int or None. Side of the square instance crops. Defaults
            to None (`image_size`, which must then be square).
        min_score: float. Lowest detection score of an instance in `colorize`.
            Defaults to `DEFAULT_MIN_SCORE` (0.99).
        min_variance: float. Lowest gray variance (0-255 scale) of an instance
            in `colorize`. Defaults to `DEFAULT_MIN_VARIANCE` (2000.0).
        max_instances: int. Most instances per image in `colorize`. Defaults to
            `DEFAULT_MAX_INSTANCES` (8).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Inputs of `call`: a dict of
        "images": sRGB in [0, 1], float32, (B, H, W, 3);
        "crops": sRGB in [0, 1], float32, (B, N, S, S, 3) (zeros for padding);
        "boxes": (y_min, x_min, y_max, x_max) fractions in [0, 1], float32,
        (B, N, 4) (zeros for padding);
        "mask": 1.0 for a real instance, 0.0 for padding, float32, (B, N);
        or a plain sRGB batch in [0, 1], float32, (B, H, W, 3), which runs the
        full generator alone.
    Outputs of `call`: model-space ab in [-1, 1], shape (B, H, W, 2).

    References:
        Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020.

    Examples:
        >>> from keras_colorize.models import FusionColorizer, SimpleWeightModel, UNetV1
        >>> full = UNetV1(encoder_filters=(8, 16, 16), decoder_filters=(16, 8))
        >>> colorizer = FusionColorizer(SimpleWeightModel.from_generators(full), image_size=32)
        >>> colorizer.compile(optimizer="adam", loss="huber")
        >>> len(colorizer.trainable_weights)  # the weight networks only
        12
    """

    def __init__(
        self,
        fusion_model,
        image_size=256,
        instance_size=None,
        min_score=DEFAULT_MIN_SCORE,
        min_variance=DEFAULT_MIN_VARIANCE,
        max_instances=DEFAULT_MAX_INSTANCES,
        **kwargs,
    ):
        if not isinstance(fusion_model, SimpleWeightModel):
            raise UserInputError(f"fusion_model must be a SimpleWeightModel, got {type(fusion_model).__name__}")
        super().__init__(fusion_model, image_size=image_size, **kwargs)
        if instance_size is None:
            if self.image_size[0] != self.image_size[1]:
                raise UserInputError(f"instance_size is required when image_size {self.image_size} is not square")
            instance_size = self.image_size[0]
        self.instance_size = int(instance_size)
        if self.instance_size <= 0 or self.instance_size % fusion_model.size_divisor:
            raise UserInputError(
                f"instance_size {instance_size} must be a positive multiple of {fusion_model.size_divisor}"
            )
        self.min_score = float(min_score)
        self.min_variance = float(min_variance)
        self.max_instances = int(max_instances)
        for generator in (fusion_model.full_generator, fusion_model.instance_generator):
            _freeze(generator)

    @property
    def fusion_model(self):
        """The `SimpleWeightModel` this task trains."""
        return self.generator

    def call(self, inputs, training=None):
        """Predict ab for a batch at its own size.

        Args:
            inputs: the instance-aware dict ("images", "crops", "boxes", "mask";
                see the class docstring) or a plain sRGB batch in [0, 1], float32,
                (B, H, W, 3).
            training: bool or None. Passed to the fusion model. Defaults to None.

        Returns:
            Model-space ab in [-1, 1], shape (B, H, W, 2).
        """
        if not isinstance(inputs, dict):
            l_norm = normalize_l(rgb_to_lightness(inputs, "channels_last"))
            return self.generator(l_norm, training=training)
        model_inputs = {
            "l": normalize_l(rgb_to_lightness(inputs["images"], "channels_last")),
            "crops_l": normalize_l(rgb_to_lightness(inputs["crops"], "channels_last")),
            "boxes": inputs["boxes"],
            "mask": inputs["mask"],
        }
        return self.generator(model_inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss between the predicted ab and the true ab of the
        images of the batch `x` (the dict's "images", sRGB in [0, 1])."""
        images = x["images"] if isinstance(x, dict) else x
        return super().compute_loss(x=images, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the metrics on sRGB images: the batch's "images" against the
        prediction recombined with their own L (both sRGB in [0, 1])."""
        images = x["images"] if isinstance(x, dict) else x
        return super().compute_metrics(images, y, y_pred, sample_weight=sample_weight)

    def predict_rgb(self, inputs, batch_size=32):
        """Colorize a batch at its own size.

        Args:
            inputs: the instance-aware dict ("images", "crops", "boxes", "mask";
                see the class docstring) or a plain sRGB batch in [0, 1], float32,
                (B, H, W, 3) (the full-image path).
            batch_size: int. Images per network call. Defaults to 32.

        Returns:
            NumPy float32 sRGB in [0, 1], shape (B, H, W, 3).
        """
        if not isinstance(inputs, dict):
            return super().predict_rgb(inputs, batch_size=batch_size)
        images = np.asarray(inputs["images"], "float32")
        return recombine(images, self.predict(inputs, batch_size=batch_size, verbose=0))

    def colorize(self, image, boxes=None):
        """Colorize one photo of any size at full resolution, instance by instance.

        The instances are chosen among `boxes` with `select_instances` (this
        model's `min_score`, `min_variance` and `max_instances`) on the photo
        itself, cropped from the full-resolution photo and resized to
        `instance_size`; the photo's L* is resized to `image_size` (the whole
        photo, aspect ratio not kept, as `Colorizer.colorize`), the predicted ab
        upsampled to the photo's size and recombined with its original L*. With
        no instance left, this is the full generator's colorization.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray
                of shape (H, W) or (H, W, 1).
            boxes: list of Box or None. Instance boxes in pixels of `image`.
                Defaults to None (no instance).

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        rgb = _to_float_rgb(image)
        corners = np.zeros((0, 4), "float32")
        if boxes:
            from keras_colorize.data.boxes import select_instances

            pixels = np.clip(np.rint(rgb * 255.0), 0, 255).astype("uint8")
            corners, _ = select_instances(
                boxes,
                pixels,
                min_score=self.min_score,
                min_variance=self.min_variance,
                max_instances=self.max_instances,
            )
        if len(corners) == 0:
            return self._colorize_rgb(rgb, self._whole_photo_ab)

        from keras_colorize.data.instances import crop_instances

        height, width = rgb.shape[:2]
        count = len(corners)  # no padding: the instance network runs on the real instances only
        crops = np.zeros((1, count, self.instance_size, self.instance_size, 3), "float32")
        crops[0, : len(corners)] = crop_instances(pixels, corners, self.instance_size)
        normalized = np.zeros((1, count, 4), "float32")
        normalized[0, : len(corners)] = corners[:, [1, 0, 3, 2]] / np.array([height, width, height, width], "float32")
        mask = np.zeros((1, count), "float32")
        mask[0, : len(corners)] = 1.0
        crops_l = normalize_l(rgb_to_lightness(ops.convert_to_tensor(crops), "channels_last"))

        def predict_ab(l_small):
            inputs = {"l": l_small, "crops_l": crops_l, "boxes": normalized, "mask": mask}
            return self.generator.predict_on_batch(inputs)

        return self._colorize_rgb(rgb, predict_ab)

    def _whole_photo_ab(self, l_small):
        """The full-image generator's ab (no instance): model-space ab in [-1, 1], (N, h, w, 2)."""
        return ab_output(self.generator.full_generator.predict_on_batch(l_small))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "fusion_model": keras.saving.serialize_keras_object(self.generator),
            "image_size": list(self.image_size),
            "instance_size": self.instance_size,
            "min_score": self.min_score,
            "min_variance": self.min_variance,
            "max_instances": self.max_instances,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fusion_model"] = keras.saving.deserialize_keras_object(config["fusion_model"])
        return cls(**config)
