"""Build the objects a recipe describes: generator, optimizer, colorizer and datasets.

Every builder takes a loaded `Recipe` (see `load_recipe`) and turns a failure of the
underlying constructor into a one-line `RecipeError` that names the file and the key.
"""

from keras_colorize.errors import UserInputError
from keras_colorize.recipes.loader import RecipeError, load_recipe


def _as_recipe(recipe):
    from keras_colorize.recipes.loader import Recipe

    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _kwargs(section, skip=("name",)):
    return {key: (tuple(v) if isinstance(v, list) else v) for key, v in section.items() if key not in skip}


def build_generator(recipe):
    """Build the generator named by the recipe's `model` section.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe (anything else is loaded
            with `load_recipe`).

    Returns:
        A `keras.Model` mapping model-space L in [-1, 1], shape (N, H, W, 1), to ab in
        [-1, 1], shape (N, H, W, 2).

    Raises:
        RecipeError: when the model cannot be built from these arguments.
    """
    from keras_colorize import models

    recipe = _as_recipe(recipe)
    section = recipe["model"]
    try:
        return models.get_model(section["name"], **_kwargs(section))
    except RecipeError:
        raise
    except (UserInputError, ValueError, TypeError) as error:
        raise recipe.error("model", f"cannot build {section['name']}: {_first_line(error)}") from None


def build_optimizer(recipe):
    """Build the Keras optimizer of the recipe's `optimizer` section.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.

    Returns:
        A `keras.optimizers.Optimizer`.

    Raises:
        RecipeError: when the optimizer rejects its arguments.
    """
    import keras

    recipe = _as_recipe(recipe)
    section = recipe["optimizer"]
    try:
        return keras.optimizers.get({"class_name": section["name"], "config": _kwargs(section)})
    except (ValueError, TypeError) as error:
        raise recipe.error("optimizer", f"cannot build {section['name']}: {_first_line(error)}") from None


def build_colorizer(recipe, compile=True):
    """Build the Colorizer of a recipe, compiled with its optimizer and loss.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe.
        compile: bool. Compile with the recipe's optimizer, `colorizer.loss` and the
            default sRGB metrics. Defaults to True.

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
        raise recipe.error(("colorizer", "image_size"), _first_line(error)) from None
    if compile:
        colorizer.compile(optimizer=build_optimizer(recipe), loss=recipe["colorizer"]["loss"])
    return colorizer


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
    train = recipe["train"]
    try:
        return make_datasets(
            data["train"],
            image_size=recipe["colorizer"]["image_size"],
            batch_size=train["batch_size"],
            validation=data["validation"],
            validation_fraction=data["validation_fraction"],
            seed=train["seed"],
            resize_to=data["resize_to"],
            drop_grayscale=data["drop_grayscale"],
            repeat=data["repeat"],
            cache=data["cache"],
            workers=data["workers"],
        )
    except RecipeError:
        raise
    except UserInputError as error:
        message = _first_line(error)
        key = "data.validation" if data["validation"] and str(data["validation"]) in message else "data.train"
        raise recipe.error(key, message) from None
