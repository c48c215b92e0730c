"""Recipes of InstructPix2Pix fine-tuning: schema, built-ins, builders, and `keras-colorize fit`."""

import csv
import json
import textwrap

import keras
import numpy as np
import pytest

from keras_colorize.models.instruct_pix2pix.constants import CONDITIONING_DROPOUT, LEARNING_RATE
from keras_colorize.recipes import RecipeError, load_recipe
from keras_colorize.recipes.kinds.instruct_pix2pix import build_finetuner, finetuner_arguments, validation_settings
from tests.test_case import assert_one_line_error
from tests.test_case import invoke_cli as invoke

TINY = """\
name: ip2p
model:
  name: InstructPix2Pix
  random: tiny
colorizer:
  image_size: 32
data:
  train: samples
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(recipe, overrides=(), **kwargs):
    with pytest.raises(RecipeError) as info:
        load_recipe(str(recipe), overrides=overrides, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- loading


def test_defaults_of_a_fine_tuning_recipe(tmp_path):
    recipe = load_recipe(str(write(tmp_path, "ip2p.yaml", TINY)))
    assert recipe["optimizer"] == {"name": "adamw"}
    finetune = recipe["finetune"]
    assert finetune["loss"] == "noise" and finetune["lora_rank"] is None and finetune["ema"] is False
    assert finetune["validation"]["every_n_steps"] is None
    arguments = finetuner_arguments(recipe)
    assert arguments["conditioning_dropout"] == CONDITIONING_DROPOUT
    assert validation_settings(recipe)["steps"] == 20 and validation_settings(recipe)["guidance"] == 7.0
    # AdamW with the InstructPix2Pix script's settings fills what the recipe leaves out.
    from keras_colorize.recipes import build_optimizer

    optimizer = build_optimizer(recipe)
    assert isinstance(optimizer, keras.optimizers.AdamW)
    config = optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(LEARNING_RATE)
    assert (config["weight_decay"], config["epsilon"], config["global_clipnorm"]) == (1e-2, 1e-8, 1.0)
    ema = build_optimizer(load_recipe(recipe, overrides=["finetune.ema=true", "finetune.ema_momentum=0.999"]))
    assert ema.use_ema and ema.ema_momentum == pytest.approx(0.999)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["finetune.loss=l1"], "ip2p.yaml: finetune.loss (--set): expected one of: noise, joint; got 'l1'"),
        (["finetune.conditioning_dropout=0.5"], "finetune.conditioning_dropout (--set): must be <="),
        (["finetune.lora_rank=0"], "finetune.lora_rank (--set): must be >= 1"),
        (["finetune.validation.every_n_step=10"], "finetune.validation.every_n_step (--set): unknown key (did you mean 'every_n_steps'?"),
        (["finetune.validation.sampler=euler"], "finetune.validation.sampler (--set): expected one of: euler_ancestral, ddim"),
        (["model.presett=x"], "model.presett (--set): unknown key (did you mean 'preset'?"),
        (["model.random=huge"], "model.random (--set): expected one of: tiny, full"),
        (["model.preset=p"], "ip2p.yaml: model: InstructPix2Pix needs either preset (a preset folder) or random"),
        (["trainer={name: GANTrainer}"], "trainer (--set): not used by InstructPix2Pix fine-tuning"),
        (["data.labels=true"], "data.labels (--set): InstructPix2Pix fine-tuning uses no class labels"),
    ],
)  # fmt: skip
def test_schema_errors_name_the_key(tmp_path, overrides, fragment):
    assert fragment in error_of(write(tmp_path, "ip2p.yaml", TINY), overrides)


def test_finetune_needs_instruct_pix2pix(tmp_path):
    text = TINY.replace("name: InstructPix2Pix\n  random: tiny", "name: UNetV1") + "finetune: {loss: noise}\n"
    assert "finetune: needs model.name: InstructPix2Pix" in error_of(write(tmp_path, "unet.yaml", text))


def test_builtin_recipes():
    colorize = load_recipe("instruct_pix2pix_colorize")
    assert colorize["model"] == {"name": "InstructPix2Pix", "preset": "presets/instruct-pix2pix"}
    assert colorize["colorizer"]["image_size"] == 256 and colorize["train"]["batch_size"] == 4
    assert colorize["optimizer"]["name"] == "adamw" and colorize["optimizer"]["learning_rate"] == LEARNING_RATE
    assert colorize["finetune"]["conditioning_dropout"] == CONDITIONING_DROPOUT
    assert validation_settings(colorize) == {
        "every_n_steps": 500, "images": 4, "steps": 20, "guidance": 7.0, "image_guidance": 1.5,
        "sampler": "euler_ancestral", "seed": 0,
    }  # fmt: skip
    tiny = load_recipe("instruct_pix2pix_tiny")
    assert tiny["model"]["random"] == "tiny" and tiny["colorizer"]["image_size"] == 64
    assert tiny["data"]["train"] == "samples"


def test_build_finetuner_from_recipe(tmp_path):
    recipe = load_recipe(
        str(write(tmp_path, "ip2p.yaml", TINY)),
        overrides=["finetune.lora_rank=2", "finetune.validation.steps=3", "train.seed=4"],
    )
    tuner = build_finetuner(recipe)
    assert tuner.lora_rank == 2 and tuner.seed == 4 and tuner.sampling["steps"] == 3
    assert tuner.compiled and isinstance(tuner.optimizer, keras.optimizers.AdamW)
    assert all("lora_kernel" in v.path for v in tuner.trainable_variables)
    message = str(pytest.raises(RecipeError, build_finetuner, load_recipe(recipe, overrides=["colorizer.image_size=30"])).value)
    assert "colorizer.image_size (--set): 30 must be a multiple of 4 for these networks" in message
    missing = load_recipe(recipe, overrides=[f"finetune.prompts={tmp_path / 'none.txt'}"])
    message = str(pytest.raises(RecipeError, build_finetuner, missing).value)
    assert "ip2p.yaml: finetune.prompts (--set): " in message and "none.txt: prompt file not found" in message


# ----------------------------------------------------------------------------- keras-colorize fit


def test_fit_refuses_a_missing_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("fit", "instruct_pix2pix_colorize", "--set", "data.train=samples")
    assert_one_line_error(
        result, "instruct_pix2pix_colorize (built-in): model.preset: preset folder not found: presets/instruct-pix2pix",
        "--set model.preset=FOLDER",
    )  # fmt: skip
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # two compiled runs of the tiny networks: about 1 to 2 minutes per backend on a 2-core CPU
def test_tiny_recipe_fits_resumes_and_writes_the_preset(tmp_path, monkeypatch):
    from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset, random_components

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    common = [
        "--set", "colorizer.image_size=32", "--set", "train.batch_size=2", "--set", "train.steps_per_epoch=1",
        "--set", "finetune.validation.every_n_steps=1", "--set", "finetune.validation.steps=2",
        "--run-dir", run_dir,
    ]  # fmt: skip
    first = invoke("fit", "instruct_pix2pix_tiny", "--set", "train.epochs=1", *common)
    assert first.exit_code == 0, first.output
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1
    second = invoke("fit", "instruct_pix2pix_tiny", "--set", "train.epochs=2", "--resume", *common)
    assert second.exit_code == 0, second.output
    assert "resuming at epoch 2" in second.output

    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 2
    with open(run_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert all(np.isfinite(float(row[key])) for row in rows for key in ("loss", "val_loss", "noise_loss", "sampled_psnr"))
    history = json.loads((run_dir / "validation" / "metrics.json").read_text())["history"]
    assert [r["step"] for r in history] == [0, 1, 2]
    assert (run_dir / "validation" / "step_0000002.png").is_file()
    assert (run_dir / "samples" / "epoch_002.png").is_file()

    from keras_colorize.loading import load_checkpoint

    last = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert int(keras.ops.convert_to_numpy(last.optimizer.iterations)) == 2

    # The preset: the U-Net trained, the VAE and the text encoder as they started.
    tuned = load_preset(run_dir / "preset")
    start = random_components(seed=0, tiny=True)
    for name in ("vae_encoder", "vae_decoder", "text_encoder"):
        for a, b in zip(getattr(tuned, name).get_weights(), getattr(start, name).get_weights()):
            np.testing.assert_array_equal(a, b)
    moved = [not np.array_equal(a, b) for a, b in zip(tuned.unet.get_weights(), start.unet.get_weights())]
    assert all(moved)
