"""Checks shared by every kind of recipe: schema errors in one line, constructor
arguments against signatures, zoo classes, optimizers, data folders.

Each check raises a `RecipeError` that names the file and the key (`Recipe.error`).
"""

import difflib
import inspect
from pathlib import Path

import jsonschema

from keras_colorize.data.samples import SAMPLES


def type_name(value):
    """A value's type in the words of YAML and the schema: "null", "integer", "mapping", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def unknown_key_problem(key, known):
    """The problem of an unknown key: the closest known key, and every known key."""
    hint = difflib.get_close_matches(str(key), known, n=1)
    did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
    return f"unknown key ({did_you_mean}expected one of: {', '.join(known)})"


def check_schema(recipe, data, schema, prefix=()):
    """Validate `data` (the recipe, or its section at `prefix`) against a JSON schema.

    Raises:
        RecipeError: the first problem, an unknown key before others at one depth.
    """
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(data),
        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path], e.validator != "additionalProperties"),
    )
    if errors:
        error = errors[0]
        error.path.extendleft(reversed(prefix))
        raise schema_error(recipe, error)


def schema_error(recipe, error):
    """A jsonschema `ValidationError` as a one-line `RecipeError` on its key."""
    path = tuple(error.absolute_path)
    value = error.instance
    if error.validator == "anyOf" and error.context:
        # Report the alternative made for this kind of value (a name, or a mapping).
        container = isinstance(value, (dict, list))
        for sub in error.context:
            alternative = error.validator_value[sub.schema_path[0]]
            if ("enum" in alternative) != container:
                return schema_error(recipe, sub)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = sorted(k for k in value if k not in known)
        return recipe.error(path + (extra[0],), unknown_key_problem(extra[0], known))
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in value]
        return recipe.error(path + (missing[0],), "required key is missing")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        expected = expected.replace("object", "mapping").replace("array", "list")
        return recipe.error(path, f"expected {expected}, got {type_name(value)} {value!r}")
    if error.validator == "enum":
        options = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in error.validator_value)
        return recipe.error(path, f"expected one of: {options}; got {value!r}")
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if error.validator in bounds:
        return recipe.error(path, f"must be {bounds[error.validator]} {error.validator_value}, got {value!r}")
    if error.validator == "minLength":
        return recipe.error(path, "must not be empty")
    return recipe.error(path, error.message.splitlines()[0])


def _fits_default(value, default):
    """True when `value` fits the type of a constructor default (None: unknown, accept).

    A null value is left to the constructor (many arguments take None to switch
    something off, e.g. `normalization: null`).
    """
    if value is None or default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        if default and all(isinstance(d, int) and not isinstance(d, bool) for d in default):
            return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return True
    return True


def check_arguments(recipe, section, cls, kwargs, skip=("name",)):
    """Check constructor arguments against `cls.__init__`'s explicit parameters."""
    signature = inspect.signature(cls.__init__)
    params = {
        name: p
        for name, p in signature.parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    known = list(skip) + [name for name in params if name not in skip]
    for key, value in kwargs.items():
        if key in skip:
            continue
        if key not in params:
            raise recipe.error((section, key), unknown_key_problem(key, known))
        default = params[key].default
        if not _fits_default(value, default):
            expected = type_name(list(default) if isinstance(default, tuple) else default)
            raise recipe.error(
                (section, key), f"expected {expected} (like {default!r}), got {type_name(value)} {value!r}"
            )
    required = [
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty and name not in kwargs and name not in skip
    ]
    if required:
        raise recipe.error((section, required[0]), f"required argument of {cls.__name__} is missing")


def check_zoo_class(recipe, section, role):
    """Check that `section.name` is a registered zoo class of `role` ("generator" or
    "discriminator") and the section's other keys are its constructor arguments (or, for
    `model`, a `preset` alone). Imports Keras."""
    from keras_colorize import models

    name = recipe[section]["name"]
    available = list(models.list_models(role=role))
    if name not in available:
        what = "model" if role == "generator" else role
        if name in models.list_models():
            problem = f"{name} is a {models.get_model_class(name).zoo_role}, not a {role} ({role}s: {', '.join(available)})"
        else:
            hint = difflib.get_close_matches(name, available, n=1)
            did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
            problem = f"unknown {what} {name!r} ({did_you_mean}expected one of: {', '.join(available)})"
        raise recipe.error((section, "name"), problem)
    if section == "model" and "preset" in recipe[section]:
        extra = [key for key in recipe[section] if key not in ("name", "preset")]
        if extra:
            raise recipe.error((section, extra[0]), "model.preset takes the whole generator from the preset; remove the other arguments")
        if not isinstance(recipe[section]["preset"], str) or not recipe[section]["preset"]:
            raise recipe.error((section, "preset"), "expected a preset name or folder")
        return
    check_arguments(recipe, section, models.get_model_class(name), recipe[section])


def check_optimizer(recipe, section="optimizer"):
    """Check that `section.name` is a Keras optimizer and the other keys its arguments. Imports Keras."""
    import keras

    name = recipe[section]["name"]
    try:
        optimizer = keras.optimizers.get(name)
    except (ValueError, TypeError):
        optimizer = None
    if optimizer is None:
        raise recipe.error((section, "name"), f"unknown Keras optimizer {name!r} (e.g. adam, adamw, sgd)")
    check_arguments(recipe, section, type(optimizer), recipe[section])


def check_data_paths(recipe, keys=("data.train", "data.validation")):
    """Check that the data folders a recipe names exist.

    Args:
        recipe: Recipe. A loaded recipe.
        keys: tuple of str. Dotted keys to check; `null` values are skipped and
            `data.train` may be `"samples"` (the built-in sample photos).
            Defaults to `("data.train", "data.validation")`.

    Raises:
        RecipeError: naming the key and the file when a folder is missing.
    """
    for key in keys:
        value = recipe.get_path(key)
        if value is None or (key == "data.train" and value == SAMPLES):
            continue
        path = Path(value).expanduser()
        if not path.exists():
            hint = f" (pass --set {key}=FOLDER)" if key == "data.train" else ""
            raise recipe.error(key, f"folder not found: {value}{hint}")
        if not path.is_dir():
            raise recipe.error(key, f"not a folder: {value}")
