"""Adversarial training: a generator against a discriminator (`GANTrainer`) or a critic
(`WGANGPTrainer`).

Sections (a `trainer` section asks for this kind):

- `trainer`: `name` of an adversarial trainer, `GANTrainer` or `WGANGPTrainer`, and its
  constructor arguments (`lambda_adv`, `lambda_rec`, `reconstruction`, `lambda_class`,
  ...); `teacher` is the path of a `.keras` classifier (sRGB in [0, 1] -> class
  probabilities) for `class_target: teacher`.
- `discriminator` (required): the `name` of a registered discriminator
  (`PatchGANDiscriminator`) and its constructor arguments.
- `discriminator_optimizer`: the discriminator's (critic's) optimizer, keys as in
  `optimizer` (absent: the same settings as `optimizer`).
"""

import inspect
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.recipes.builder import (
    build_datasets,
    build_discriminator,
    build_generator,
    build_metrics,
    build_optimizer,
    constructor_arguments,
    takes_loaded_recipe,
)
from keras_colorize.recipes.checks import check_arguments, check_optimizer, check_zoo_class
from keras_colorize.recipes.kinds.base import TrainingKind
from keras_colorize.recipes.schema import CLASS_SECTION, OPTIMIZER_SECTION, OPTIONAL_PATH

TRAINERS = ("GANTrainer", "WGANGPTrainer")
"""The adversarial trainers a recipe can name (`keras_colorize.training.gan`)."""

# Trainer arguments a recipe cannot give: the networks come from `model` and `discriminator`.
_TRAINER_NETWORKS = ("generator", "discriminator", "critic")


def _trainer_class(recipe):
    from keras_colorize.training import gan

    return getattr(gan, recipe["trainer"]["name"])


def _load_teacher(recipe, path):
    import keras

    if not Path(path).is_file():
        raise recipe.error(("trainer", "teacher"), f"file not found: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise recipe.error(("trainer", "teacher"), f"cannot load {path}: {first_line(error)}") from None


@takes_loaded_recipe
def build_trainer(recipe, steps_per_epoch=None, compile=True):
    """Build the adversarial trainer of a recipe's `trainer` section.

    The generator comes from `model`, the discriminator (critic) from
    `discriminator`, their optimizers from `optimizer` and `discriminator_optimizer`
    (with `schedule`); the trainer's arguments from `trainer`.

    Args:
        recipe: Recipe. A loaded recipe with a `trainer`.
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

    if "trainer" not in recipe:
        raise recipe.error("trainer", "the recipe has no trainer section")
    section = recipe["trainer"]
    kwargs = constructor_arguments(section)
    if kwargs.get("teacher"):
        kwargs["teacher"] = _load_teacher(recipe, kwargs["teacher"])
    generator = build_generator(recipe)
    discriminator = build_discriminator(recipe)
    image_size = recipe["colorizer"]["image_size"]
    try:
        trainer = _trainer_class(recipe)(generator, discriminator, image_size=image_size, **kwargs)
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


class AdversarialKind(TrainingKind):
    """A `GANTrainer` or `WGANGPTrainer` (a `trainer` section)."""

    name = "adversarial"
    sections = {
        "trainer": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"enum": list(TRAINERS)}, "teacher": OPTIONAL_PATH},
            "additionalProperties": True,
        },
        "discriminator": CLASS_SECTION,
        "discriminator_optimizer": OPTIMIZER_SECTION,
    }
    requirement = f"needs a trainer section (trainer.name: {' or '.join(TRAINERS)})"

    def claims(self, data):
        return "trainer" in data

    def check(self, recipe):
        if "discriminator" not in recipe:
            raise recipe.error(
                "discriminator", f"required with trainer {recipe['trainer']['name']} (e.g. name: PatchGANDiscriminator)"
            )
        trainer = recipe["trainer"]
        if trainer.get("class_target") == "teacher" and not trainer.get("teacher"):
            raise recipe.error(("trainer", "teacher"), "class_target teacher needs the path of a .keras classifier")

    def check_classes(self, recipe):
        super().check_classes(recipe)
        section = recipe["trainer"]
        for key in _TRAINER_NETWORKS:
            if key in section:
                where = "model" if key == "generator" else "discriminator"
                raise recipe.error(("trainer", key), f"set by the {where} section, not in trainer")
        check_arguments(recipe, "trainer", _trainer_class(recipe), section, skip=("name",) + _TRAINER_NETWORKS)
        check_zoo_class(recipe, "discriminator", "discriminator")
        if "discriminator_optimizer" in recipe:
            check_optimizer(recipe, "discriminator_optimizer")

    def class_labels_needed(self, recipe):
        trainer = recipe["trainer"]
        if trainer.get("class_target", "labels") != "labels":
            return False
        if "lambda_class" in trainer:
            weight = trainer["lambda_class"]
        else:
            weight = inspect.signature(_trainer_class(recipe).__init__).parameters["lambda_class"].default
        return float(weight or 0) > 0

    def build_model(self, recipe, steps_per_epoch=None, compile=True, class_weights=None):
        return build_trainer(recipe, steps_per_epoch=steps_per_epoch, compile=compile)

    def plan(self, recipe):
        """`best.keras` follows the reconstruction term (`val_g_rec`, else `g_rec`):
        the combined loss does not measure quality."""
        from keras_colorize.training.run import RunPlan, fixed_images

        image_size = recipe["colorizer"]["image_size"]
        trainer_name = recipe["trainer"]["name"]
        if trainer_name == "WGANGPTrainer":
            curves = ["critic_loss", "gp", "g_adv", "g_rec", "val_g_rec"]
        else:
            curves = ["d_loss", "g_adv", "g_rec", "val_g_rec"]
        discriminator_section = "discriminator_optimizer" if "discriminator_optimizer" in recipe else "optimizer"

        def describe(model):
            return (
                f"{trainer_name}: {recipe['model']['name']} ({model.generator.count_params():,} parameters) "
                f"against {recipe['discriminator']['name']} ({model.adversary.count_params():,} parameters)"
            )

        return RunPlan(
            recipe,
            datasets=lambda: build_datasets(recipe),
            build=lambda steps: self.build_model(recipe, steps_per_epoch=steps),
            model_class=trainer_name,
            description=describe,
            sample_inputs=lambda dataset, count: fixed_images(dataset, count, image_size),
            curves=curves,
            monitor=lambda has_validation: "val_g_rec" if has_validation else "g_rec",
            title=f"{recipe.get('name', 'run')}: {trainer_name}, {recipe['model']['name']}",
            optimizers=lambda model: [
                ("optimizer", model.generator_optimizer),
                (discriminator_section, model.discriminator_optimizer),
            ],
        )
