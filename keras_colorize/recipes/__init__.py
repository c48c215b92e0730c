"""Recipes: the YAML files that describe a training run, their schema, loading and building.

Importing this package does not import Keras (the command line chooses the backend first).

Examples:
    >>> from keras_colorize.recipes import load_recipe, build_colorizer
    >>> recipe = load_recipe("quickstart", overrides=["train.epochs=1"])
    >>> colorizer = build_colorizer(recipe)
"""

from keras_colorize.recipes.builder import (
    build_colorizer,
    build_datasets,
    build_discriminator,
    build_fusion_colorizer,
    build_generator,
    build_instance_colorizer,
    build_instance_datasets,
    build_model,
    build_optimizer,
    build_trainer,
)
from keras_colorize.recipes.loader import (
    Recipe,
    RecipeError,
    builtin_recipe_dir,
    check_data_paths,
    list_builtin_recipes,
    load_recipe,
    parse_override,
    recipe_description,
    recipe_of_checkpoint,
    resolve_recipe_path,
    validate_recipe,
)
from keras_colorize.recipes.schema import DEFAULTS, RECIPE_SCHEMA

__all__ = [
    "DEFAULTS",
    "RECIPE_SCHEMA",
    "Recipe",
    "RecipeError",
    "build_colorizer",
    "build_datasets",
    "build_discriminator",
    "build_fusion_colorizer",
    "build_generator",
    "build_instance_colorizer",
    "build_instance_datasets",
    "build_model",
    "build_optimizer",
    "build_trainer",
    "builtin_recipe_dir",
    "check_data_paths",
    "list_builtin_recipes",
    "load_recipe",
    "parse_override",
    "recipe_description",
    "recipe_of_checkpoint",
    "resolve_recipe_path",
    "validate_recipe",
]
