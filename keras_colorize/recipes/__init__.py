"""Recipes: the YAML files that describe a training run, their schema, loading and building.

Importing this package does not import Keras (the command line chooses the backend first).

Examples:
    >>> from keras_colorize.recipes import load_recipe, build_colorizer
    >>> recipe = load_recipe("quickstart", overrides=["train.epochs=1"])
    >>> colorizer = build_colorizer(recipe)
"""

from keras_colorize.errors import RecipeError
from keras_colorize.recipes.builder import (
    build_colorizer,
    build_datasets,
    build_discriminator,
    build_generator,
    build_model,
    build_optimizer,
)
from keras_colorize.recipes.checks import check_data_paths
from keras_colorize.recipes.kinds import KINDS, RECIPE_SCHEMA, TrainingKind, kind_of
from keras_colorize.recipes.kinds.adversarial import build_trainer
from keras_colorize.recipes.kinds.instance import build_fusion_colorizer, build_instance_colorizer, build_instance_datasets
from keras_colorize.recipes.kinds.instruct_pix2pix import build_finetuner
from keras_colorize.recipes.loader import (
    builtin_recipe_dir,
    list_builtin_recipes,
    load_recipe,
    parse_override,
    recipe_description,
    recipe_of_checkpoint,
    resolve_recipe_path,
    validate_recipe,
)
from keras_colorize.recipes.recipe import Recipe
from keras_colorize.recipes.schema import DEFAULTS

__all__ = [
    "DEFAULTS",
    "KINDS",
    "RECIPE_SCHEMA",
    "Recipe",
    "RecipeError",
    "TrainingKind",
    "build_colorizer",
    "build_datasets",
    "build_discriminator",
    "build_finetuner",
    "build_fusion_colorizer",
    "build_generator",
    "build_instance_colorizer",
    "build_instance_datasets",
    "build_model",
    "build_optimizer",
    "build_trainer",
    "builtin_recipe_dir",
    "check_data_paths",
    "kind_of",
    "list_builtin_recipes",
    "load_recipe",
    "parse_override",
    "recipe_description",
    "recipe_of_checkpoint",
    "resolve_recipe_path",
    "validate_recipe",
]
