"""Noise schedules against diffusers' DDPMScheduler, EulerAncestralDiscreteScheduler and DDIMScheduler.

The same model outputs and the same N(0, 1) draws go into both; our steps run inside a compiled
function (XLA on TensorFlow, jit on JAX; eagerly on PyTorch, where compiling takes minutes on CPU)
with the step index as a tensor, and eagerly with a Python int.
"""

import keras
import numpy as np
import pytest

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import BETA_END, BETA_START, TRAIN_TIMESTEPS
from keras_colorize.models.instruct_pix2pix.schedulers import (
    DDIMSampler,
    DDPMScheduler,
    EulerAncestralSampler,
    get_sampler,
)
from tests.test_case import to_numpy

BACKEND = keras.backend.backend()
SHAPE = (2, 8, 8, 4)
ATOL = 2e-5
RTOL = 1e-5

SD_SCHEDULE = dict(
    num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="scaled_linear"
)
"""The schedule of SD v1 and of the InstructPix2Pix checkpoint, in diffusers' terms."""


@pytest.fixture(scope="module")
def diffusers_schedulers():
    pytest.importorskip("torch", reason="the reference schedulers need torch")
    return pytest.importorskip("diffusers", reason="the reference schedulers need diffusers")


def compiled(fn):
    """`fn` compiled on the current backend (PyTorch: eager)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def torch_noise(seed, shape=SHAPE):
    """The draw diffusers makes from `torch.Generator().manual_seed(seed)`, as NumPy."""
    import torch

    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).numpy()


def fake_model(sample, step):
    """A deterministic stand-in for the guided U-Net output, as NumPy float32."""
    rng = np.random.default_rng(1000 + step)
    return (0.3 * np.tanh(sample) + rng.standard_normal(sample.shape)).astype("float32")


def test_ddpm_schedule_matches_diffusers(diffusers_schedulers):
    reference = diffusers_schedulers.DDPMScheduler(**SD_SCHEDULE)
    ours = DDPMScheduler()
    np.testing.assert_allclose(ours.betas, reference.betas.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.alphas_cumprod, reference.alphas_cumprod.numpy(), rtol=2e-6)
    assert ours.alphas_cumprod.shape == (TRAIN_TIMESTEPS,)
    assert abs(ours.alphas_cumprod[-1] - 0.0046600) < 1e-6  # SD v1's terminal abar


def test_ddpm_add_noise_matches_diffusers_compiled(diffusers_schedulers):
    import torch

    reference = diffusers_schedulers.DDPMScheduler(**SD_SCHEDULE)
    ours = DDPMScheduler()
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((5, 8, 8, 4)).astype("float32")
    noise = rng.standard_normal(x0.shape).astype("float32")
    timesteps = np.array([0, 1, 250, 998, 999], "int32")
    expected = reference.add_noise(
        torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(timesteps.astype("int64"))
    ).numpy()
    add_noise = compiled(lambda a, b, t: ours.add_noise(a, b, t))
    tensors = [keras.ops.convert_to_tensor(a) for a in (x0, noise, timesteps)]
    got = to_numpy(add_noise(*tensors))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # NumPy arrays work eagerly too; the closed form in float64.
    eager = to_numpy(ours.add_noise(x0, noise, timesteps))
    alpha = ours.alphas_cumprod[timesteps][:, None, None, None]
    np.testing.assert_allclose(eager, np.sqrt(alpha) * x0 + np.sqrt(1 - alpha) * noise, atol=1e-6)


@pytest.mark.parametrize("steps", [20, 50])
def test_euler_ancestral_matches_diffusers(diffusers_schedulers, steps):
    import torch

    reference = diffusers_schedulers.EulerAncestralDiscreteScheduler(**SD_SCHEDULE, prediction_type="epsilon")
    reference.set_timesteps(steps)
    ours = get_sampler("euler_ancestral")
    timesteps = ours.set_timesteps(steps)
    assert isinstance(ours, EulerAncestralSampler)
    np.testing.assert_allclose(timesteps, reference.timesteps.numpy(), rtol=1e-6)
    # diffusers forms 1 - abar in float32 (1.3e-5 relative off at t = 0); ours is float64.
    np.testing.assert_allclose(ours.sigmas, reference.sigmas.numpy(), rtol=3e-5)
    assert ours.init_noise_sigma == pytest.approx(float(reference.init_noise_sigma), rel=1e-5)

    scale = compiled(lambda x, i: ours.scale_model_input(x, i))
    step = compiled(lambda eps, i, x, z: ours.step(eps, i, x, noise=z))
    sample = (torch_noise(0) * float(reference.init_noise_sigma)).astype("float32")
    for index, t in enumerate(reference.timesteps):
        expected_input = reference.scale_model_input(torch.from_numpy(sample), t).numpy()
        model_output = fake_model(expected_input, index)
        generator = torch.Generator().manual_seed(index + 1)
        expected = reference.step(
            torch.from_numpy(model_output), t, torch.from_numpy(sample), generator=generator
        ).prev_sample.numpy()
        noise = torch_noise(index + 1)

        i = keras.ops.convert_to_tensor(index, "int32")
        np.testing.assert_allclose(to_numpy(scale(sample, i)), expected_input, rtol=RTOL, atol=ATOL)
        got = to_numpy(step(model_output, i, sample, noise))
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=f"step {index}")
        if index in (0, steps - 1):  # eager, Python int index
            eager_input = to_numpy(ours.scale_model_input(sample, index))
            np.testing.assert_allclose(eager_input, expected_input, rtol=RTOL, atol=ATOL)
            eager = to_numpy(ours.step(model_output, index, sample, noise))
            np.testing.assert_allclose(eager, expected, rtol=RTOL, atol=ATOL)
        sample = expected
    # The last step has sigma_up = 0: deterministic, noise optional.
    assert ours.sigma_up[-1] == 0.0
    last = to_numpy(ours.step(model_output, steps - 1, sample, None))
    np.testing.assert_array_equal(last, to_numpy(ours.step(model_output, steps - 1, sample, noise)))


@pytest.mark.parametrize("steps", [20, 50])
@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_matches_diffusers(diffusers_schedulers, steps, eta):
    import torch

    reference = diffusers_schedulers.DDIMScheduler(
        **SD_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading"
    )
    reference.set_timesteps(steps)
    ours = get_sampler("ddim", eta=eta)
    timesteps = ours.set_timesteps(steps)
    np.testing.assert_array_equal(timesteps, reference.timesteps.numpy().astype("float32"))
    assert timesteps[-1] == 1 and ours.init_noise_sigma == float(reference.init_noise_sigma) == 1.0

    step = compiled(lambda eps, i, x, z: ours.step(eps, i, x, noise=z))
    sample = torch_noise(0)
    for index, t in enumerate(reference.timesteps):
        assert ours.scale_model_input(sample, index) is sample  # DDIM feeds the latents unscaled
        model_output = fake_model(sample, index)
        noise = torch_noise(index + 1)
        expected = reference.step(
            torch.from_numpy(model_output), t, torch.from_numpy(sample), eta=eta,
            variance_noise=torch.from_numpy(noise) if eta > 0 else None,
        ).prev_sample.numpy()
        got = to_numpy(step(model_output, keras.ops.convert_to_tensor(index, "int32"), sample, noise))
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=f"step {index}")
        if index in (0, steps - 1):
            np.testing.assert_allclose(
                to_numpy(ours.step(model_output, index, sample, noise)), expected, rtol=RTOL, atol=ATOL
            )
        sample = expected


@pytest.mark.parametrize("name", ["euler_ancestral", "ddim"])
def test_per_sample_step_indices(name):
    """An index per sample (N,) gives each sample the step its own scalar index gives it."""
    sampler = get_sampler(name, **({"eta": 0.7} if name == "ddim" else {}))
    sampler.set_timesteps(10)
    rng = np.random.default_rng(3)
    sample, eps, noise = (rng.standard_normal((3, 4, 4, 4)).astype("float32") for _ in range(3))
    indices = np.array([0, 4, 9], "int32")
    step = compiled(lambda e, i, x, z: (sampler.scale_model_input(x, i), sampler.step(e, i, x, noise=z)))
    scaled, batched = (to_numpy(t) for t in step(eps, keras.ops.convert_to_tensor(indices), sample, noise))
    for n, index in enumerate(indices):
        one = to_numpy(sampler.step(eps[n : n + 1], int(index), sample[n : n + 1], noise[n : n + 1]))
        np.testing.assert_allclose(batched[n : n + 1], one, rtol=1e-6, atol=1e-6)
        alone = to_numpy(sampler.scale_model_input(sample[n : n + 1], int(index)))
        np.testing.assert_allclose(scaled[n : n + 1], alone, rtol=1e-6, atol=1e-6)


def test_sampler_steps_keep_dtype_and_shape():
    sampler = EulerAncestralSampler()
    sampler.set_timesteps(4)
    sample = keras.ops.ones((1, 4, 4, 4), "float16")
    out = sampler.step(keras.ops.zeros_like(sample), 1, sample, keras.ops.zeros_like(sample))
    assert keras.backend.standardize_dtype(out.dtype) == "float16" and tuple(out.shape) == (1, 4, 4, 4)
    # eps = 0: the sample moves to sigma_down / sigma times itself (x0 = x, derivative 0) -> unchanged.
    np.testing.assert_allclose(to_numpy(out).astype("float32"), 1.0)


def test_sampler_errors():
    with pytest.raises(UserInputError, match="unknown sampler 'dpm'.*ddim, euler_ancestral"):
        get_sampler("dpm")
    sampler = get_sampler()
    assert isinstance(sampler, EulerAncestralSampler) and sampler.name == "euler_ancestral"
    with pytest.raises(ValueError, match="set_timesteps"):
        sampler.step(np.zeros(SHAPE, "float32"), 0, np.zeros(SHAPE, "float32"), np.zeros(SHAPE, "float32"))
    with pytest.raises(UserInputError, match="sampling steps must be in"):
        sampler.set_timesteps(0)
    sampler.set_timesteps(5)
    with pytest.raises(ValueError, match="noise"):
        sampler.step(np.zeros(SHAPE, "float32"), 0, np.zeros(SHAPE, "float32"))
    ddim = DDIMSampler(eta=1.0)
    ddim.set_timesteps(5)
    with pytest.raises(ValueError, match="noise"):
        ddim.step(np.zeros(SHAPE, "float32"), 0, np.zeros(SHAPE, "float32"))
    with pytest.raises(UserInputError, match="eta"):
        DDIMSampler(eta=-0.1)
    with pytest.raises(UserInputError, match="beta_start"):
        DDPMScheduler(beta_start=0.02, beta_end=0.01)
    config = DDIMSampler(eta=0.3).get_config()
    assert DDIMSampler(**config).get_config() == config == dict(
        train_timesteps=1000, beta_start=BETA_START, beta_end=BETA_END, eta=0.3, steps_offset=1
    )
