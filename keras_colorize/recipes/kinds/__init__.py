"""The kinds of training a recipe can describe, registered once.

Each kind (`TrainingKind`) owns its recipe sections (schema and defaults), its checks,
what it builds and how it trains; the loader, the builders and the runner ask a
recipe's kind (`Recipe.kind`, `kind_of`). The kinds, in registration order:

- `regression` (`kinds.regression`): a `Colorizer` on `colorizer.loss`; any recipe
  that asks for no other kind;
- `adversarial` (`kinds.adversarial`): a `trainer` section, `GANTrainer` or
  `WGANGPTrainer`, with a `discriminator`;
- `instance` (`kinds.instance`): an `instances` section, three regression stages;
- `instruct_pix2pix` (`kinds.instruct_pix2pix`): `model.name: InstructPix2Pix`.

A recipe is of the last registered kind that claims it, so later kinds refine earlier
ones (an instance-aware recipe with a `trainer` is an instance-aware recipe, which
refuses the trainer). A section owned by a kind other than the recipe's is an error.
"""

import copy

from keras_colorize.recipes.kinds.adversarial import AdversarialKind
from keras_colorize.recipes.kinds.base import TrainingKind
from keras_colorize.recipes.kinds.instance import InstanceKind
from keras_colorize.recipes.kinds.instruct_pix2pix import InstructPix2PixKind
from keras_colorize.recipes.kinds.regression import RegressionKind
from keras_colorize.recipes.schema import LEADING_SECTIONS, SHARED_SECTIONS, TRAILING_SECTIONS

KINDS = (RegressionKind(), AdversarialKind(), InstanceKind(), InstructPix2PixKind())
"""The registered kinds, in registration order."""

_OWNERS = {section: kind for kind in KINDS for section in kind.sections}

RECIPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "keras-colorize recipe",
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "data"],
    "properties": {**SHARED_SECTIONS, **{section: kind.sections[section] for section, kind in _OWNERS.items()}},
}
"""The JSON Schema of a whole recipe: the shared sections and every kind's."""

SECTION_ORDER = LEADING_SECTIONS + tuple(_OWNERS) + TRAILING_SECTIONS
"""The order of the sections in a resolved recipe."""


def kind_of(data):
    """The kind of a recipe (a loaded `Recipe` or a raw mapping).

    Returns:
        The last registered `TrainingKind` that claims it.

    Examples:
        >>> from keras_colorize.recipes import load_recipe
        >>> load_recipe("quickstart").kind.name
        'regression'
    """
    return next(kind for kind in reversed(KINDS) if kind.claims(data))


def section_keys(section):
    """The keys a section of the schema knows, in schema order.

    Args:
        section: str or None. A top-level section name, or None for the top level.

    Returns:
        A list of key names.
    """
    if section is None:
        return list(RECIPE_SCHEMA["properties"])
    return list(RECIPE_SCHEMA["properties"][section].get("properties", {}))


def section_defaults():
    """A fresh deep copy of the defaults of every kind's sections (section -> defaults)."""
    return copy.deepcopy(
        {section: kind.section_defaults[section] for section, kind in _OWNERS.items() if section in kind.section_defaults}
    )


def section_owner(section):
    """The kind that owns a top-level section, or None for a shared section."""
    return _OWNERS.get(section)


__all__ = ["KINDS", "RECIPE_SCHEMA", "SECTION_ORDER", "TrainingKind", "kind_of", "section_defaults", "section_keys", "section_owner"]
