"""Mixed precision (`train.mixed_precision`) on the current backend, tiny models, 2 steps.

For both mixed policies (float32 is what every other test trains in) the regression
Colorizer and the GAN trainer train with finite losses and their layers compute in
the policy's dtype while the ab outputs stay float32. With mixed_float16, the Colorizer's optimizer is Keras's
LossScaleOptimizer and the adversarial trainers keep a dynamic loss scale per
network: every step either applies the update or halves the scale (no doubling
before 2000 finite steps), which the tests check exactly.
"""

import math

import keras
import numpy as np
import pytest
import yaml

from keras_colorize.colorizer import Colorizer

from keras_colorize.loading import load_checkpoint
from keras_colorize.models import PatchGANDiscriminator, UNetV1
from keras_colorize.training import GANTrainer, WGANGPTrainer, run_training
from keras_colorize.training.gan import LOSS_SCALE_INITIAL
from keras_colorize.training.precision import PrecisionError, check_policy, precision_policy

COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


@pytest.fixture(scope="module")
def photos_32(photos_64):
    """Eight real photos at 32x32: sRGB in [0, 1], float32, (8, 32, 32, 3)."""
    small = photos_64[:, ::2, ::2, :]
    return np.concatenate([small, small[:1, :, ::-1]]).astype("float32")


def tiny_unet():
    return UNetV1(encoder_filters=(8, 16), decoder_filters=(8,), name="generator")


def conv_dtypes(model):
    return {layer.compute_dtype for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}


def assert_computes_in(model, policy):
    """The hidden convolutions compute in the policy's dtype; the output convolution in float32."""
    assert conv_dtypes(model) == {COMPUTE_DTYPES[policy], "float32"}, model.name


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_colorizer_trains_in_each_policy(policy, photos_32):
    before = keras.config.dtype_policy().name
    with precision_policy(policy):
        keras.utils.set_random_seed(0)
        colorizer = Colorizer(tiny_unet(), image_size=32)
        colorizer.compile(optimizer=keras.optimizers.Adam(1e-3), loss="l1", metrics=[])
        history = colorizer.fit(photos_32, batch_size=4, epochs=1, verbose=0)
    assert keras.config.dtype_policy().name == before
    assert np.isfinite(history.history["loss"]).all()
    assert_computes_in(colorizer.generator, policy)
    ab = colorizer(photos_32[:2])
    assert keras.backend.standardize_dtype(ab.dtype) == "float32"
    assert np.isfinite(keras.ops.convert_to_numpy(ab)).all()
    scaled = isinstance(colorizer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    if scaled:
        # Each step applies the update or halves the scale (the scale starts at 2**15).
        halvings = math.log2(colorizer.optimizer.initial_scale / float(colorizer.optimizer.dynamic_scale))
        assert int(colorizer.optimizer.iterations) + halvings == 2


def check_loss_scales(trainer, steps):
    """Every step either updated a network or halved its loss scale."""
    optimizers = {"generator": trainer.generator_optimizer, "discriminator": trainer.discriminator_optimizer}
    for role, optimizer in optimizers.items():
        scale = float(trainer.loss_scale(role))
        halvings = math.log2(LOSS_SCALE_INITIAL / scale)
        assert halvings == int(halvings), (role, scale)
        assert int(optimizer.iterations) + int(halvings) == steps[role], role


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_gan_trainer_trains_in_each_policy(policy, photos_32):
    with precision_policy(policy):
        keras.utils.set_random_seed(0)
        trainer = GANTrainer(tiny_unet(), PatchGANDiscriminator(filters=(8, 16, 16), name="adversary"))
        trainer.compile()
        before = [keras.ops.convert_to_numpy(v).copy() for v in trainer.discriminator.trainable_variables]
        history = trainer.fit(photos_32, batch_size=4, epochs=1, verbose=0)
    for name in ("loss", "d_loss", "g_adv", "g_rec"):
        assert np.isfinite(history.history[name]).all(), name
    assert_computes_in(trainer.generator, policy)
    assert_computes_in(trainer.discriminator, policy)
    for variable in trainer.trainable_variables:
        assert variable.dtype == "float32"
        assert np.isfinite(keras.ops.convert_to_numpy(variable)).all(), variable.path
    if policy == "mixed_float16":
        check_loss_scales(trainer, {"generator": 2, "discriminator": 2})
    else:
        assert trainer.loss_scale() is None
        assert iterations(trainer) == (2, 2)
    after = [keras.ops.convert_to_numpy(v) for v in trainer.discriminator.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def iterations(trainer):
    return int(trainer.generator_optimizer.iterations), int(trainer.discriminator_optimizer.iterations)


def test_wgan_gp_trainer_in_float16(photos_32):
    with precision_policy("mixed_float16"):
        keras.utils.set_random_seed(0)
        critic = PatchGANDiscriminator(filters=(8, 16, 16), normalization=None, name="adversary")
        trainer = WGANGPTrainer(tiny_unet(), critic, n_critic=2, seed=0)
        trainer.compile()
        history = trainer.fit(photos_32, batch_size=4, epochs=1, verbose=0)
    for name in ("loss", "critic_loss", "gp", "g_rec"):
        assert np.isfinite(history.history[name]).all(), name
    check_loss_scales(trainer, {"generator": 1, "discriminator": 2})


def test_float16_trainer_checkpoint_keeps_its_loss_scales(photos_32, tmp_path):
    with precision_policy("mixed_float16"):
        keras.utils.set_random_seed(0)
        trainer = GANTrainer(tiny_unet(), PatchGANDiscriminator(filters=(8, 16, 16), name="adversary"))
        trainer.compile()
        trainer.fit(photos_32, batch_size=4, epochs=1, verbose=0)
        scales = [float(trainer.loss_scale(role)) for role in ("generator", "discriminator")]
        trainer.save(tmp_path / "trainer.keras")
    with precision_policy("mixed_float16"):  # networks are rebuilt under the global policy
        loaded = load_checkpoint(tmp_path / "trainer.keras")
    assert_computes_in(loaded.generator, "mixed_float16")
    assert [float(loaded.loss_scale(role)) for role in ("generator", "discriminator")] == scales


def test_run_training_applies_and_restores_the_policy(tmp_path):
    recipe = {
        "name": "tiny_bfloat16",
        "model": {"name": "UNetV1", "encoder_filters": [8, 16], "decoder_filters": [8]},
        "colorizer": {"image_size": 32, "loss": "l1"},
        "data": {"train": "samples", "workers": 1},
        "train": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "num_samples": 2},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = keras.config.dtype_policy().name
    overrides = ["train.mixed_precision=mixed_bfloat16"]
    run_dir = run_training(path, run_dir=tmp_path / "run", overrides=overrides, verbose=0)
    assert keras.config.dtype_policy().name == before
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["train"]["mixed_precision"] == "mixed_bfloat16"
    with precision_policy("mixed_bfloat16"):
        colorizer = load_checkpoint(run_dir / "checkpoints" / "last.keras")
    assert_computes_in(colorizer.generator, "mixed_bfloat16")
    lines = (run_dir / "history.csv").read_text().splitlines()
    assert np.isfinite(float(lines[1].split(",")[lines[0].split(",").index("loss")]))


def test_policy_errors_are_one_line():
    from keras_colorize.recipes import RecipeError, load_recipe

    assert check_policy(None) == "float32"
    with pytest.raises(PrecisionError, match="train.mixed_precision must be one of") as info:
        check_policy("float8")
    assert "\n" not in str(info.value)
    with pytest.raises(RecipeError, match="train.mixed_precision"):
        load_recipe({"model": {"name": "UNetV1"}, "data": {"train": "samples"}, "train": {"mixed_precision": "half"}})


def test_policy_is_restored_after_an_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError):
        with precision_policy("mixed_float16"):
            assert keras.config.dtype_policy().name == "mixed_float16"
            raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == before
