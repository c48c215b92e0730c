"""Instance-aware training from a recipe: the `instances` and `stages` sections, the
three stages through `keras-colorize fit` (all, one with `--stage`, `--resume`), and
`keras-colorize colorize --boxes`, on the current Keras backend.

Tiny configuration: UNetV1 networks (encoder 8-16-16-16) at 32x32 with 32x32 instance
crops, on the seven sample photos with the boxes drawn by hand in
`tests/data/sample_photo_boxes.json`.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from keras_colorize.loading import load_checkpoint
from keras_colorize.recipes import RecipeError, build_instance_colorizer, load_recipe
from keras_colorize.training import run_training
from keras_colorize.training.run import RunDirectoryError
from keras_colorize.recipes.kinds.instance import stage_recipe
from tests.test_case import assert_one_line_error, invoke_cli

BOXES = Path(__file__).parent / "data" / "sample_photo_boxes.json"
STAGE_NAMES = ("full", "instance", "fusion")


@pytest.fixture(scope="module")
def photos(tmp_path_factory, photo_paths):
    folder = tmp_path_factory.mktemp("photos")
    for path in photo_paths:
        shutil.copy(path, folder / path.name)
    return folder


def tiny_recipe(photos, **sections):
    recipe = {
        "name": "tiny_instances",
        "model": {"name": "UNetV1", "encoder_filters": [8, 16, 16, 16], "decoder_filters": [16, 16, 8]},
        "colorizer": {"image_size": 32, "loss": "huber"},
        "instances": {"boxes": str(BOXES), "instance_size": 32, "max_instances": 3},
        "stages": {"fusion": {"learning_rate": 1.0e-2}},
        "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
        "data": {"train": str(photos), "resize_to": 40},
        "train": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "num_samples": 2},
    }
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values} if isinstance(values, dict) else values
    return recipe


def write_recipe(folder, recipe):
    path = Path(folder) / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def weights_of(network):
    return [np.array(w) for w in network.get_weights()]


def test_recipe_sections_are_checked(photos):
    without_instances = {k: v for k, v in tiny_recipe(photos).items() if k != "instances"}
    with pytest.raises(RecipeError, match=r"stages: needs an instances section"):
        load_recipe(without_instances)
    trainer = tiny_recipe(photos, trainer={"name": "GANTrainer"}, discriminator={"name": "PatchGANDiscriminator"})
    with pytest.raises(RecipeError, match=r"trainer: instance-aware training .* not a trainer"):
        load_recipe(trainer)
    chroma = {**tiny_recipe(photos), "model": {"name": "ChromaGANGenerator"}}
    with pytest.raises(RecipeError, match=r"model.name: instance-aware training needs a U-Net \(UNetV1, UNetV2\)"):
        load_recipe(chroma)
    with pytest.raises(RecipeError, match=r"stages.fusion.epoch: unknown key \(did you mean 'epochs'"):
        load_recipe(tiny_recipe(photos, stages={"fusion": {"epoch": 3}}))
    with pytest.raises(RecipeError, match=r"instances.boxes: required key is missing"):
        load_recipe({**tiny_recipe(photos), "instances": {"max_instances": 2}})


def test_stage_recipes_take_their_stage_settings(photos):
    recipe = load_recipe(tiny_recipe(photos, stages={"instance": {"epochs": 3, "batch_size": 2}}))
    full, instance, fusion = (stage_recipe(recipe, name) for name in STAGE_NAMES)
    assert "instances" not in full and "stages" not in full
    assert full["name"] == "tiny_instances-full" and full["train"]["epochs"] == 1
    assert instance["train"]["epochs"] == 3 and instance["train"]["batch_size"] == 2
    assert instance["optimizer"]["learning_rate"] == 1e-3
    assert fusion["optimizer"]["learning_rate"] == 1e-2 and fusion["instances"]["max_instances"] == 3


def test_one_line_errors_before_anything_is_written(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_recipe(tmp_path, tiny_recipe(photos))
    result = invoke_cli("fit", path, "--stage", "instance", "--run-dir", tmp_path / "run")
    assert_one_line_error(result, "full", "best.keras", "--stage full")
    assert not (tmp_path / "run" / "instance").exists()
    result = invoke_cli("fit", path, "--set", "instances.boxes=missing.json", "--run-dir", tmp_path / "run")
    assert_one_line_error(result, "instances.boxes", "not found: missing.json")
    result = invoke_cli("fit", "quickstart", "--stage", "fusion", "--run-dir", tmp_path / "run")
    assert_one_line_error(result, "instances section")
    assert not (tmp_path / "run").exists()


def test_instance_colorizer_starts_from_the_full_image_weights(photos, tmp_path):
    recipe = load_recipe(tiny_recipe(photos))
    run_training(stage_recipe(recipe, "full"), run_dir=tmp_path / "full", verbose=0)
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "best.keras")
    instance = build_instance_colorizer(recipe, tmp_path / "full" / "checkpoints" / "best.keras")
    assert instance.generator is not full.generator
    assert instance.image_size == (32, 32)
    for mine, theirs in zip(weights_of(instance.generator), weights_of(full.generator)):
        np.testing.assert_array_equal(mine, theirs)


def test_three_stages_through_the_command_line(photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_recipe(tmp_path, tiny_recipe(photos))
    run_dir = tmp_path / "run"
    result = invoke_cli("fit", path, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    for name in STAGE_NAMES:
        assert f"stage {name}" in result.output
        for item in ("recipe.yaml", "state.json", "history.csv", "checkpoints/last.keras", "checkpoints/best.keras"):
            assert (run_dir / name / item).exists(), f"{name}/{item}"
        assert list((run_dir / name / "samples").glob("epoch_*.png"))
    assert "instances kept" in result.output  # the instance data summaries

    full = load_checkpoint(run_dir / "full" / "checkpoints" / "best.keras")
    instance = load_checkpoint(run_dir / "instance" / "checkpoints" / "best.keras")
    fused = load_checkpoint(run_dir / "fusion" / "checkpoints" / "best.keras")
    assert type(fused).__name__ == "FusionColorizer"
    # The fusion stage holds the two earlier stages' networks, unchanged by its training.
    model = fused.generator
    for network, source in ((model.full_generator, full.generator), (model.instance_generator, instance.generator)):
        for mine, theirs in zip(weights_of(network), weights_of(source)):
            np.testing.assert_array_equal(mine, theirs)
    trained = {tuple(w.shape) for w in fused.trainable_weights}
    assert trained and all(len(shape) in (1, 4) for shape in trained)

    # Finished stages are skipped on --resume; a finished stage is not overwritten.
    before = (run_dir / "fusion" / "checkpoints" / "best.keras").read_bytes()
    result = invoke_cli("fit", path, "--run-dir", run_dir, "--resume")
    assert result.exit_code == 0, result.output
    assert result.output.count("already trained") == 3
    result = invoke_cli("fit", path, "--run-dir", run_dir, "--stage", "fusion")
    assert_one_line_error(result, "fusion", "holds a run", "--resume")
    assert (run_dir / "fusion" / "checkpoints" / "best.keras").read_bytes() == before

    # One more fusion epoch with --stage fusion --resume.
    result = invoke_cli(
        "fit", path, "--run-dir", run_dir, "--stage", "fusion", "--resume", "--set", "stages.fusion.epochs=2"
    )
    assert result.exit_code == 0, result.output
    assert "resuming at epoch 2" in result.output
    assert yaml.safe_load((run_dir / "fusion" / "state.json").read_text())["epoch"] == 2

    # Colorize with and without boxes; the boxes need an instance-aware checkpoint.
    checkpoint = run_dir / "fusion" / "checkpoints" / "best.keras"
    result = invoke_cli("colorize", checkpoint, photos, "--boxes", BOXES, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "colorized 7 images" in result.output and "with instance boxes" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in photos.iterdir())
    result = invoke_cli("colorize", checkpoint, photos, "-o", tmp_path / "plain")
    assert result.exit_code == 0, result.output
    result = invoke_cli(
        "colorize", run_dir / "full" / "checkpoints" / "best.keras", photos, "--boxes", BOXES, "-o", tmp_path / "x"
    )
    assert_one_line_error(result, "--boxes needs an instance-aware checkpoint")


def test_resume_without_a_run_is_refused(photos, tmp_path):
    recipe = load_recipe(tiny_recipe(photos))
    with pytest.raises(RunDirectoryError, match=r"best.keras: not found; the fusion stage starts from the full stage"):
        run_training(recipe, run_dir=tmp_path / "run", stage="fusion", verbose=0)
