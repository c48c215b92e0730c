"""Load recipes: read YAML, merge the base recipe, apply `--set` overrides, validate.

Paths inside a recipe (`data.train`, `data.validation`, `evaluate.data`, `train.run_dir`)
are relative to the current working directory, not to the recipe file, so that a recipe
behaves the same whether it is named by path or as a built-in. A `base:` is a built-in
recipe name or a path (relative to the current working directory, else to the folder of
the recipe that names it).

Every problem is a one-line `RecipeError` that names the file and the key, for example
`my.yaml: model.encoder_filtrs: unknown key (did you mean 'encoder_filters'? expected one
of: ...)`.
"""

import copy
import difflib
import importlib.resources
import inspect
import re
from pathlib import Path

import jsonschema
import yaml

from keras_colorize.errors import UserInputError
from keras_colorize.recipes.schema import (
    INSTRUCT_PIX2PIX,
    INSTRUCT_PIX2PIX_MODEL,
    INSTRUCT_PIX2PIX_OPTIMIZER,
    RECIPE_SCHEMA,
    SECTION_ORDER,
    default_sections,
    optional_section_defaults,
    section_keys,
)

SAMPLES = "samples"
_SET_SUFFIX = " (--set)"


class RecipeError(UserInputError):
    """A recipe problem: the one-line message names the file and the key."""


class _RecipeYamlLoader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads `1e-5` (no dot) as a float, as YAML 1.2 does."""


_RecipeYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class _RecipeYamlDumper(yaml.SafeDumper):
    """Block-style mappings; lists of plain values on one line (`[16, 32, 64]`)."""


def _represent_list(dumper, value):
    flow = all(not isinstance(v, (dict, list, tuple)) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_RecipeYamlDumper.add_representer(list, _represent_list)
_RecipeYamlDumper.add_representer(tuple, _represent_list)


def _ordered(data):
    """Sections, and the keys inside them, in schema order; unknown keys after."""
    if not isinstance(data, dict):
        return data
    ordered = {key: data[key] for key in SECTION_ORDER if key in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    for section, value in ordered.items():
        if isinstance(value, dict):
            known = [k for k in section_keys(section) if k in value] if section in SECTION_ORDER[3:] else []
            inner = {k: value[k] for k in known}
            inner.update({k: v for k, v in value.items() if k not in inner})
            ordered[section] = inner
    return ordered


class Recipe(dict):
    """A loaded, validated recipe: a plain nested dict plus where each key came from.

    Attributes:
        source: str. The label of the recipe file used in messages (its path as given,
            or `"<name> (built-in)"`).
        origins: dict. Maps key paths (tuples) to the label of the file that set them.
        base: str or None. The label of the base recipe merged in, if any.
        overrides: list of str. The `--set` overrides applied, in order.
    """

    def __init__(self, data, source="<recipe>", origins=None, base=None, overrides=()):
        super().__init__(data)
        self.source = source
        self.origins = dict(origins or {})
        self.base = base
        self.overrides = list(overrides)

    def get_path(self, dotted, default=None):
        """The value at a dotted key such as `"train.epochs"`, or `default`.

        Args:
            dotted: str. Section and key names joined by dots.
            default: object. Returned when the key is absent. Defaults to None.

        Returns:
            The value.

        Examples:
            >>> from keras_colorize.recipes import load_recipe
            >>> load_recipe("quickstart").get_path("colorizer.image_size")
            256
        """
        node = self
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def origin(self, path):
        """The label of the file (or `--set`) that set the key at `path` (tuple or dotted)."""
        if isinstance(path, str):
            path = tuple(path.split(".")) if path else ()
        path = tuple(path)
        for end in range(len(path), -1, -1):
            label = self.origins.get(path[:end])
            if label is not None:
                # A key set by --set is labelled on itself, not on its section.
                if label.endswith(_SET_SUFFIX) and end != len(path):
                    continue
                return label
        return self.source

    def error(self, path, problem):
        """A `RecipeError` for the key at `path` (tuple or dotted string)."""
        if isinstance(path, str):
            path = tuple(path.split(".")) if path else ()
        label = self.origin(path)
        dotted = ".".join(str(p) for p in path)
        if label.endswith(_SET_SUFFIX):
            label = label[: -len(_SET_SUFFIX)]
            dotted += _SET_SUFFIX
        return RecipeError(f"{label}: {dotted}: {problem}" if dotted else f"{label}: {problem}")

    def to_dict(self):
        """A deep copy as plain dicts and lists, sections and keys in schema order."""
        return _ordered(copy.deepcopy(dict(self)))

    def to_yaml(self):
        """The recipe as YAML text (resolved: base merged, overrides and defaults applied).

        A comment header records the recipe file, its base and the overrides.
        """
        header = [f"# Resolved recipe, loaded from {self.source}"]
        if self.base:
            header.append(f"# base: {self.base} (merged below)")
        for text in self.overrides:
            header.append(f"# --set {text}")
        body = yaml.dump(self.to_dict(), Dumper=_RecipeYamlDumper, sort_keys=False)
        return "\n".join(header) + "\n" + body


# ----------------------------------------------------------------------------- built-ins


def builtin_recipe_dir():
    """The folder that holds the built-in recipes, or None when there is none.

    The wheel ships them as `keras_colorize/recipes/builtin/`; a source checkout keeps
    them in the top-level `recipes/` folder.

    Returns:
        A `pathlib.Path` or None.
    """
    try:
        packaged = importlib.resources.files("keras_colorize") / "recipes" / "builtin"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, TypeError):
        pass
    checkout = Path(__file__).resolve().parents[2] / "recipes"
    return checkout if checkout.is_dir() else None


def list_builtin_recipes():
    """The built-in recipes and their one-line descriptions.

    Returns:
        A dict mapping each recipe name (file stem) to its description.
    """
    folder = builtin_recipe_dir()
    if folder is None:
        return {}
    return {
        path.stem: recipe_description(path)
        for path in sorted(folder.iterdir())
        if path.suffix in (".yaml", ".yml") and path.is_file()
    }


def recipe_description(path):
    """A recipe file's one-line description.

    The `description:` key when there is one, else the first line of the comment
    block the file begins with.

    Args:
        path: str or Path. The recipe file.

    Returns:
        A string, empty when the file says nothing.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_RecipeYamlLoader)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        return " ".join(data["description"].split())
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        comment = stripped.lstrip("#").strip()
        if comment:
            return comment
    return ""


def resolve_recipe_path(recipe):
    """Find a recipe file from a path or a built-in name.

    Args:
        recipe: str or Path. A path to a YAML file, or a built-in name such as
            `"quickstart"` (with or without `.yaml`).

    Returns:
        A tuple `(path, label)`: the file and how messages name it.

    Raises:
        RecipeError: if it is neither an existing file nor a built-in name.
    """
    path = Path(recipe)
    if path.is_file():
        return path, str(recipe)
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    folder = builtin_recipe_dir()
    if folder is not None and str(recipe) == path.name:
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate, f"{name} (built-in)"
    if path.exists():
        raise RecipeError(f"{recipe}: not a recipe file (a folder)")
    builtins = ", ".join(list_builtin_recipes()) or "none"
    raise RecipeError(
        f"{recipe}: recipe not found (no such file, and not a built-in recipe; built-in: {builtins})"
    )


# ----------------------------------------------------------------------------- reading


def _read_yaml(path, label):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{label}: cannot read the file ({error.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_RecipeYamlLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"{label}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{label}: a recipe must be a YAML mapping, got {_type_name(data)}")
    return data


def _record_origins(data, label, origins, prefix=()):
    for key, value in data.items():
        path = prefix + (key,)
        origins[path] = label
        if isinstance(value, dict):
            _record_origins(value, label, origins, path)


def _deep_merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve_base(base, label, recipe_path):
    if not isinstance(base, str) or not base:
        raise RecipeError(f"{label}: base: expected a recipe name or path, got {_type_name(base)}")
    candidate = Path(base)
    if not candidate.is_file() and recipe_path is not None and not candidate.is_absolute():
        sibling = Path(recipe_path).parent / base
        if sibling.is_file():
            return sibling, str(sibling)
    try:
        return resolve_recipe_path(base)
    except RecipeError as error:
        raise RecipeError(f"{label}: base: {str(error).split(': ', 1)[1]}") from None


def parse_override(text):
    """Parse one `--set` override.

    Args:
        text: str. `"section.key=value"`; the value is parsed as YAML (so `1e-4` is a
            float, `[8, 16]` a list, `null` None, and `abc` a string).

    Returns:
        A tuple `(path, value)` where `path` is a tuple of keys.

    Raises:
        RecipeError: if there is no `=`, the key is empty, or the value is not YAML.

    Examples:
        >>> from keras_colorize.recipes import parse_override
        >>> parse_override("train.epochs=3")
        (('train', 'epochs'), 3)
    """
    if "=" not in text:
        raise RecipeError(f"--set {text}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = tuple(key.split("."))
    if not key or any(not part for part in parts):
        raise RecipeError(f"--set {text}: expected KEY=VALUE with a dotted key, e.g. train.epochs")
    try:
        value = yaml.load(raw, Loader=_RecipeYamlLoader) if raw.strip() else ""
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise RecipeError(f"--set {text}: the value is not valid YAML ({problem})") from None
    return parts, value


def _apply_override(data, origins, label, parts, value, text):
    if parts[0] == "base":
        raise RecipeError(f"--set {text}: base cannot be overridden; write a recipe with its own base")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
            origins[parts[: depth + 1]] = label + _SET_SUFFIX
        elif not isinstance(child, dict):
            dotted = ".".join(parts[: depth + 1])
            raise RecipeError(
                f"--set {text}: {dotted} is a {_type_name(child)}, not a section with keys"
            )
        node = child
    node[parts[-1]] = value
    origins[parts] = label + _SET_SUFFIX
    if isinstance(value, dict):
        _record_origins(value, label + _SET_SUFFIX, origins, parts)


def is_instruct_pix2pix(data):
    """Whether a recipe (or its raw mapping) fine-tunes InstructPix2Pix (`model.name: InstructPix2Pix`)."""
    model = data.get("model") if isinstance(data, dict) else None
    return isinstance(model, dict) and model.get("name") == INSTRUCT_PIX2PIX


def _fill_defaults(data):
    filled = copy.deepcopy(data)
    diffusion = is_instruct_pix2pix(filled)
    for section, defaults in default_sections().items():
        current = filled.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            continue  # reported by the schema check
        if section == "optimizer" and diffusion:
            # AdamW with the InstructPix2Pix script's settings, filled in by the builder.
            defaults = dict(INSTRUCT_PIX2PIX_OPTIMIZER)
        if section == "optimizer" and current.get("name", defaults["name"]) != defaults["name"]:
            # The default learning rate is Adam's; another optimizer keeps its own default.
            defaults = {"name": defaults["name"]}
        filled[section] = {**defaults, **current}
    if diffusion and filled.get("finetune") is None:
        filled["finetune"] = {}
    for section, defaults in optional_section_defaults().items():
        current = filled.get(section)
        if isinstance(current, dict):
            filled[section] = _deep_merge(defaults, current)
    return filled


# ----------------------------------------------------------------------------- validation


def _type_name(value):
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


def _unknown_key_problem(key, known):
    hint = difflib.get_close_matches(str(key), known, n=1)
    did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
    return f"unknown key ({did_you_mean}expected one of: {', '.join(known)})"


def _schema_error_to_recipe_error(recipe, error):
    path = tuple(error.absolute_path)
    value = error.instance
    if error.validator == "anyOf" and error.context:
        # Report the alternative made for this kind of value (a name, or a mapping).
        container = isinstance(value, (dict, list))
        for sub in error.context:
            alternative = error.validator_value[sub.schema_path[0]]
            if ("enum" in alternative) != container:
                return _schema_error_to_recipe_error(recipe, sub)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = sorted(k for k in value if k not in known)
        return recipe.error(path + (extra[0],), _unknown_key_problem(extra[0], known))
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in value]
        return recipe.error(path + (missing[0],), "required key is missing")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        expected = expected.replace("object", "mapping").replace("array", "list")
        return recipe.error(path, f"expected {expected}, got {_type_name(value)} {value!r}")
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


def _check_value_type(value, default):
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


def _check_kwargs(recipe, section, cls, kwargs, skip=("name",)):
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
            raise recipe.error((section, key), _unknown_key_problem(key, known))
        default = params[key].default
        if not _check_value_type(value, default):
            expected = _type_name(list(default) if isinstance(default, tuple) else default)
            raise recipe.error(
                (section, key), f"expected {expected} (like {default!r}), got {_type_name(value)} {value!r}"
            )
    required = [
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty and name not in kwargs and name not in skip
    ]
    if required:
        raise recipe.error((section, required[0]), f"required argument of {cls.__name__} is missing")


def _check_zoo_class(recipe, section, role):
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
    _check_kwargs(recipe, section, models.get_model_class(name), recipe[section])


def _check_model(recipe):
    if is_instruct_pix2pix(recipe):
        return  # checked by _check_instruct_pix2pix
    _check_zoo_class(recipe, "model", "generator")


def _check_instruct_pix2pix(recipe):
    """The sections of InstructPix2Pix fine-tuning, or a `finetune` section without it."""
    if not is_instruct_pix2pix(recipe):
        if "finetune" in recipe:
            raise recipe.error("finetune", f"needs model.name: {INSTRUCT_PIX2PIX} (InstructPix2Pix fine-tuning)")
        return
    validator = jsonschema.Draft202012Validator(INSTRUCT_PIX2PIX_MODEL)
    errors = sorted(validator.iter_errors(dict(recipe["model"])), key=lambda e: e.validator != "additionalProperties")
    if errors:
        error = errors[0]
        error.path.appendleft("model")
        raise _schema_error_to_recipe_error(recipe, error)
    model = recipe["model"]
    if ("preset" in model) == ("random" in model):
        raise recipe.error(
            "model",
            f"{INSTRUCT_PIX2PIX} needs either preset (a preset folder) or random (tiny or full), not "
            + ("both" if "preset" in model else "neither"),
        )
    if "seed" in model and "random" not in model:
        raise recipe.error(("model", "seed"), "only random components take a seed")
    for section in ("trainer", "discriminator", "discriminator_optimizer", "instances", "stages"):
        if section in recipe:
            raise recipe.error(section, f"not used by {INSTRUCT_PIX2PIX} fine-tuning (it trains with finetune)")
    if recipe["data"].get("labels"):
        raise recipe.error(("data", "labels"), f"{INSTRUCT_PIX2PIX} fine-tuning uses no class labels")


def _check_optimizer(recipe, section="optimizer"):
    import keras

    name = recipe[section]["name"]
    try:
        optimizer = keras.optimizers.get(name)
    except (ValueError, TypeError):
        optimizer = None
    if optimizer is None:
        raise recipe.error((section, "name"), f"unknown Keras optimizer {name!r} (e.g. adam, adamw, sgd)")
    _check_kwargs(recipe, section, type(optimizer), recipe[section])


# Trainer arguments a recipe cannot give: the networks come from `model` and `discriminator`.
_TRAINER_NETWORKS = ("generator", "discriminator", "critic")


def _check_trainer_sections(recipe):
    """Without a trainer, no adversarial sections; with one, a discriminator."""
    if "trainer" not in recipe:
        for section in ("discriminator", "discriminator_optimizer"):
            if section in recipe:
                raise recipe.error(section, "needs a trainer section (trainer.name: GANTrainer or WGANGPTrainer)")
        if recipe["data"].get("labels"):
            raise recipe.error(("data", "labels"), "class labels are used by an adversarial trainer's class term only")
        return
    if "discriminator" not in recipe:
        raise recipe.error("discriminator", f"required with trainer {recipe['trainer']['name']} (e.g. name: PatchGANDiscriminator)")
    trainer = recipe["trainer"]
    if trainer.get("class_target") == "teacher" and not trainer.get("teacher"):
        raise recipe.error(("trainer", "teacher"), "class_target teacher needs the path of a .keras classifier")


def _check_instance_sections(recipe):
    """`stages` only with `instances`; instance-aware training is regression only."""
    if "stages" in recipe and "instances" not in recipe:
        raise recipe.error("stages", "needs an instances section (instance-aware training: instances.boxes)")
    if "instances" in recipe and "trainer" in recipe:
        raise recipe.error("trainer", "instance-aware training (instances) trains with a regression loss, not a trainer")


def _check_instance_model(recipe):
    from keras_colorize import models
    from keras_colorize.models.unet import UNet

    name = recipe["model"]["name"]
    if not issubclass(models.get_model_class(name), UNet):
        unets = [n for n in models.list_models("generator") if issubclass(models.get_model_class(n), UNet)]
        raise recipe.error(("model", "name"), f"instance-aware training needs a U-Net ({', '.join(unets)}), not {name}")


def _check_trainer(recipe):
    from keras_colorize.training import gan

    section = recipe["trainer"]
    for key in _TRAINER_NETWORKS:
        if key in section:
            where = "model" if key == "generator" else "discriminator"
            raise recipe.error(("trainer", key), f"set by the {where} section, not in trainer")
    _check_kwargs(recipe, "trainer", getattr(gan, section["name"]), section, skip=("name",) + _TRAINER_NETWORKS)
    _check_zoo_class(recipe, "discriminator", "discriminator")
    if "discriminator_optimizer" in recipe:
        _check_optimizer(recipe, "discriminator_optimizer")


def validate_recipe(recipe, check_classes=True):
    """Validate a recipe against the schema and the named classes' constructors.

    Args:
        recipe: Recipe. The merged recipe, defaults filled in.
        check_classes: bool. Also check `model` and `optimizer` arguments against the
            registered model class and the Keras optimizer (imports Keras). Defaults
            to True.

    Raises:
        RecipeError: on the first problem found, naming the file and the key.
    """
    validator = jsonschema.Draft202012Validator(RECIPE_SCHEMA)
    errors = sorted(
        validator.iter_errors(dict(recipe)),
        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path], e.validator != "additionalProperties"),
    )
    if errors:
        raise _schema_error_to_recipe_error(recipe, errors[0])
    data = recipe["data"]
    if data.get("validation") and data.get("validation_fraction"):
        raise recipe.error(
            ("data", "validation_fraction"),
            "set either data.validation (a folder) or data.validation_fraction, not both",
        )
    _check_instruct_pix2pix(recipe)
    _check_trainer_sections(recipe)
    _check_instance_sections(recipe)
    if check_classes:
        _check_model(recipe)
        _check_optimizer(recipe)
        if "trainer" in recipe:
            _check_trainer(recipe)
        if "instances" in recipe:
            _check_instance_model(recipe)


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


# ----------------------------------------------------------------------------- loading


def load_recipe(recipe, overrides=(), check_classes=True, check_paths=False):
    """Load a recipe: read it, merge its base, apply overrides, fill defaults, validate.

    Args:
        recipe: str, Path, dict or Recipe. A YAML file, a built-in recipe name (e.g.
            `"quickstart"`), or an already parsed mapping.
        overrides: iterable of str. `"section.key=value"` overrides applied after the
            base merge (values parsed as YAML). Defaults to ().
        check_classes: bool. Check `model` and `optimizer` arguments against their
            classes (imports Keras). Defaults to True.
        check_paths: bool. Check that the data folders exist. Defaults to False.

    Returns:
        A validated `Recipe`.

    Raises:
        RecipeError: with a one-line message naming the file and the key.

    Examples:
        >>> from keras_colorize.recipes import load_recipe
        >>> recipe = load_recipe("quickstart", overrides=["train.epochs=1"])
        >>> recipe["train"]["epochs"]
        1
    """
    base_label = None
    if isinstance(recipe, Recipe):
        data, source, origins = recipe.to_dict(), recipe.source, dict(recipe.origins)
        base_label, applied = recipe.base, list(recipe.overrides)
    else:
        applied = []
        if isinstance(recipe, dict):
            data, source, path = copy.deepcopy(recipe), "<recipe>", None
        else:
            path, source = resolve_recipe_path(recipe)
            data = _read_yaml(path, source)
        origins = {}
        _record_origins(data, source, origins)
        if path is not None and "name" not in data:
            data["name"] = Path(path).stem
            origins[("name",)] = source
        if "base" in data:
            base_path, base_label = _resolve_base(data.pop("base"), source, path)
            base_data = _read_yaml(base_path, base_label)
            if "base" in base_data:
                raise RecipeError(
                    f"{base_label}: base: a base recipe cannot have its own base "
                    f"(at most one level; {source} names it as its base)"
                )
            base_data.pop("description", None)  # it describes the base, not this recipe
            base_origins = {}
            _record_origins(base_data, base_label, base_origins)
            data = _deep_merge(base_data, data)
            base_origins.update(origins)
            origins = base_origins

    for text in overrides or ():
        parts, value = parse_override(text)
        _apply_override(data, origins, source, parts, value, text)
        applied.append(text)

    result = Recipe(_fill_defaults(data), source=source, origins=origins, base=base_label, overrides=applied)
    validate_recipe(result, check_classes=check_classes)
    if check_paths:
        check_data_paths(result)
    return result


def recipe_of_checkpoint(checkpoint):
    """The recipe a checkpoint was trained with: the `recipe.yaml` of its run
    (run/checkpoints/x.keras), or a preset's recorded recipe; None when unknown."""
    from keras_colorize.presets import is_preset, read_preset, resolve_preset

    if is_preset(checkpoint):
        recorded = read_preset(resolve_preset(checkpoint))[1].get("recipe")
    else:
        recorded = Path(checkpoint).resolve().parent.parent / "recipe.yaml"
        recorded = str(recorded) if recorded.is_file() else None
    if not recorded:
        return None
    try:
        return load_recipe(recorded, check_classes=False)
    except RecipeError:
        return None
