"""Build the objects a recipe describes: networks, optimizers, the model to fit, datasets.

Every builder takes a loaded `Recipe` (see `load_recipe`) and turns a failure of the
underlying constructor into a one-line `RecipeError` that names the file and the key.
"""

import inspect
import re
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.recipes.loader import RecipeError, is_instruct_pix2pix, load_recipe


def _as_recipe(recipe):
    from keras_colorize.recipes.loader import Recipe

    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def _trainer_default(trainer, key):
    """The constructor default of a trainer argument (None without a trainer)."""
    if not trainer:
        return None
    from keras_colorize.training import gan

    return inspect.signature(getattr(gan, trainer["name"]).__init__).parameters[key].default


def _kwargs(section, skip=("name",)):
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
    kwargs = _kwargs(section_values)
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


def build_generator(recipe):
    """Build the generator named by the recipe's `model` section.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe (anything else is loaded
            with `load_recipe`).

    A generator with a fixed input size (an `image_size` argument, like
    `ChromaGANGenerator`) is built at `colorizer.image_size` unless the `model`
    section sets it.

    Returns:
        A `keras.Model` mapping model-space L in [-1, 1], shape (N, H, W, 1), to ab in
        [-1, 1], shape (N, H, W, 2) (or a dict with "ab" and "class_logits").

    Raises:
        RecipeError: when the model cannot be built from these arguments.
    """
    return _build_zoo_network(_as_recipe(recipe), "model")


def build_discriminator(recipe):
    """Build the discriminator (critic) named by the recipe's `discriminator` section.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe with a `trainer`.

    Returns:
        A `keras.Model` mapping L and ab concatenated (model space, (N, H, W, 3)) to
        patch logits (N, h, w, 1).

    Raises:
        RecipeError: when the recipe has no discriminator or it cannot be built.
    """
    recipe = _as_recipe(recipe)
    if "discriminator" not in recipe:
        raise recipe.error("discriminator", "the recipe has no discriminator section")
    return _build_zoo_network(recipe, "discriminator")


def build_optimizer(recipe, section="optimizer", decay_steps=None, learning_rate=None):
    """Build a Keras optimizer of the recipe, with its learning-rate schedule.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.
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

    recipe = _as_recipe(recipe)
    if section not in recipe:
        section = "optimizer"
    values = recipe[section]
    kwargs = _kwargs(values)
    if is_instruct_pix2pix(recipe):
        kwargs = _finetune_optimizer_arguments(recipe, values["name"], kwargs)
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


def build_model(recipe, steps_per_epoch=None, compile=True, class_weights=None):
    """Build what a recipe trains: a `Colorizer`, or an adversarial trainer.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizers. Defaults to True.
        class_weights: array or None. A Colorizer's rebalancing weights
            (`rebalancing_weights_for`). Defaults to None.

    Returns:
        A `Colorizer` (no `trainer` section), a `GANTrainer` / `WGANGPTrainer`, or
        an `InstructPix2PixFineTuner` (`model.name: InstructPix2Pix`); all take sRGB
        in [0, 1], (N, image_size, image_size, 3).
    """
    recipe = _as_recipe(recipe)
    if is_instruct_pix2pix(recipe):
        return build_finetuner(recipe, steps_per_epoch=steps_per_epoch, compile=compile)
    if "trainer" in recipe:
        return build_trainer(recipe, steps_per_epoch=steps_per_epoch, compile=compile)
    return build_colorizer(recipe, compile=compile, steps_per_epoch=steps_per_epoch, class_weights=class_weights)


def _load_teacher(recipe, path):
    import keras

    if not Path(path).is_file():
        raise recipe.error(("trainer", "teacher"), f"file not found: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise recipe.error(("trainer", "teacher"), f"cannot load {path}: {first_line(error)}") from None


def build_trainer(recipe, steps_per_epoch=None, compile=True):
    """Build the adversarial trainer of a recipe's `trainer` section.

    The generator comes from `model`, the discriminator (critic) from
    `discriminator`, their optimizers from `optimizer` and `discriminator_optimizer`
    (with `schedule`); the trainer's arguments from `trainer`.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe with a `trainer`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule (the WGAN-GP generator steps once every `n_critic` batches).
            Defaults to None.
        compile: bool. Compile with both optimizers. Defaults to True.

    Returns:
        A `GANTrainer` or `WGANGPTrainer` taking sRGB in [0, 1], (N, S, S, 3),
        optionally with int32 labels (N,).

    Raises:
        RecipeError: when a network, the trainer or an optimizer cannot be built.
    """
    from keras_colorize.metrics import default_metrics
    from keras_colorize.training import gan

    recipe = _as_recipe(recipe)
    if "trainer" not in recipe:
        raise recipe.error("trainer", "the recipe has no trainer section")
    section = recipe["trainer"]
    cls = getattr(gan, section["name"])
    kwargs = _kwargs(section)
    if kwargs.get("teacher"):
        kwargs["teacher"] = _load_teacher(recipe, kwargs["teacher"])
    generator = build_generator(recipe)
    discriminator = build_discriminator(recipe)
    image_size = recipe["colorizer"]["image_size"]
    try:
        trainer = cls(generator, discriminator, image_size=image_size, **kwargs)
    except (UserInputError, ValueError, TypeError) as error:
        raise recipe.error("trainer", f"cannot build {section['name']}: {first_line(error)}") from None
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        generator_steps = total // getattr(trainer, "n_critic", 1) if total else None
        trainer.compile(
            generator_optimizer=build_optimizer(recipe, "optimizer", decay_steps=generator_steps),
            discriminator_optimizer=build_optimizer(recipe, "discriminator_optimizer", decay_steps=total),
            metrics=build_metrics(recipe)[len(default_metrics()) :],
        )
    return trainer


def build_colorizer(recipe, compile=True, steps_per_epoch=None, class_weights=None):
    """Build the Colorizer of a recipe, compiled with its optimizer and loss.

    With `train.freeze_encoder_epochs`, the generator's encoder is frozen (the
    first epochs train the decoder; `training.run` unfreezes it).

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.
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

    recipe = _as_recipe(recipe)
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
        reports_lpips = not is_instruct_pix2pix(recipe)
        name = "val_lpips" if with_validation and reports_lpips and _lpips_available() else default
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


def _data_arguments(recipe):
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


def _data_error(recipe, error):
    """A data problem as a `RecipeError` on the data key the message names."""
    message = first_line(error)
    validation = recipe["data"]["validation"]
    key = "data.validation" if validation and str(validation) in message else "data.train"
    return recipe.error(key, message)


def build_datasets(recipe):
    """Build the training and validation datasets of a recipe.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.

    Returns:
        A tuple `(train, validation)` of `keras_colorize.data.ImageFolder` (validation
        may be None); batches are sRGB in [0, 1], float32, shape
        (batch, image_size, image_size, 3).

    Raises:
        RecipeError: when a folder is missing or holds no usable images.
    """
    from keras_colorize.data import make_datasets

    recipe = _as_recipe(recipe)
    data = recipe["data"]
    try:
        train_set, validation_set = make_datasets(
            data["train"],
            image_size=recipe["colorizer"]["image_size"],
            with_labels=data["labels"],
            **_data_arguments(recipe),
        )
    except RecipeError:
        raise
    except UserInputError as error:
        raise _data_error(recipe, error) from None
    _check_class_count(recipe, train_set)
    return train_set, validation_set


def _check_class_count(recipe, train_set):
    """The generator's class count against the data's class sub-folders."""
    if is_instruct_pix2pix(recipe):
        return  # no class branch (labels are refused by the loader)
    num_classes = recipe["model"].get("num_classes")
    if num_classes is None:
        from keras_colorize import models

        parameter = inspect.signature(models.get_model_class(recipe["model"]["name"])).parameters.get("num_classes")
        num_classes = None if parameter is None else parameter.default
    trainer = recipe.get("trainer") or {}
    needs_labels = (
        num_classes is not None
        and trainer.get("class_target", "labels") == "labels"
        and float(trainer.get("lambda_class", _trainer_default(trainer, "lambda_class")) or 0) > 0
    )
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


# ----------------------------------------------------------------------------- instance-aware stages


def _instance_settings(recipe):
    """The `instances` box-selection settings that are set (None: the library default)."""
    section = recipe["instances"]
    return {key: section[key] for key in ("min_score", "min_variance", "max_instances") if section.get(key) is not None}


def _instance_size(recipe):
    return recipe["instances"].get("instance_size") or recipe["colorizer"]["image_size"]


def build_instance_datasets(recipe, kind):
    """Build the datasets of an instance-aware stage from `data` and `instances`.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        kind: "crops" (the instance stage: every kept instance's crop, at
            `instances.instance_size`) or "images" (the fusion stage: photos at
            `colorizer.image_size` with their instance crops, boxes and masks).

    Returns:
        A tuple `(train, validation)` (validation may be None) of
        `InstanceCropFolder` or `InstanceImageFolder`.

    Raises:
        RecipeError: a missing folder or boxes file, or no usable image or instance.
    """
    from keras_colorize.data import make_instance_datasets, read_boxes

    recipe = _as_recipe(recipe)
    data, section = recipe["data"], recipe["instances"]
    try:
        boxes = read_boxes(section["boxes"])
    except UserInputError as error:
        raise recipe.error(("instances", "boxes"), first_line(error)) from None
    validation_boxes = None
    if section.get("validation_boxes"):
        try:
            validation_boxes = read_boxes(section["validation_boxes"])
        except UserInputError as error:
            raise recipe.error(("instances", "validation_boxes"), first_line(error)) from None
    crops = kind == "crops"
    try:
        return make_instance_datasets(
            data["train"],
            image_size=_instance_size(recipe) if crops else recipe["colorizer"]["image_size"],
            boxes=boxes,
            validation_boxes=validation_boxes,
            kind=kind,
            instance_size=None if crops else _instance_size(recipe),
            **_instance_settings(recipe),
            **_data_arguments(recipe),
        )
    except RecipeError:
        raise
    except UserInputError as error:
        raise _data_error(recipe, error) from None


def _stage_generator(path):
    """The generator of a stage checkpoint (a Colorizer `.keras` file)."""
    from keras_colorize.loading import load_colorizer

    return load_colorizer(path).generator


def build_instance_colorizer(recipe, full_checkpoint, steps_per_epoch=None, compile=True):
    """Build the instance colorizer of stage 2: a copy of the full-image colorizer's generator.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        full_checkpoint: str or Path. The full-image stage's `best.keras`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer and `colorizer.loss`.
            Defaults to True.

    Returns:
        A `Colorizer` at `instances.instance_size` whose generator has the full-image
        generator's configuration and weights.
    """
    from keras_colorize.colorizer import Colorizer
    from keras_colorize.models.fusion import clone_generator

    recipe = _as_recipe(recipe)
    colorizer = Colorizer(clone_generator(_stage_generator(full_checkpoint)), image_size=_instance_size(recipe))
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        compile_colorizer(recipe, colorizer, build_optimizer(recipe, decay_steps=total))
    return colorizer


def build_fusion_colorizer(recipe, full_checkpoint, instance_checkpoint, steps_per_epoch=None, compile=True):
    """Build the fusion stage's `FusionColorizer` from the two earlier stages' checkpoints.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        full_checkpoint: str or Path. The full-image stage's `best.keras`.
        instance_checkpoint: str or Path. The instance stage's `best.keras`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer and `colorizer.loss`.
            Defaults to True.

    Returns:
        A `FusionColorizer` whose two generators are frozen; its inputs are the dicts
        of `InstanceImageFolder` (sRGB in [0, 1]).

    Raises:
        RecipeError: unknown fusion points or bad settings.
    """
    from keras_colorize.models.fusion import FusionColorizer, SimpleWeightModel

    recipe = _as_recipe(recipe)
    section = recipe["instances"]
    fusion_kwargs = {}
    if section.get("fusion_points") is not None:
        fusion_kwargs["fusion_points"] = tuple(section["fusion_points"])
    if section.get("weight_filters") is not None:
        fusion_kwargs["filters"] = section["weight_filters"]
    try:
        fusion_model = SimpleWeightModel(
            _stage_generator(full_checkpoint), _stage_generator(instance_checkpoint), **fusion_kwargs
        )
    except (UserInputError, ValueError) as error:
        raise recipe.error("instances", first_line(error)) from None
    colorizer = FusionColorizer(
        fusion_model,
        image_size=recipe["colorizer"]["image_size"],
        instance_size=_instance_size(recipe),
        **_instance_settings(recipe),
    )
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        compile_colorizer(recipe, colorizer, build_optimizer(recipe, decay_steps=total))
    return colorizer


# ----------------------------------------------------------------------------- InstructPix2Pix fine-tuning


def _finetune_optimizer_arguments(recipe, name, kwargs):
    """AdamW arguments left out take the InstructPix2Pix script's values; `finetune.ema` adds the EMA."""
    from keras_colorize.models.instruct_pix2pix.finetuner import default_optimizer

    kwargs = dict(kwargs)
    if name.lower() == "adamw":
        config = default_optimizer().get_config()
        for key in ("learning_rate", "weight_decay", "epsilon", "global_clipnorm"):
            kwargs.setdefault(key, config[key])
    finetune = recipe["finetune"]
    if finetune.get("ema"):
        kwargs.setdefault("use_ema", True)
        kwargs.setdefault("ema_momentum", float(finetune["ema_momentum"]))
    return kwargs


def build_components(recipe):
    """Load (or make) the InstructPix2Pix components a recipe's `model` section names.

    `model.preset` is a preset folder (`convert.preset.load_preset`); `model.random`
    (`tiny` or `full`) makes seeded random components (`model.seed`, 0), for trials.
    The networks take the current Keras dtype policy, or `model.dtype` when set.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe with `model.name:
            InstructPix2Pix`.

    Returns:
        A `DiffusionComponents`.

    Raises:
        RecipeError: the preset folder is missing or cannot be loaded (names
            `model.preset`).
    """
    from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset, random_components

    recipe = _as_recipe(recipe)
    model = recipe["model"]
    dtype = model.get("dtype")
    if "random" in model:
        return random_components(seed=int(model.get("seed", 0)), tiny=model["random"] == "tiny", dtype=dtype)
    check_preset_path(recipe)
    try:
        return load_preset(model["preset"], dtype=dtype)
    except UserInputError as error:
        raise recipe.error(("model", "preset"), first_line(error)) from None


def check_preset_path(recipe):
    """Check that `model.preset` of an InstructPix2Pix recipe is a folder with a `config.json`.

    Raises:
        RecipeError: naming `model.preset` and how to set it.
    """
    preset = recipe["model"].get("preset")
    if preset is None:
        return
    path = Path(preset).expanduser()
    if not path.is_dir():
        raise recipe.error(("model", "preset"), f"preset folder not found: {preset} (pass --set model.preset=FOLDER)")
    if not (path / "config.json").is_file():
        raise recipe.error(("model", "preset"), f"{preset} has no config.json (not an InstructPix2Pix preset folder)")


def finetuner_arguments(recipe):
    """The `InstructPix2PixFineTuner` arguments of a recipe's `finetune` section (constants for nulls)."""
    from keras_colorize.models.instruct_pix2pix.constants import CONDITIONING_DROPOUT

    finetune = recipe["finetune"]
    dropout = finetune.get("conditioning_dropout")
    return {
        "prompts": finetune.get("prompts"),
        "conditioning_dropout": CONDITIONING_DROPOUT if dropout is None else float(dropout),
        "loss": finetune["loss"],
        "seed": recipe["train"]["seed"],
        "lora_rank": finetune.get("lora_rank"),
        "remat": finetune.get("remat"),
        "sampling": {k: v for k, v in validation_settings(recipe).items() if k not in ("every_n_steps", "images")},
    }


def validation_settings(recipe):
    """The sampled-validation settings of `finetune.validation`, constants for nulls.

    Returns:
        A dict of `every_n_steps` (None: off), `images`, `steps`, `guidance`,
        `image_guidance`, `sampler` and `seed`.
    """
    from keras_colorize.models.instruct_pix2pix.constants import IMAGE_GUIDANCE, SAMPLING_STEPS, TEXT_GUIDANCE

    values = dict(recipe["finetune"]["validation"])
    for key, constant in (("steps", SAMPLING_STEPS), ("guidance", TEXT_GUIDANCE), ("image_guidance", IMAGE_GUIDANCE)):
        if values.get(key) is None:
            values[key] = constant
    return values


def build_finetuner(recipe, steps_per_epoch=None, compile=True):
    """Build the InstructPix2Pix fine-tuner of a recipe, compiled with its optimizer.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe with `model.name:
            InstructPix2Pix`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer (AdamW with the
            InstructPix2Pix settings by default; `finetune.ema` adds an EMA).
            Defaults to True.

    Returns:
        An `InstructPix2PixFineTuner` taking sRGB in [0, 1], shape
        (N, image_size, image_size, 3).

    Raises:
        RecipeError: a missing preset, a prompt file that cannot be read, an image
            size the networks cannot take, or bad fine-tuning settings.
    """
    from keras_colorize.models.instruct_pix2pix.finetuner import InstructPix2PixFineTuner
    from keras_colorize.models.instruct_pix2pix.pipeline import size_multiple

    recipe = _as_recipe(recipe)
    components = build_components(recipe)
    multiple = size_multiple(components)
    image_size = recipe["colorizer"]["image_size"]
    if image_size % multiple:
        raise recipe.error(
            ("colorizer", "image_size"), f"{image_size} must be a multiple of {multiple} for these networks"
        )
    arguments = finetuner_arguments(recipe)
    try:
        finetuner = InstructPix2PixFineTuner(components, **arguments)
    except UserInputError as error:
        message = first_line(error)
        key = ("finetune", "prompts") if arguments["prompts"] and str(arguments["prompts"]) in message else "finetune"
        raise recipe.error(key, message) from None
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        finetuner.compile(optimizer=build_optimizer(recipe, decay_steps=total))
    return finetuner
