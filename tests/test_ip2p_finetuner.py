"""The InstructPix2Pix fine-tuner, its prompts and its sampled validation, on micro networks.

The networks are smaller than the TINY_* configurations (one level each) so that a
compiled training step stays cheap on every backend; the structure is the same.
Under TensorFlow the unit tests run the step eagerly (`run_eagerly=True`): tracing the
optimizer update of some hundred variables costs tens of seconds on a CPU, and the
compiled path is covered by tests/test_ip2p_recipes.py, which trains through `fit`'s
compiled step.
"""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from skimage import color as skcolor
from skimage.metrics import peak_signal_noise_ratio

from keras_colorize.data.prompts import PromptFileError, load_prompts, parse_prompts
from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents
from keras_colorize.models.instruct_pix2pix.constants import LATENT_SCALE, VALIDATION_PROMPT
from keras_colorize.models.instruct_pix2pix.finetuner import (
    FineTunerError,
    InstructPix2PixFineTuner,
    lora_layers,
)
from keras_colorize.models.instruct_pix2pix.text import CLIPTextEncoder, CLIPTokenizer
from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet
from keras_colorize.models.instruct_pix2pix.validation import SampledValidation
from keras_colorize.models.instruct_pix2pix.vae import VAEDecoder, VAEEncoder
from tests.test_case import REPO_ROOT

SIZE = 16
MICRO_UNET = dict(widths=(16,), layers_per_block=1, attention_levels=(True,), heads=2, context_dim=16, groups=8)
MICRO_VAE = dict(channels=(16,), layers_per_block=1, groups=8)
MICRO_TEXT = dict(width=16, depth=1, heads=2, intermediate_size=32)
SEQUENCE = 8
PROMPTS = ["colorize the image", "add colour to this photo", "make it colourful"]


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def compile_options():
    """Eager steps under TensorFlow (see the module docstring); compiled elsewhere."""
    return {"run_eagerly": keras.backend.backend() == "tensorflow"}


def micro_components(dtype=None):
    keras.utils.set_random_seed(0)
    extra = {} if dtype is None else {"dtype": dtype}
    return DiffusionComponents(
        unet=InstructPix2PixUNet(**MICRO_UNET, **extra),
        vae_encoder=VAEEncoder(**MICRO_VAE, **extra),
        vae_decoder=VAEDecoder(**MICRO_VAE, **extra),
        text_encoder=CLIPTextEncoder(sequence_length=SEQUENCE, **MICRO_TEXT, **extra),
        tokenizer=CLIPTokenizer(sequence_length=SEQUENCE),
    )


@pytest.fixture(scope="module")
def shared_components():
    """Micro components built once; `components` restores their initial weights for each test."""
    components = micro_components()
    initial = {name: getattr(components, name).get_weights() for name in ("unet", "vae_encoder", "vae_decoder", "text_encoder")}
    return components, initial


@pytest.fixture
def components(shared_components):
    components, initial = shared_components
    for name, weights in initial.items():
        getattr(components, name).set_weights(weights)
    return components


@pytest.fixture(scope="module")
def photos(photos_64):
    """Four real photos at 16x16: sRGB in [0, 1], float32."""
    resized = keras.ops.image.resize(photos_64[:4], (SIZE, SIZE), antialias=True, data_format="channels_last")
    return np.clip(numpy(resized), 0.0, 1.0).astype("float32")


def snapshot(network):
    return {v.path: numpy(v.value).copy() for v in network.weights}


def changed(before, network):
    return {v.path for v in network.weights if not np.array_equal(before[v.path], numpy(v.value))}


def tokens_of(prompts):
    return CLIPTokenizer(sequence_length=SEQUENCE)(prompts)


# ----------------------------------------------------------------------------- prompts


def test_packaged_prompts():
    prompts = load_prompts()
    assert len(prompts) >= 30 and prompts[0] == VALIDATION_PROMPT
    assert all(p == p.strip() and p and not p.startswith("#") for p in prompts)
    assert len(set(prompts)) == len(prompts)


def test_prompt_files(tmp_path):
    assert parse_prompts("# comment\n\n  add   colour \nmake it colourful\n") == ["add colour", "make it colourful"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(PromptFileError, match=r"empty.txt: no prompts"):
        load_prompts(empty)
    with pytest.raises(PromptFileError, match=r"missing.txt: prompt file not found"):
        load_prompts(tmp_path / "missing.txt")
    with pytest.raises(PromptFileError, match="not a file"):
        load_prompts(tmp_path)


def test_bad_settings_are_one_line_errors(components):
    with pytest.raises(FineTunerError, match="conditioning_dropout must be in"):
        InstructPix2PixFineTuner(components, prompts=PROMPTS, conditioning_dropout=0.4)
    with pytest.raises(FineTunerError, match="loss must be one of noise, joint"):
        InstructPix2PixFineTuner(components, prompts=PROMPTS, loss="l1")
    with pytest.raises(FineTunerError, match="lora_rank"):
        InstructPix2PixFineTuner(components, prompts=PROMPTS, lora_rank=0)


# ----------------------------------------------------------------------------- the training pair


def test_training_targets_match_a_direct_computation(components, photos):
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, conditioning_dropout=0.0, seed=3)
    batch = {k: numpy(v) for k, v in tuner.prepare_batch(photos).items()}

    # The photo's posterior, and the conditioning: the VAE mean of the gray image (unscaled).
    moments = numpy(components.vae_encoder(photos * 2.0 - 1.0))
    np.testing.assert_allclose(batch["target_moments"], moments, atol=1e-5)
    lab = skcolor.rgb2lab(photos.astype("float64"))
    lab[..., 1:] = 0.0
    gray = skcolor.lab2rgb(lab).astype("float32")
    gray_mean = numpy(components.vae_encoder(gray * 2.0 - 1.0))[..., :4]
    np.testing.assert_allclose(batch["conditioning"], gray_mean, atol=1e-4)

    # Target latents: a posterior sample, scaled; its standardised draw is N(0, 1).
    mean, log_variance = moments[..., :4], np.clip(moments[..., 4:], -30, 20)
    draw = (batch["latents"] / LATENT_SCALE - mean) / np.exp(0.5 * log_variance)
    assert abs(draw.mean()) < 0.1 and abs(draw.std() - 1.0) < 0.1
    assert abs(batch["noise"].mean()) < 0.1 and abs(batch["noise"].std() - 1.0) < 0.1

    # DDPM forward process with SD v1's scaled-linear betas, at integer timesteps.
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas = np.cumprod(1.0 - betas)[batch["timesteps"]].reshape(-1, 1, 1, 1)
    assert batch["timesteps"].dtype == np.int32 and np.all((0 <= batch["timesteps"]) & (batch["timesteps"] < 1000))
    expected = np.sqrt(alphas) * batch["latents"] + np.sqrt(1.0 - alphas) * batch["noise"]
    np.testing.assert_allclose(batch["noisy_latents"], expected, atol=1e-5)

    # Each image's text states are its drawn prompt's.
    states = numpy(components.text_encoder(tokens_of([PROMPTS[i] for i in batch["prompt_index"]])))
    np.testing.assert_allclose(batch["text_states"], states, atol=1e-5)
    assert not batch["drop_prompt"].any() and not batch["drop_image"].any()

    # Validation: the validation prompt, no dropout, whatever the dropout setting.
    validation = {k: numpy(v) for k, v in tuner.prepare_batch(photos, training=False).items()}
    expected_states = numpy(components.text_encoder(tokens_of([VALIDATION_PROMPT] * len(photos))))
    np.testing.assert_allclose(validation["text_states"], expected_states, atol=1e-5)
    np.testing.assert_allclose(validation["conditioning"], gray_mean, atol=1e-4)


def test_conditioning_dropout_bands(components, photos):
    d = 0.05
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, conditioning_dropout=d, seed=1)
    draws = {k: numpy(v) for k, v in tuner.sample_conditioning(40000).items()}
    prompt, image = draws["drop_prompt"], draws["drop_image"]
    bands = {
        "prompt only": np.mean(prompt & ~image),
        "both": np.mean(prompt & image),
        "image only": np.mean(~prompt & image),
    }
    for name, share in bands.items():
        assert abs(share - d) < 0.006, (name, share)  # about 5 standard deviations
    assert np.mean(~prompt & ~image) == pytest.approx(1 - 3 * d, abs=0.01)
    counts = np.bincount(draws["prompt_index"], minlength=len(PROMPTS)) / len(prompt)
    np.testing.assert_allclose(counts, 1 / len(PROMPTS), atol=0.015)

    # With d = 1/3 every image loses something: the "" prompt's states, zeroed latents.
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, conditioning_dropout=1 / 3, seed=2)
    images = np.concatenate([photos, photos[::-1]])
    batch = {k: numpy(v) for k, v in tuner.prepare_batch(images).items()}
    assert np.all(batch["drop_prompt"] | batch["drop_image"])
    null = numpy(components.text_encoder(tokens_of([""])))[0]
    for i in range(len(images)):
        if batch["drop_prompt"][i]:
            np.testing.assert_allclose(batch["text_states"][i], null, atol=1e-5)
        else:
            prompt_states = numpy(components.text_encoder(tokens_of([PROMPTS[batch["prompt_index"][i]]])))[0]
            np.testing.assert_allclose(batch["text_states"][i], prompt_states, atol=1e-5)
        assert np.all(batch["conditioning"][i] == 0) == bool(batch["drop_image"][i])


# ----------------------------------------------------------------------------- training


def test_train_step_trains_the_unet_only_and_samples_validation(components, photos, tmp_path):
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, seed=0)
    tuner.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_options())  # no weight decay
    frozen = {name: snapshot(getattr(components, name)) for name in ("vae_encoder", "vae_decoder", "text_encoder")}
    unet_before = snapshot(components.unet)
    assert {id(v) for v in tuner.trainable_variables} == {id(v) for v in components.unet.weights}
    callback = SampledValidation(photos[:2], every_n_steps=1, output_dir=tmp_path / "validation", steps=2)

    history = tuner.fit(photos, batch_size=2, epochs=1, verbose=0, shuffle=False, callbacks=[callback])

    assert int(numpy(tuner.optimizer.iterations)) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["noise_loss"] == pytest.approx(history.history["loss"])
    assert changed(unet_before, components.unet) == set(unet_before)  # every U-Net weight moved
    for name, before in frozen.items():
        assert not changed(before, getattr(components, name)), name

    # Sampled validation: before training and after each step, grids and metrics.
    folder = tmp_path / "validation"
    assert sorted(p.name for p in folder.glob("*.png")) == [f"step_{i:07d}.png" for i in range(3)]
    record = json.loads((folder / "metrics.json").read_text())
    assert [r["step"] for r in record["history"]] == [0, 1, 2]
    assert {"sampled_lab_mse", "sampled_psnr", "sampled_ssim", "sampled_mae"} <= set(history.history)
    truth = photos[:2].astype("float64")
    lab = skcolor.rgb2lab(truth)
    lab[..., 1:] = 0.0
    gray = skcolor.lab2rgb(lab)
    baseline = record["gray_baseline"]
    assert baseline["lab_mse"] == pytest.approx(np.mean((skcolor.rgb2lab(truth) - skcolor.rgb2lab(gray)) ** 2), rel=1e-3)
    psnrs = [peak_signal_noise_ratio(t, g, data_range=1.0) for t, g in zip(truth, gray)]
    assert baseline["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-2)
    # A prediction is the generated a*b* on the photo's own L* (recombined as scikit-image would).
    prediction = tuner.predict_rgb(photos[:2], steps=2, seed=0)
    generated = tuner.pipeline().generate(gray.astype("float32"), steps=2, seed=0).astype("float64")
    recombined = np.concatenate([skcolor.rgb2lab(truth)[..., :1], skcolor.rgb2lab(generated)[..., 1:]], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-image reports the out-of-gamut colours it clips
        expected = skcolor.lab2rgb(recombined)
    np.testing.assert_allclose(prediction, expected, atol=2e-3)


def test_joint_loss_learns_both_log_variances(components, photos):
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, loss="joint", seed=0)
    tuner.compile(optimizer=keras.optimizers.Adam(1e-2), **compile_options())
    history = tuner.fit(photos, batch_size=2, epochs=1, verbose=0)
    for key in ("loss", "noise_loss", "lab_loss", "noise_weight", "lab_weight"):
        assert np.isfinite(history.history[key]).all(), key
    assert history.history["lab_loss"][0] > 0
    assert float(numpy(tuner.noise_log_variance)) != 0.0
    assert float(numpy(tuner.lab_log_variance)) != 0.0
    assert {id(tuner.noise_log_variance), id(tuner.lab_log_variance)} <= {id(v) for v in tuner.trainable_variables}


def test_joint_loss_matches_a_direct_computation(components, photos):
    """Kendall et al.'s weighting of the noise MSE and the L*a*b* MSE of the decoded one-step
    estimate, computed here from the same draws with NumPy and scikit-image."""
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, loss="joint", seed=4)
    tuner.noise_log_variance.assign(0.3)
    tuner.lab_log_variance.assign(-0.7)
    batch = tuner.prepare_batch(photos)
    unet_inputs = ops.concatenate([batch["noisy_latents"], batch["conditioning"]], axis=-1)
    noise_pred = numpy(
        components.unet([unet_inputs, ops.cast(batch["timesteps"], "float32"), batch["text_states"]])
    )
    batch = {k: numpy(v) for k, v in batch.items()}

    # The one-step clean estimate x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), with
    # Stable Diffusion's scaled-linear betas, decoded by the VAE; L*a*b* by scikit-image.
    betas = np.linspace(np.sqrt(0.00085), np.sqrt(0.012), 1000, dtype="float64") ** 2
    alpha_bar = np.cumprod(1.0 - betas)[batch["timesteps"]][:, None, None, None]
    clean = (batch["noisy_latents"] - np.sqrt(1.0 - alpha_bar) * noise_pred) / np.sqrt(alpha_bar)
    decoded = numpy(components.vae_decoder((clean / LATENT_SCALE).astype("float32")))
    rgb = np.clip((decoded.astype("float64") + 1.0) * 0.5, 0.0, 1.0)

    def model_lab(images):
        lab = skcolor.rgb2lab(images)
        return np.concatenate([lab[..., :1] / 50.0 - 1.0, lab[..., 1:] / 128.0], axis=-1)

    lab_pred = numpy(tuner._decoded_lab({k: ops.convert_to_tensor(v) for k, v in batch.items()}, noise_pred))
    np.testing.assert_allclose(lab_pred, model_lab(rgb), atol=2e-3)
    noise_loss = np.mean((noise_pred.astype("float64") - batch["noise"]) ** 2)
    lab_loss = np.mean((model_lab(rgb) - model_lab(photos.astype("float64"))) ** 2)
    total = 0.5 * np.exp(-0.3) * noise_loss + 0.5 * 0.3 + 0.5 * np.exp(0.7) * lab_loss + 0.5 * -0.7

    outputs = {
        "noise": batch["noise"],
        "noise_pred": noise_pred,
        "lab_pred": lab_pred,
        "lab_true": model_lab(photos).astype("float32"),
        "noise_log_variance": ops.convert_to_tensor(0.3),
        "lab_log_variance": ops.convert_to_tensor(-0.7),
    }
    terms = {k: float(numpy(v)) for k, v in tuner.loss_terms(outputs).items()}
    assert terms["noise_loss"] == pytest.approx(noise_loss, rel=1e-5)
    assert terms["lab_loss"] == pytest.approx(lab_loss, rel=1e-3)
    assert terms["noise_weight"] == pytest.approx(0.5 * np.exp(-0.3), rel=1e-6)
    assert terms["lab_weight"] == pytest.approx(0.5 * np.exp(0.7), rel=1e-6)
    assert terms["total"] == pytest.approx(total, rel=1e-3)
    assert float(numpy(tuner.compute_loss(photos, y_pred=outputs))) == pytest.approx(total, rel=1e-3)


def test_lora_trains_only_the_adapters_with_ema(photos, tmp_path):
    components = micro_components()  # LoRA changes the U-Net for good: not the shared one
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, lora_rank=2, seed=0)
    adapters = lora_layers(components.unet)
    assert len(adapters) == len(components.unet.attention_projections()) == 4 * 2 * 4  # 4 transformers
    lora_paths = {v.path for layer in adapters for v in (layer.lora_kernel_a, layer.lora_kernel_b)}
    assert {v.path for v in tuner.trainable_variables} == lora_paths
    before = snapshot(components.unet)
    optimizer = keras.optimizers.AdamW(learning_rate=1e-2, use_ema=True, ema_momentum=0.5)
    tuner.compile(optimizer=optimizer, **compile_options())
    history = tuner.fit(photos, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    moved = changed(before, components.unet)
    assert moved and moved <= lora_paths
    assert any(path.endswith("lora_kernel_b") for path in moved)

    # The preset holds the merged kernels: a plain U-Net gives the same noise prediction.
    inputs = [
        np.random.default_rng(0).standard_normal((1, SIZE, SIZE, 8)).astype("float32"),
        np.array([500.0], "float32"),
        numpy(tuner.validation_state)[None],
    ]
    expected = numpy(components.unet(inputs))
    from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset

    preset = tuner.save_preset(tmp_path / "preset")
    loaded = load_preset(preset)
    assert not lora_layers(loaded.unet)
    np.testing.assert_allclose(numpy(loaded.unet(inputs)), expected, atol=1e-5)

    # A saved LoRA fine-tuner reloads with merged kernels and zeroed adapters; refreshing
    # them keeps the function and lets the adapters learn again.
    tuner.save(tmp_path / "tuner.keras")
    reloaded = keras.saving.load_model(tmp_path / "tuner.keras")
    np.testing.assert_allclose(numpy(reloaded.unet(inputs)), expected, atol=1e-5)
    reloaded.refresh_lora_adapters()
    layer = lora_layers(reloaded.unet)[0]
    assert numpy(layer.lora_kernel_a).any() and not numpy(layer.lora_kernel_b).any()
    np.testing.assert_allclose(numpy(reloaded.unet(inputs)), expected, atol=1e-5)


def test_mixed_bfloat16_keeps_the_loss_finite(photos):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        components = micro_components()
        tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, seed=0)
        assert components.vae_encoder.compute_dtype == "bfloat16" and components.unet.compute_dtype == "bfloat16"
        tuner.compile(**compile_options())
        history = tuner.fit(photos, batch_size=2, epochs=1, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(history.history["loss"]).all() and history.history["loss"][0] > 0.1
    assert all(v.dtype == "float32" for v in components.unet.trainable_weights)


def test_keras_file_round_trip(components, photos, tmp_path):
    tuner = InstructPix2PixFineTuner(components, prompts=PROMPTS, loss="joint", conditioning_dropout=0.1, seed=5)
    tuner.compile()
    tuner.optimizer.build(tuner.trainable_variables)
    tuner.save(tmp_path / "tuner.keras")
    loaded = keras.saving.load_model(tmp_path / "tuner.keras")
    assert type(loaded) is InstructPix2PixFineTuner
    assert loaded.get_config() == tuner.get_config()
    expected_trainable = loaded.unet.weights + [loaded.noise_log_variance, loaded.lab_log_variance]
    assert {id(v) for v in loaded.trainable_variables} == {id(v) for v in expected_trainable}  # frozen VAE, text
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)
    assert float(numpy(loaded.optimizer.learning_rate)) == pytest.approx(5e-6, rel=1e-6)
    np.testing.assert_array_equal(numpy(loaded.prompt_states), numpy(tuner.prompt_states))
    inputs = [np.zeros((1, SIZE, SIZE, 8), "float32"), np.array([10.0], "float32"), numpy(tuner.null_state)[None]]
    np.testing.assert_allclose(numpy(loaded.unet(inputs)), numpy(tuner.unet(inputs)), atol=1e-6)
    for name in ("vae_encoder", "vae_decoder", "text_encoder"):
        for a, b in zip(getattr(loaded, name).weights, getattr(tuner, name).weights):
            np.testing.assert_array_equal(numpy(a), numpy(b))
    # `load_checkpoint` knows the fine-tuner without its module imported first (a fresh process).
    probe = (
        "from keras_colorize import load_checkpoint\n"
        f"model = load_checkpoint({str(tmp_path / 'tuner.keras')!r})\n"
        "print(type(model).__name__, model.count_params())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND=keras.backend.backend())
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["InstructPix2PixFineTuner", str(tuner.count_params())]
