"""The kinds of training: one registry decides a recipe's kind, each kind owns its sections."""

import ast
from pathlib import Path

import pytest

from keras_colorize.recipes import (
    KINDS,
    RECIPE_SCHEMA,
    RecipeError,
    build_colorizer,
    build_model,
    build_trainer,
    kind_of,
    list_builtin_recipes,
    load_recipe,
)
from keras_colorize.recipes.kinds import SECTION_ORDER

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "keras_colorize"

BUILTIN_KINDS = {
    "backbone_unet_vgg16": "regression",
    "quickstart": "regression",
    "unet_v1": "regression",
    "unet_v2": "regression",
    "gan_l1": "adversarial",
    "gan_l1_class": "adversarial",
    "pix2pix": "adversarial",
    "wgan_gp_l2_class": "adversarial",
    "instance_fusion": "instance",
    "instruct_pix2pix_colorize": "instruct_pix2pix",
    "instruct_pix2pix_tiny": "instruct_pix2pix",
}

UNET = {"name": "UNetV1", "encoder_filters": [8, 16], "decoder_filters": [8]}
DATA = {"train": "samples"}
TRAINER = {"name": "GANTrainer"}
DISCRIMINATOR = {"name": "PatchGANDiscriminator"}
INSTANCES = {"boxes": "boxes.json"}
IP2P = {"name": "InstructPix2Pix", "random": "tiny"}


def test_every_builtin_recipe_is_of_its_kind():
    assert set(list_builtin_recipes()) == set(BUILTIN_KINDS)
    for name, kind in BUILTIN_KINDS.items():
        assert load_recipe(name, check_classes=False).kind.name == kind, name


def test_every_kind_section_has_one_owner_and_is_in_the_schema():
    owned = [section for kind in KINDS for section in kind.sections]
    assert len(owned) == len(set(owned))
    assert set(owned) <= set(RECIPE_SCHEMA["properties"])
    assert set(RECIPE_SCHEMA["properties"]) == set(SECTION_ORDER)
    assert [kind.name for kind in KINDS] == ["regression", "adversarial", "instance", "instruct_pix2pix"]


def test_later_kinds_refine_earlier_ones():
    assert kind_of({"model": UNET, "data": DATA}).name == "regression"
    assert kind_of({"model": UNET, "data": DATA, "trainer": TRAINER}).name == "adversarial"
    assert kind_of({"model": UNET, "data": DATA, "trainer": TRAINER, "instances": INSTANCES}).name == "instance"
    assert kind_of({"model": IP2P, "data": DATA, "instances": INSTANCES}).name == "instruct_pix2pix"


@pytest.mark.parametrize(
    "recipe, expected",
    [
        ({"model": UNET, "discriminator": DISCRIMINATOR}, "discriminator: needs a trainer section (trainer.name: GANTrainer or WGANGPTrainer)"),
        ({"model": UNET, "stages": {}}, "stages: needs an instances section"),
        ({"model": UNET, "finetune": {}}, "finetune: needs model.name: InstructPix2Pix"),
        ({"model": UNET, "trainer": TRAINER, "discriminator": DISCRIMINATOR, "finetune": {}}, "finetune: needs model.name"),
        ({"model": UNET, "trainer": TRAINER}, "discriminator: required with trainer GANTrainer"),
        ({"model": UNET, "instances": INSTANCES, "trainer": TRAINER}, "trainer: instance-aware training (instances) trains with a regression loss"),
        ({"model": IP2P, "instances": INSTANCES}, "instances: not used by InstructPix2Pix fine-tuning"),
        ({"model": IP2P, "data": {**DATA, "labels": True}}, "data.labels: InstructPix2Pix fine-tuning uses no class labels"),
        ({"model": UNET, "data": {**DATA, "labels": True}}, "data.labels: class labels are used by an adversarial trainer"),
        ({"model": {**IP2P, "preset": "folder"}}, "model: InstructPix2Pix needs either preset (a preset folder) or random"),
        ({"model": {**IP2P, "layers": 2}}, "model.layers: unknown key"),
    ],
)  # fmt: skip
def test_a_kind_refuses_what_is_not_its_own(recipe, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe({"data": DATA, **recipe}, check_classes=False)
    assert str(info.value).startswith(f"<recipe>: {expected}")


def test_each_kind_fills_its_own_defaults():
    regression = load_recipe({"model": UNET, "data": DATA}, check_classes=False)
    assert regression["optimizer"] == {"name": "adam", "learning_rate": 1.0e-3}
    assert not {"trainer", "instances", "stages", "finetune"} & set(regression)
    ip2p = load_recipe({"model": IP2P, "data": DATA}, check_classes=False)
    assert ip2p["optimizer"] == {"name": "adamw"}  # the fine-tuner's AdamW settings fill the rest
    assert ip2p["finetune"]["loss"] == "noise" and ip2p["finetune"]["validation"]["images"] == 4
    instance = load_recipe({"model": UNET, "data": DATA, "instances": INSTANCES, "stages": {"fusion": {"epochs": 2}}})
    assert instance["instances"]["min_score"] is None
    assert instance["stages"]["fusion"] == {"epochs": 2, "batch_size": None, "steps_per_epoch": None, "learning_rate": None}
    assert instance["stages"]["full"]["epochs"] is None


def test_the_resolved_recipe_lists_kind_sections_between_the_shared_ones():
    recipe = load_recipe("gan_l1", check_classes=False)
    order = list(recipe.to_dict())
    assert order.index("optimizer") < order.index("trainer") < order.index("discriminator") < order.index("data")


def test_builders_take_a_loaded_recipe():
    mapping = {"model": UNET, "data": DATA}
    for builder in (build_colorizer, build_model, build_trainer):
        with pytest.raises(TypeError, match=rf"{builder.__name__} takes a loaded recipe, not a dict: .*load_recipe"):
            builder(mapping)
    with pytest.raises(TypeError, match="not a str"):
        build_model("quickstart")


# Sections whose presence makes a recipe of another kind than regression.
_KIND_SECTIONS = {section for kind in KINDS for section in kind.sections} - {"discriminator"}


def _kind_tests(tree):
    """Places that test a recipe mapping for a kind's section or for InstructPix2Pix."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant):
            if node.left.value in _KIND_SECTIONS and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                found.append(node.lineno)
        if isinstance(node, ast.Constant) and node.value == "InstructPix2Pix":
            found.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in _KIND_SECTIONS
        ):
            found.append(node.lineno)
    return found


def test_only_the_kinds_decide_the_kind_of_training():
    assert _kind_tests(ast.parse('if "trainer" in recipe or recipe.get("instances"): pass'))  # the check sees them
    offenders = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        relative = path.relative_to(PACKAGE_ROOT)
        if relative.parts[:2] == ("recipes", "kinds") or relative.parts[0] == "models":
            continue  # the kinds themselves; the models name their own classes
        lines = _kind_tests(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            offenders[str(relative)] = lines
    assert offenders == {}
