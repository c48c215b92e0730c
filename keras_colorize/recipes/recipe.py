"""`Recipe`, a loaded recipe, and its YAML form.

A `Recipe` is a plain nested dict that also knows where each key came from (the
recipe file, its base, a `--set` override), so that every problem names the file and
the key, and which kind of training it describes (`Recipe.kind`).
"""

import copy
import re

import yaml

from keras_colorize.errors import RecipeError

SET_SUFFIX = " (--set)"
"""Appended to the label of keys set by a `--set` override."""


class RecipeYamlLoader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads `1e-5` (no dot) as a float, as YAML 1.2 does."""


RecipeYamlLoader.add_implicit_resolver(
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


class RecipeYamlDumper(yaml.SafeDumper):
    """Block-style mappings; lists of plain values on one line (`[16, 32, 64]`)."""


def _represent_list(dumper, value):
    flow = all(not isinstance(v, (dict, list, tuple)) for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


RecipeYamlDumper.add_representer(list, _represent_list)
RecipeYamlDumper.add_representer(tuple, _represent_list)


def _ordered(data):
    """Sections, and the keys inside them, in schema order; unknown keys after."""
    from keras_colorize.recipes.kinds import SECTION_ORDER, section_keys

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

    @property
    def kind(self):
        """The kind of training the recipe describes (`keras_colorize.recipes.kinds`)."""
        from keras_colorize.recipes.kinds import kind_of

        return kind_of(self)

    def replace(self, data):
        """A recipe holding `data` (a mapping) with this recipe's provenance: source,
        origins, base and overrides (for example one stage of a multi-stage recipe)."""
        return Recipe(data, source=self.source, origins=self.origins, base=self.base, overrides=self.overrides)

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
                if label.endswith(SET_SUFFIX) and end != len(path):
                    continue
                return label
        return self.source

    def error(self, path, problem):
        """A `RecipeError` for the key at `path` (tuple or dotted string)."""
        if isinstance(path, str):
            path = tuple(path.split(".")) if path else ()
        label = self.origin(path)
        dotted = ".".join(str(p) for p in path)
        if label.endswith(SET_SUFFIX):
            label = label[: -len(SET_SUFFIX)]
            dotted += SET_SUFFIX
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
        body = yaml.dump(self.to_dict(), Dumper=RecipeYamlDumper, sort_keys=False)
        return "\n".join(header) + "\n" + body
