"""Build the objects a recipe describes: networks, optimizers, the model to fit, datasets.

The builders every kind of training shares; what one kind alone builds (an adversarial
trainer, the instance-aware stages, the InstructPix2Pix fine-tuner) is in its module of
`keras_colorize.recipes.kinds`, and `build_model` asks the recipe's kind. Every builder
takes a loaded `Recipe` (see `load_recipe`) and turns a failure of the underlying
constructor into a one-line `RecipeError` that names the file and the key.
"""

import functools
import inspect
import re

from keras_colorize.errors import RecipeError, UserInputError, first_line


def takes_loaded_recipe(builder):
    """A builder's first argument must be a loaded `Recipe`; anything else (a mapping,
    a path) is a `TypeError` that says to load it with `load_recipe` first."""

    @functools.wraps(builder)
    def checked(recipe, *args, **kwargs):
        if not (hasattr(recipe, "kind") and hasattr(recipe, "error")):
            raise TypeError(
                f"{builder.__name__} takes a loaded recipe, not a {type(recipe).__name__}: "
                f"{builder.__name__}(keras_colorize.recipes.load_recipe(...))"
            )
        return builder(recipe, *args, **kwargs)

    return checked


def constructor_arguments(section, skip=("name",)):
    """A class section's constructor arguments: every key but `skip`, lists as tuples."""
    return {key: (tuple(v) if isinstance(v, list) else v) for key, v in section.items() if key not in skip}


def _preset_generator(recipe):
    """The generator of the Colorizer preset `model.preset` (checked against `model.name`)."""
    from keras_colorize.colorizer import Colorizer

    section = recipe["model"]
    try:
        generator = Colorizer.from_preset(section["preset"]).generator
    except UserInputError as error:
        raise recipe.error(("model", "preset"), first_line(error)) from None
    if type(generator).__name__ != section["name"]:
        raise recipe.error(("model", "name"), f"the preset holds a {type(generator).__name__}, not a {section['name']}")
    return generator


def _build_zoo_network(recipe, section):
    from keras_colorize import models

    section_values = recipe[section]
    if section == "model" and "preset" in section_values:
        return _preset_generator(recipe)
    kwargs = constructor_arguments(section_values)
    if section == "model" and "image_size" not in kwargs:
        # A generator with a fixed input size is built at the colorizer's size.
        parameters = inspect.signature(models.get_model_class(section_values["name"])).parameters
        if "image_size" in parameters:
            kwargs["image_size"] = recipe["colorizer"]["image_size"]
    try:
        return models.get_model(section_values["name"], **kwargs)
    except RecipeError:
        raise
    except (UserInputError, ValueError, TypeError) as error:
        raise recipe.error(section, f"cannot build {section_values['name']}: {first_line(error)}") from None


@takes_loaded_recipe
def build_generator(recipe):
    """Build the generator named by the recipe's `model` section.

    Args:
        recipe: Recipe. A loaded recipe.

    A generator with a fixed input size (an `image_size` argument, like
    `ChromaGANGenerator`) is built at `colorizer.image_size` unless the `model`
    section sets it.

    Returns:
        A `keras.Model` mapping model-space L in [-1, 1], shape (N, H, W, 1), to ab in
        [-1, 1], shape (N, H, W, 2) (or a dict with "ab" and "class_logits").

    Raises:
        RecipeError: when the model cannot be built from these arguments.
    """
    return _build_zoo_network(recipe, "model")


@takes_loaded_recipe
def build_discriminator(recipe):
    """Build the discriminator (critic) named by the recipe's `discriminator` section.

    Args:
        recipe: Recipe. A loaded recipe with a `discriminator` section.

    Returns:
        A `keras.Model` mapping L and ab concatenated (model space, (N, H, W, 3)) to
        patch logits (N, h, w, 1).

    Raises:
        RecipeError: when the recipe has no discriminator or it cannot be built.
    """
    if "discriminator" not in recipe:
        raise recipe.error("discriminator", "the recipe has no discriminator section")
    return _build_zoo_network(recipe, "discriminator")


@takes_loaded_recipe
def build_optimizer(recipe, section="optimizer", decay_steps=None, learning_rate=None):
    """Build a Keras optimizer of the recipe, with its learning-rate schedule.

    Args:
        recipe: Recipe. A loaded recipe.
        section: str. `"optimizer"` (the generator's) or `"discriminator_optimizer"`
            (falls back to the `optimizer` settings when absent). Defaults to
            "optimizer".
        decay_steps: int or None. The optimizer's updates over the whole run; with
            `schedule.name: cosine` the learning rate is annealed over them from
            `learning_rate` to `schedule.final_learning_rate`. Defaults to None
            (a constant learning rate).
        learning_rate: float or None. Replaces the section's `learning_rate` (the
            schedule's final rate scales with it). Defaults to None.

    Returns:
        A `keras.optimizers.Optimizer`.

    Raises:
        RecipeError: when the optimizer rejects its arguments.
    """
    import keras

    from keras_colorize.training.optimizers import get_optimizer

    if section not in recipe:
        section = "optimizer"
    values = recipe[section]
    kwargs = recipe.kind.optimizer_arguments(recipe, values["name"], constructor_arguments(values))
    scale = 1.0
    if learning_rate is not None:
        scale = float(learning_rate) / float(kwargs.get("learning_rate", 1e-3))
        kwargs["learning_rate"] = float(learning_rate)
    schedule = recipe.get("schedule") or {}
    if schedule.get("name") == "cosine" and decay_steps:
        initial = float(kwargs.get("learning_rate", 1e-3))
        final = float(schedule.get("final_learning_rate") or 0.0) * scale
        if final > initial:
            raise recipe.error(
                ("schedule", "final_learning_rate"), f"{final:g} is above {section}.learning_rate {initial:g}"
            )
        kwargs["learning_rate"] = keras.optimizers.schedules.CosineDecay(
            initial, decay_steps=int(decay_steps), alpha=final / initial
        )
    try:
        return get_optimizer({"class_name": values["name"], "config": kwargs})
    except (ValueError, TypeError) as error:
        raise recipe.error(section, f"cannot build {values['name']}: {first_line(error)}") from None


@takes_loaded_recipe
def build_model(recipe, steps_per_epoch=None, compile=True, class_weights=None):
    """Build what a recipe trains, as its kind (`Recipe.kind`) decides.

    Args:
        recipe: Recipe. A loaded recipe.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizers. Defaults to True.
        class_weights: array or None. A Colorizer's rebalancing weights
            (`rebalancing_weights_for`). Defaults to None.

    Returns:
        A `Colorizer` (regression; for an instance-aware recipe, its first stage's),
        a `GANTrainer` / `WGANGPTrainer` (a `trainer` section), or an
        `InstructPix2PixFineTuner` (`model.name: InstructPix2Pix`); all take sRGB in
        [0, 1], (N, image_size, image_size, 3).
    """
    return recipe.kind.build_model(
        recipe, steps_per_epoch=steps_per_epoch, compile=compile, class_weights=class_weights
    )


@takes_loaded_recipe
def build_colorizer(recipe, compile=True, steps_per_epoch=None, class_weights=None):
    """Build the Colorizer of a recipe, compiled with its optimizer and loss.

    With `train.freeze_encoder_epochs`, the generator's encoder is frozen (the
    first epochs train the decoder; `training.run` unfreezes it).

    Args:
        recipe: Recipe. A loaded recipe.
        compile: bool. Compile with the recipe's optimizer, `colorizer.loss` and the
            default sRGB metrics. Defaults to True.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        class_weights: array of shape (261,) or None. Rebalancing weights of the
            `ab_classification` term (`rebalancing_weights_for`). Defaults to None.

    Returns:
        A `keras_colorize.Colorizer` that takes sRGB in [0, 1], shape (N, H, W, 3),
        at `colorizer.image_size`.

    Raises:
        RecipeError: when the generator, the colorizer or the optimizer cannot be built.
    """
    from keras_colorize.colorizer import Colorizer

    generator = build_generator(recipe)
    image_size = recipe["colorizer"]["image_size"]
    try:
        colorizer = Colorizer(generator, image_size=image_size)
    except (UserInputError, ValueError) as error:
        raise recipe.error(("colorizer", "image_size"), first_line(error)) from None
    freeze = recipe["train"]["freeze_encoder_epochs"]
    if freeze:
        if not hasattr(generator, "set_encoder_trainable"):
            raise recipe.error(
                ("train", "freeze_encoder_epochs"), f"{type(generator).__name__} has no pretrained encoder to freeze"
            )
        generator.set_encoder_trainable(False)
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        compile_colorizer(recipe, colorizer, build_optimizer(recipe, decay_steps=total), class_weights)
    return colorizer


def compile_colorizer(recipe, colorizer, optimizer, class_weights=None):
    """Compile a Colorizer with `optimizer`, the recipe's loss and its metrics.

    Raises:
        RecipeError: the loss needs outputs the generator does not have.
    """
    try:
        colorizer.compile(
            optimizer=optimizer, loss=build_colorization_loss(recipe, class_weights), metrics=build_metrics(recipe)
        )
    except UserInputError as error:
        if isinstance(error, RecipeError):
            raise
        raise recipe.error(("colorizer", "loss"), first_line(error)) from None


def build_fine_tuning_optimizer(recipe, generator, decay_steps=None):
    """The optimizer once a pretrained encoder is unfrozen: `encoder_learning_rate` for its variables.

    Args:
        recipe: Recipe. A loaded recipe.
        generator: keras.Model with an `encoder` (e.g. `BackboneUNet`), unfrozen.
        decay_steps: int or None. Updates over the rest of the run, for a cosine
            schedule. Defaults to None.

    Returns:
        A `keras.optimizers.MultiOptimizer`: the encoder's trainable variables (by
        path) at `train.encoder_learning_rate` (null: the optimizer's learning rate
        / 10), every other variable at `optimizer.learning_rate`.
    """
    import keras

    rate = recipe["train"]["encoder_learning_rate"]
    if rate is None:
        rate = float(recipe["optimizer"].get("learning_rate", 1e-3)) / 10.0
    decoder = build_optimizer(recipe, decay_steps=decay_steps)
    encoder = build_optimizer(recipe, decay_steps=decay_steps, learning_rate=rate)
    mapping = {re.escape(variable.path): encoder for variable in generator.encoder.trainable_variables}
    return keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(decoder, mapping))


def build_colorization_loss(recipe, class_weights=None):
    """The Colorizer's loss of a recipe's `colorizer` section.

    Args:
        recipe: Recipe. A loaded recipe.
        class_weights: array or None. Rebalancing weights of `ab_classification`.
            Defaults to None.

    Returns:
        A `keras_colorize.losses.ColorizationLoss`.

    Raises:
        RecipeError: a term the generator cannot serve (checked when compiling).
    """
    from keras_colorize.losses import ColorizationLoss

    section = recipe["colorizer"]
    try:
        return ColorizationLoss(section["loss"], class_weights=class_weights, lpips_network=section["lpips_network"])
    except UserInputError as error:
        raise recipe.error(("colorizer", "loss"), first_line(error)) from None


HIGHER_IS_BETTER = ("psnr", "ssim", "class_accuracy")
"""Logged values (with or without `val_`) where higher is better; lower is better for the rest."""


def has_validation(recipe):
    """Whether the recipe holds photos out for validation (`data.validation` or a fraction)."""
    return bool(recipe["data"]["validation"]) or recipe["data"]["validation_fraction"] > 0


def _lpips_available():
    from keras_colorize.metrics.weights import WeightsNotFoundError, lpips_weights_path

    try:
        lpips_weights_path("alex")
    except WeightsNotFoundError:
        return False
    return True


def checkpoint_monitor(recipe, with_validation, default):
    """The logged value that chooses `best.keras`, and whether lower or higher is better.

    The one place that decides it for every kind of recipe: `train.monitor` when
    set; else, with validation photos, `val_lpips` (the protocol's LPIPS, AlexNet, of
    the validation photos: it does not reward gray the way a per-pixel loss on ab
    does) when the LPIPS weights can be had and the model reports it (every kind but
    InstructPix2Pix fine-tuning); else `default`, the kind's own loss.

    Args:
        recipe: Recipe. A loaded recipe.
        with_validation: bool. Whether the run has validation data.
        default: str. The kind's monitor without LPIPS (e.g. "val_loss", "val_g_rec", "loss").

    Returns:
        A tuple `(name, mode, required)`: mode "min" or "max"; `required` when the
        user named it (a name that is never logged is then an error).
    """
    explicit = recipe["train"].get("monitor")
    name = explicit
    if not explicit:
        lpips = with_validation and recipe.kind.reports_lpips and _lpips_available()
        name = "val_lpips" if lpips else default
    mode = "max" if name.removeprefix("val_") in HIGHER_IS_BETTER else "min"
    return name, mode, bool(explicit)


def build_metrics(recipe):
    """The sRGB metrics a model of the recipe reports: the protocol's, and LPIPS when
    `checkpoint_monitor` chooses it (or `train.monitor` names it)."""
    from keras_colorize.metrics import LPIPS, default_metrics

    metrics = default_metrics()
    name, _, explicit = checkpoint_monitor(recipe, has_validation(recipe), "val_loss")
    if name.removeprefix("val_") == "lpips":
        try:
            metrics.append(LPIPS())
        except UserInputError as error:
            raise recipe.error(("train", "monitor"), first_line(error)) from None
    return metrics


def rebalancing_weights_for(recipe, train_set):
    """The class-rebalancing weights of `ab_classification`, from the training photos.

    One pass over `train_set` gives the prior of the nearest a*b* bins
    (`ab_bin_prior`); `colorizer.rebalancing` mixes it with the uniform
    distribution (`rebalancing_weights`).

    Args:
        recipe: Recipe. A loaded recipe.
        train_set: keras.utils.PyDataset. Batches of sRGB in [0, 1] (or
            `(images, labels)`).

    Returns:
        NumPy float32 array of shape (261,), or None when the loss has no
        `ab_classification` term.
    """
    loss = recipe["colorizer"]["loss"]
    terms = loss if isinstance(loss, dict) else {loss: 1.0}
    if "ab_classification" not in terms:
        return None
    from keras import ops

    from keras_colorize.color import rgb_to_model_inputs
    from keras_colorize.color.ab_bins import ab_bin_prior, rebalancing_weights

    def ab_batches():
        for index in range(len(train_set)):
            batch = train_set[index]
            images = batch[0] if isinstance(batch, tuple) else batch
            yield ops.convert_to_numpy(rgb_to_model_inputs(ops.convert_to_tensor(images), "channels_last")[1])

    return rebalancing_weights(ab_bin_prior(ab_batches()), mix=recipe["colorizer"]["rebalancing"])


def dataset_arguments(recipe):
    """The dataset arguments every recipe-built dataset shares (`data` and `train` values)."""
    data, train = recipe["data"], recipe["train"]
    return {
        "batch_size": train["batch_size"],
        "validation": data["validation"],
        "validation_fraction": data["validation_fraction"],
        "holdout_fraction": data["holdout_fraction"],
        "seed": train["seed"],
        "resize_to": data["resize_to"],
        "drop_grayscale": data["drop_grayscale"],
        "repeat": data["repeat"],
        "cache": data["cache"],
        "workers": data["workers"],
    }


def data_error(recipe, error):
    """A data problem (a `UserInputError`) as a `RecipeError` on the data key the message names."""
    if isinstance(error, RecipeError):
        return error
    message = first_line(error)
    validation = recipe["data"]["validation"]
    key = "data.validation" if validation and str(validation) in message else "data.train"
    return recipe.error(key, message)


@takes_loaded_recipe
def build_datasets(recipe):
    """Build the training and validation datasets of a recipe.

    Args:
        recipe: Recipe. A loaded recipe.

    Returns:
        A tuple `(train, validation)` of `keras_colorize.data.ImageFolder` (validation
        may be None); batches are sRGB in [0, 1], float32, shape
        (batch, image_size, image_size, 3).

    Raises:
        RecipeError: when a folder is missing or holds no usable images.
    """
    from keras_colorize.data import make_datasets

    data = recipe["data"]
    try:
        train_set, validation_set = make_datasets(
            data["train"],
            image_size=recipe["colorizer"]["image_size"],
            with_labels=data["labels"],
            **dataset_arguments(recipe),
        )
    except UserInputError as error:
        raise data_error(recipe, error) from None
    _check_class_count(recipe, train_set)
    return train_set, validation_set


def _check_class_count(recipe, train_set):
    """The generator's class count against the data's class sub-folders."""
    if not recipe.kind.zoo_generator:
        return  # no class branch (labels are refused by the loader)
    num_classes = recipe["model"].get("num_classes")
    if num_classes is None:
        from keras_colorize import models

        parameter = inspect.signature(models.get_model_class(recipe["model"]["name"])).parameters.get("num_classes")
        num_classes = None if parameter is None else parameter.default
    needs_labels = num_classes is not None and recipe.kind.class_labels_needed(recipe)
    if needs_labels and not recipe["data"]["labels"]:
        raise recipe.error(
            ("data", "labels"), "the class term needs labels: set data.labels: true (class sub-folders of data.train)"
        )
    if recipe["data"]["labels"] and num_classes is not None and len(train_set.class_names) != num_classes:
        names = ", ".join(train_set.class_names[:5]) + (", ..." if len(train_set.class_names) > 5 else "")
        raise recipe.error(
            ("model", "num_classes"),
            f"{num_classes} classes, but {recipe['data']['train']} has {len(train_set.class_names)} class "
            f"sub-folders ({names})",
        )
