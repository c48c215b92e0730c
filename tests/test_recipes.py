"""Recipes: schema validation, base merging, --set overrides, built-ins, builders."""

import math
import textwrap

import keras
import pytest
import yaml

from keras_colorize.recipes import (
    RecipeError,
    build_colorizer,
    build_generator,
    build_optimizer,
    builtin_recipe_dir,
    list_builtin_recipes,
    load_recipe,
    parse_override,
    recipe_description,
)

TINY = """\
name: tiny
model:
  name: UNetV1
  encoder_filters: [8, 16, 16]
  decoder_filters: [16, 8]
colorizer:
  image_size: 32
  loss: l1
optimizer:
  name: adam
  learning_rate: 2.0e-3
data:
  train: samples
train:
  epochs: 2
  batch_size: 2
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(recipe, **kwargs):
    with pytest.raises(RecipeError) as info:
        load_recipe(str(recipe), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- --set


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train.epochs=3", (("train", "epochs"), 3)),
        ("optimizer.learning_rate=1e-4", (("optimizer", "learning_rate"), 1e-4)),
        ("optimizer.learning_rate=1.5E+2", (("optimizer", "learning_rate"), 150.0)),
        ("model.encoder_filters=[8, 16]", (("model", "encoder_filters"), [8, 16])),
        ("data.validation=null", (("data", "validation"), None)),
        ("data.train=my photos/train", (("data", "train"), "my photos/train")),
        ("data.cache=false", (("data", "cache"), False)),
        ("name=a=b", (("name",), "a=b")),
        ("name=", (("name",), "")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train..epochs=3", "model.x=[1, 2"])
def test_parse_override_rejects(text):
    with pytest.raises(RecipeError, match="--set"):
        parse_override(text)


def test_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, "tiny.yaml", TINY)
    recipe = load_recipe(str(path), overrides=["train.epochs=7", "optimizer.learning_rate=1e-5"])
    assert recipe["train"]["epochs"] == 7
    assert recipe["optimizer"]["learning_rate"] == 1e-5
    assert recipe.overrides == ["train.epochs=7", "optimizer.learning_rate=1e-5"]
    message = error_of(path, overrides=["train.epoch=3"])
    assert message.startswith(f"{path}: train.epoch (--set): unknown key (did you mean 'epochs'?")
    message = error_of(path, overrides=["model.encoder_filtrs=[8]"])
    assert "model.encoder_filtrs (--set): unknown key" in message and "encoder_filters" in message
    assert "train.epochs (--set): expected integer" in error_of(path, overrides=["train.epochs=two"])
    assert "is a integer, not a section" in error_of(path, overrides=["train.epochs.x=1"])
    assert "base cannot be overridden" in error_of(path, overrides=["base=quickstart"])


# ----------------------------------------------------------------------------- bad recipes


BAD_RECIPES = {
    "unknown_top_level": ("tiny.yaml: trian: unknown key (did you mean 'train'?", TINY + "trian:\n  epochs: 3\n"),
    "unknown_nested": (
        "tiny.yaml: colorizer.los: unknown key (did you mean 'loss'? expected one of: image_size, loss, rebalancing, lpips_network)",
        TINY.replace("  loss: l1", "  los: l1"),
    ),
    "wrong_type": ("tiny.yaml: train.batch_size: expected integer, got string 'two'", TINY.replace("batch_size: 2", "batch_size: two")),
    "wrong_enum": (
        "tiny.yaml: colorizer.loss: expected one of: l1, l2, huber, ab_classification, colorfulness, lpips; got 'l3'",
        TINY.replace("loss: l1", "loss: l3"),
    ),
    "unknown_loss_term": (
        "tiny.yaml: colorizer.loss: expected one of: l1, l2, huber, ab_classification, colorfulness, lpips; "
        "got 'sharpness'",
        TINY.replace("loss: l1", "loss: {l1: 1.0, sharpness: 2.0}"),
    ),
    "negative_loss_weight": (
        "tiny.yaml: colorizer.loss.l1: must be >= 0, got -1.0",
        TINY.replace("loss: l1", "loss: {l1: -1.0}"),
    ),
    "out_of_range": ("tiny.yaml: train.epochs: must be >= 1, got 0", TINY.replace("epochs: 2", "epochs: 0")),
    "section_not_mapping": ("tiny.yaml: train: expected mapping, got integer 3", TINY.replace("train:\n  epochs: 2\n  batch_size: 2\n", "train: 3\n")),
    "unknown_model": (
        "tiny.yaml: model.name: unknown model 'UNetv1' (did you mean 'UNetV1'?",
        TINY.replace("name: UNetV1", "name: UNetv1"),
    ),
    "model_kwarg_typo": (
        "tiny.yaml: model.encoder_filtrs: unknown key (did you mean 'encoder_filters'?",
        TINY.replace("  encoder_filters:", "  encoder_filtrs:"),
    ),
    "model_kwarg_type": (
        "tiny.yaml: model.dropout_rate: expected number (like 0.5), got string 'high'",
        TINY.replace("  decoder_filters: [16, 8]", "  decoder_filters: [16, 8]\n  dropout_rate: high"),
    ),
    "optimizer_kwarg_typo": (
        "tiny.yaml: optimizer.beta1: unknown key (did you mean 'beta_1'?",
        TINY.replace("  learning_rate: 2.0e-3", "  learning_rate: 2.0e-3\n  beta1: 0.5"),
    ),
    "unknown_optimizer": ("tiny.yaml: optimizer.name: unknown Keras optimizer 'adamx'", TINY.replace("name: adam", "name: adamx")),
    "missing_model": ("tiny.yaml: model: required key is missing", TINY.split("model:")[0] + "data:\n  train: samples\n"),
    "invalid_yaml": ("tiny.yaml: invalid YAML at line 3, column 1: found character '\\t'", "name: x\nmodel:\n\tname: UNetV1\n"),
    "not_a_mapping": ("tiny.yaml: a recipe must be a YAML mapping, got list", "- a\n- b\n"),
    "validation_twice": (
        "tiny.yaml: data.validation_fraction: set either data.validation",
        TINY.replace("  train: samples", "  train: samples\n  validation: samples\n  validation_fraction: 0.5"),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe_is_one_line_naming_file_and_key(tmp_path, monkeypatch, case):
    expected, text = BAD_RECIPES[case]
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "tiny.yaml", text)
    message = error_of("tiny.yaml")
    assert message.startswith(expected), message


def test_missing_data_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "tiny.yaml", TINY.replace("train: samples", "train: no/such/folder"))
    load_recipe("tiny.yaml")  # the schema is fine; the folder is checked on demand
    message = error_of("tiny.yaml", check_paths=True)
    assert message == "tiny.yaml: data.train: folder not found: no/such/folder (pass --set data.train=FOLDER)"
    (tmp_path / "no" / "such").mkdir(parents=True)
    (tmp_path / "no" / "such" / "folder").write_text("a file")
    assert error_of("tiny.yaml", check_paths=True) == "tiny.yaml: data.train: not a folder: no/such/folder"


def test_missing_recipe_file_names_builtins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = error_of("nope.yaml")
    assert message.startswith("nope.yaml: recipe not found") and "quickstart" in message


# ----------------------------------------------------------------------------- base


def test_base_merges_and_child_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "parent.yaml", TINY + "description: the parent\n")
    write(
        tmp_path,
        "child.yaml",
        """\
        base: parent.yaml
        model:
          encoder_filters: [4, 8, 8]
        train:
          epochs: 5
        """,
    )
    recipe = load_recipe("child.yaml")
    assert recipe["name"] == "child"  # the child's own name, not the base's
    assert "description" not in recipe
    assert recipe["model"] == {"name": "UNetV1", "encoder_filters": [4, 8, 8], "decoder_filters": [16, 8]}
    assert recipe["train"]["epochs"] == 5 and recipe["train"]["batch_size"] == 2
    assert recipe["optimizer"]["learning_rate"] == 2e-3
    assert recipe.base == "parent.yaml"
    # Errors name the file that set the key.
    write(tmp_path, "child2.yaml", "base: parent.yaml\ntrain:\n  epohcs: 5\n")
    assert error_of("child2.yaml").startswith("child2.yaml: train.epohcs: unknown key")
    write(tmp_path, "parent3.yaml", TINY.replace("loss: l1", "loss: l7"))
    write(tmp_path, "child3.yaml", "base: parent3.yaml\n")
    assert error_of("child3.yaml").startswith("parent3.yaml: colorizer.loss: expected one of")


def test_base_of_builtin_and_no_chains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "mine.yaml", "base: quickstart\ntrain:\n  epochs: 1\n")
    recipe = load_recipe("mine.yaml")
    assert recipe["model"] == {"name": "BackboneUNet", "preset": "backbone_unet_vgg16"}
    assert recipe["colorizer"]["image_size"] == 256
    assert recipe["train"]["epochs"] == 1
    write(tmp_path, "chain.yaml", "base: mine.yaml\n")
    message = error_of("chain.yaml")
    assert message.startswith("mine.yaml: base: a base recipe cannot have its own base")
    assert "chain.yaml" in message
    write(tmp_path, "lost.yaml", "base: missing_base\n")
    assert error_of("lost.yaml").startswith("lost.yaml: base: recipe not found")


# ----------------------------------------------------------------------------- built-ins


def test_builtin_recipes_resolve_and_validate():
    found = list_builtin_recipes()
    assert set(found) == {
        "quickstart", "unet_v1", "unet_v2", "pix2pix", "gan_l1", "gan_l1_class", "wgan_gp_l2_class",
        "instance_fusion", "instruct_pix2pix_colorize", "instruct_pix2pix_tiny", "backbone_unet_vgg16",
    }
    assert all(description for description in found.values())
    for name in found:
        recipe = load_recipe(name)
        assert recipe.source == f"{name} (built-in)"
        assert recipe["name"] == name
        assert load_recipe(f"{name}.yaml")["name"] == name
        text = (builtin_recipe_dir() / f"{name}.yaml").read_text()
        assert text.startswith("#"), f"{name}.yaml must begin with a comment block"


def test_builtin_recipe_settings():
    quickstart = load_recipe("quickstart")
    assert quickstart["data"]["train"] == "samples"
    assert quickstart["model"]["preset"] == "backbone_unet_vgg16"  # fine-tunes the built-in model
    assert quickstart["data"]["validation_fraction"] == 0.125  # one of the eight photos
    builtin = load_recipe("backbone_unet_vgg16")
    assert builtin["model"]["encoder"] == "vgg16" and builtin["model"]["encoder_lora_rank"] == 32
    assert builtin["colorizer"]["loss"] == {"ab_classification": 1.0}
    assert builtin["data"]["holdout_fraction"] == 0.1 and builtin["evaluate"]["data"] == "holdout"
    v1 = load_recipe("unet_v1")
    assert v1["model"]["name"] == "UNetV1" and v1["colorizer"]["image_size"] == 256 and v1["colorizer"]["loss"] == "l2"
    assert v1["optimizer"] == {"name": "adam", "learning_rate": 1e-5}
    assert v1["train"]["batch_size"] == 16
    v2 = load_recipe("unet_v2")
    assert v2["model"]["name"] == "UNetV2" and v2["colorizer"]["image_size"] == 128
    assert v2["colorizer"]["loss"] == "huber"
    assert v2["optimizer"] == {"name": "adam", "learning_rate": 1e-5}
    # The placeholder data folder is reported when the run starts, naming the fix.
    with pytest.raises(RecipeError, match=r"^unet_v1 \(built-in\): data.train: folder not found: data/train"):
        load_recipe("unet_v1", check_paths=True)


def test_description_from_comment_block(tmp_path):
    path = write(tmp_path, "r.yaml", "# My recipe: trains things.\n#\n# More text.\nmodel: {name: UNetV1}\n")
    assert recipe_description(path) == "My recipe: trains things."
    path = write(tmp_path, "s.yaml", "# comment\ndescription: from the key\n")
    assert recipe_description(path) == "from the key"


# ----------------------------------------------------------------------------- resolved recipe


def test_resolved_recipe_round_trips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "tiny.yaml", TINY)
    recipe = load_recipe("tiny.yaml", overrides=["train.seed=3"])
    text = recipe.to_yaml()
    assert "# --set train.seed=3" in text
    assert "encoder_filters: [8, 16, 16]" in text
    parsed = yaml.safe_load(text)
    assert list(parsed) == ["name", "model", "colorizer", "optimizer", "schedule", "data", "train", "evaluate"]
    # Defaults are filled in explicitly.
    assert parsed["data"]["repeat"] == 1 and parsed["evaluate"]["batch_size"] == 16
    (tmp_path / "resolved.yaml").write_text(text)
    assert dict(load_recipe("resolved.yaml")) == dict(recipe)
    assert dict(load_recipe(recipe)) == dict(recipe)
    assert dict(load_recipe(dict(recipe))) == dict(recipe)


# ----------------------------------------------------------------------------- builders


def test_build_colorizer_from_recipe(tmp_path):
    path = write(tmp_path, "tiny.yaml", TINY)
    recipe = load_recipe(str(path))
    generator = build_generator(recipe)
    assert type(generator).__name__ == "UNetV1"
    assert generator.encoder_filters == (8, 16, 16)
    colorizer = build_colorizer(recipe)
    assert colorizer.image_size == (32, 32)
    optimizer = colorizer.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert math.isclose(float(keras.ops.convert_to_numpy(optimizer.learning_rate)), 2e-3, rel_tol=1e-6)
    sgd = build_optimizer(load_recipe(str(path), overrides=["optimizer={name: sgd, learning_rate: 0.1, momentum: 0.9}"]))
    assert isinstance(sgd, keras.optimizers.SGD) and math.isclose(sgd.momentum, 0.9)


def test_default_learning_rate_is_only_implied_for_adam(tmp_path):
    path = write(tmp_path, "tiny.yaml", TINY.replace("optimizer:\n  name: adam\n  learning_rate: 2.0e-3\n", ""))
    assert load_recipe(str(path))["optimizer"] == {"name": "adam", "learning_rate": 1e-3}
    sgd = load_recipe(str(path), overrides=["optimizer.name=sgd"])
    assert sgd["optimizer"] == {"name": "sgd"}
    assert math.isclose(float(keras.ops.convert_to_numpy(build_optimizer(sgd).learning_rate)), 0.01, rel_tol=1e-6)


def test_build_errors_name_the_key(tmp_path):
    path = write(tmp_path, "tiny.yaml", TINY)
    with pytest.raises(RecipeError, match=r"tiny.yaml: colorizer.image_size \(--set\): .*divisible by 4"):
        build_colorizer(load_recipe(str(path), overrides=["colorizer.image_size=34"]))
    with pytest.raises(RecipeError, match=r"tiny.yaml: model: cannot build UNetV1: .*decoder"):
        build_generator(load_recipe(str(path), overrides=["model.decoder_filters=[8]"]))
