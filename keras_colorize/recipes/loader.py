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
import importlib.resources
from pathlib import Path

import yaml

from keras_colorize.errors import RecipeError
from keras_colorize.recipes.checks import check_data_paths, check_schema, type_name
from keras_colorize.recipes.kinds import RECIPE_SCHEMA, SECTION_ORDER, kind_of, section_defaults, section_owner
from keras_colorize.recipes.recipe import SET_SUFFIX, Recipe, RecipeYamlLoader
from keras_colorize.recipes.schema import default_sections


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
        data = yaml.load(text, Loader=RecipeYamlLoader)
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
        data = yaml.load(text, Loader=RecipeYamlLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"{label}: invalid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{label}: a recipe must be a YAML mapping, got {type_name(data)}")
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
        raise RecipeError(f"{label}: base: expected a recipe name or path, got {type_name(base)}")
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
        value = yaml.load(raw, Loader=RecipeYamlLoader) if raw.strip() else ""
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
            origins[parts[: depth + 1]] = label + SET_SUFFIX
        elif not isinstance(child, dict):
            dotted = ".".join(parts[: depth + 1])
            raise RecipeError(
                f"--set {text}: {dotted} is a {type_name(child)}, not a section with keys"
            )
        node = child
    node[parts[-1]] = value
    origins[parts] = label + SET_SUFFIX
    if isinstance(value, dict):
        _record_origins(value, label + SET_SUFFIX, origins, parts)


def _fill_defaults(data):
    """The recipe with the defaults of its sections filled in (its kind's where they differ)."""
    filled = copy.deepcopy(data)
    kind = kind_of(filled)
    for section, defaults in default_sections().items():
        current = filled.get(section)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            continue  # reported by the schema check
        defaults = copy.deepcopy(kind.shared_defaults.get(section, defaults))
        if section == "optimizer" and current.get("name", defaults["name"]) != defaults["name"]:
            # The default learning rate is the default optimizer's; another keeps its own default.
            defaults = {"name": defaults["name"]}
        filled[section] = {**defaults, **current}
    for section in kind.filled_sections:
        if filled.get(section) is None:
            filled[section] = {}
    for section, defaults in section_defaults().items():
        current = filled.get(section)
        if isinstance(current, dict):
            filled[section] = _deep_merge(defaults, current)
    return filled


# ----------------------------------------------------------------------------- validation


def validate_recipe(recipe, check_classes=True):
    """Validate a recipe against the schema, then as its kind requires.

    A section of another kind than the recipe's is refused in the words of the
    recipe's kind (or, when it has none, with the other kind's requirement), as is
    `data.labels` for a kind that uses no class labels; then the kind checks the rest
    (`TrainingKind.check` and `check_classes`).

    Args:
        recipe: Recipe. The merged recipe, defaults filled in.
        check_classes: bool. Also check the named classes' arguments against their
            constructors: the zoo classes, the Keras optimizers, the trainer (imports
            Keras). Defaults to True.

    Raises:
        RecipeError: on the first problem found, naming the file and the key.
    """
    check_schema(recipe, dict(recipe), RECIPE_SCHEMA)
    data = recipe["data"]
    if data.get("validation") and data.get("validation_fraction"):
        raise recipe.error(
            ("data", "validation_fraction"),
            "set either data.validation (a folder) or data.validation_fraction, not both",
        )
    kind = recipe.kind
    for section in SECTION_ORDER:
        owner = section_owner(section)
        if section in recipe and owner is not None and owner is not kind:
            raise recipe.error(section, kind.refusal or owner.requirement)
    if data.get("labels") and kind.labels_problem:
        raise recipe.error(("data", "labels"), kind.labels_problem)
    kind.check(recipe)
    if check_classes:
        kind.check_classes(recipe)


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
