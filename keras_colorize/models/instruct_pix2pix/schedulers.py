"""Noise schedules of Stable Diffusion v1: DDPM for training, Euler-ancestral and DDIM samplers.

Tables (betas, cumulative alphas, sigmas, per-step coefficients) are computed once in NumPy
float64; the per-sample arithmetic is keras.ops, so `add_noise`, `scale_model_input` and `step`
run inside compiled functions on every backend, with Python ints or integer tensors as indices.
Results equal diffusers' `DDPMScheduler`, `EulerAncestralDiscreteScheduler` and `DDIMScheduler`
with the SD v1 configuration (scaled-linear betas, epsilon prediction).

References:
    Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    Song et al., "Denoising Diffusion Implicit Models", ICLR 2021.
    Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022.
"""

import numpy as np
from keras import ops

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import BETA_END, BETA_START, TRAIN_TIMESTEPS


def _lookup(table, index, ndim=None):
    """`table[index]`: a Python float for a Python/NumPy int, else an ops.take on a float32 tensor.

    A tensor index is a scalar (one step for the batch) or one index per sample, shape `(N,)`,
    whose values are reshaped to broadcast against a tensor of rank `ndim`.
    """
    if isinstance(index, (int, np.integer)):
        return float(table[index])
    values = ops.take(ops.convert_to_tensor(np.asarray(table, "float32")), ops.cast(index, "int32"), axis=0)
    if len(values.shape) == 1 and ndim is not None:
        values = _per_sample(values, ndim)
    return values


def _per_sample(values, ndim):
    """Per-sample coefficients (N,) reshaped to broadcast against a tensor of rank `ndim`."""
    return ops.reshape(values, (-1,) + (1,) * (ndim - 1))


def _float32(x):
    return ops.cast(x, "float32")


def _restore(result, like):
    return ops.cast(result, like.dtype)


class DDPMScheduler:
    """The training noise schedule: scaled-linear betas and the forward process q(x_t | x_0).

    betas = linspace(sqrt(beta_start), sqrt(beta_end), train_timesteps) ** 2, alphas_cumprod the
    cumulative product of 1 - betas.

    Args:
        train_timesteps: int. Diffusion steps of training. Defaults to TRAIN_TIMESTEPS (1000).
        beta_start: float. First beta. Defaults to BETA_START (0.00085).
        beta_end: float. Last beta. Defaults to BETA_END (0.012).

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.schedulers import DDPMScheduler
        >>> scheduler = DDPMScheduler()
        >>> round(float(scheduler.alphas_cumprod[-1]), 5)
        0.00466
    """

    def __init__(self, train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END):
        train_timesteps = int(train_timesteps)
        beta_start, beta_end = float(beta_start), float(beta_end)
        if train_timesteps < 2 or not 0.0 < beta_start < beta_end < 1.0:
            raise UserInputError(
                f"{type(self).__name__} needs train_timesteps >= 2 and 0 < beta_start < beta_end < 1, "
                f"got {train_timesteps}, {beta_start}, {beta_end}"
            )
        self.train_timesteps = train_timesteps
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.betas = np.linspace(beta_start**0.5, beta_end**0.5, train_timesteps, dtype=np.float64) ** 2
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)

    def add_noise(self, x0, noise, timesteps):
        """The forward process: sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise.

        Args:
            x0: tensor. Clean samples (scaled latents), float, shape `(N, ...)`.
            noise: tensor. N(0, 1) noise, the shape of `x0`.
            timesteps: int tensor or array. Timestep per sample in [0, train_timesteps), shape `(N,)`.

        Returns:
            Noisy samples, the shape and dtype of `x0`.
        """
        x0 = ops.convert_to_tensor(x0)
        ndim = len(x0.shape)
        timesteps = ops.cast(timesteps, "int32")
        table = ops.convert_to_tensor(self.alphas_cumprod.astype("float32"))
        alpha = _per_sample(ops.take(table, timesteps, axis=0), ndim)
        noisy = ops.sqrt(alpha) * _float32(x0) + ops.sqrt(1.0 - alpha) * _float32(noise)
        return _restore(noisy, x0)

    def get_config(self):
        """The constructor arguments, a dict (`type(s)(**s.get_config())` rebuilds the schedule)."""
        return {"train_timesteps": self.train_timesteps, "beta_start": self.beta_start, "beta_end": self.beta_end}


class _Sampler(DDPMScheduler):
    """Shared parts of the samplers: a timestep table set by `set_timesteps`."""

    name = None
    timesteps = None

    def _check_ready(self):
        if self.timesteps is None:
            raise ValueError(f"{type(self).__name__}: call set_timesteps(steps) before sampling")

    def _check_steps(self, steps):
        steps = int(steps)
        if not 1 <= steps <= self.train_timesteps:
            raise UserInputError(f"sampling steps must be in [1, {self.train_timesteps}], got {steps}")
        return steps

    @property
    def num_steps(self):
        """Number of sampling steps set by `set_timesteps` (None before)."""
        return None if self.timesteps is None else len(self.timesteps)


class EulerAncestralSampler(_Sampler):
    """Euler-ancestral sampling (k-diffusion's `sample_euler_ancestral`), epsilon prediction.

    Timesteps are evenly spaced over [0, train_timesteps - 1] ("linspace" spacing, possibly
    fractional), sigma_t = sqrt((1 - abar_t) / abar_t) interpolated at them, then a final 0. As
    diffusers' `EulerAncestralDiscreteScheduler` with the InstructPix2Pix checkpoint's configuration.

    Args:
        train_timesteps: int. Diffusion steps of training. Defaults to TRAIN_TIMESTEPS (1000).
        beta_start: float. First beta. Defaults to BETA_START (0.00085).
        beta_end: float. Last beta. Defaults to BETA_END (0.012).

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.schedulers import EulerAncestralSampler
        >>> sampler = EulerAncestralSampler()
        >>> [round(float(t), 2) for t in sampler.set_timesteps(20)[:3]]
        [999.0, 946.42, 893.84]
    """

    name = "euler_ancestral"

    def set_timesteps(self, steps):
        """Choose the sampling timesteps and the sigma table.

        Args:
            steps: int. Number of sampling steps.

        Returns:
            np.ndarray float32, shape `(steps,)`: the U-Net timesteps, decreasing from
            `train_timesteps - 1` to 0.
        """
        steps = self._check_steps(steps)
        timesteps = np.linspace(0, self.train_timesteps - 1, steps, dtype=np.float64)[::-1]
        train_sigmas = np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)
        sigmas = np.append(np.interp(timesteps, np.arange(self.train_timesteps), train_sigmas), 0.0)
        sigma_from, sigma_to = sigmas[:-1], sigmas[1:]
        self.sigmas = sigmas
        self.sigma_up = np.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2)
        self.sigma_down = np.sqrt(sigma_to**2 - self.sigma_up**2)
        self.input_scale = 1.0 / np.sqrt(sigma_from**2 + 1.0)
        self.timesteps = timesteps.astype(np.float32)
        return self.timesteps

    @property
    def init_noise_sigma(self):
        """Standard deviation of the initial latents (the largest sigma), a Python float."""
        self._check_ready()
        return float(self.sigmas.max())

    def scale_model_input(self, sample, step_index):
        """The U-Net input at a step: sample / sqrt(sigma ** 2 + 1).

        Args:
            sample: tensor. Current latents, float, shape `(N, h, w, C)`.
            step_index: int, or int tensor: a scalar, or one index per sample `(N,)`. Index
                into `timesteps`.

        Returns:
            Scaled latents, the shape and dtype of `sample`.
        """
        self._check_ready()
        return _restore(_float32(sample) * _lookup(self.input_scale, step_index, len(sample.shape)), sample)

    def step(self, model_output, step_index, sample, noise=None):
        """One ancestral Euler step from sigma[i] to sigma[i + 1].

        x0 = sample - sigma * eps; the deterministic move to sigma_down, then noise * sigma_up.

        Args:
            model_output: tensor. Predicted noise (after guidance), the shape of `sample`.
            step_index: int, or int tensor: a scalar, or one index per sample `(N,)`. Index
                into `timesteps`.
            sample: tensor. Current latents, float, shape `(N, h, w, C)`.
            noise: tensor or None. The fresh N(0, 1) draw of this step, the shape of `sample`;
                required unless it is the last step (sigma_up = 0 there). Defaults to None.

        Returns:
            The latents at the next (lower) noise level, the shape and dtype of `sample`.
        """
        self._check_ready()
        if noise is None and not (isinstance(step_index, (int, np.integer)) and self.sigma_up[step_index] == 0.0):
            raise ValueError("EulerAncestralSampler.step needs the step's N(0, 1) noise (noise=...)")
        x = _float32(sample)
        eps = _float32(model_output)
        ndim = len(x.shape)
        sigma = _lookup(self.sigmas[:-1], step_index, ndim)
        sigma_down = _lookup(self.sigma_down, step_index, ndim)
        # derivative = (x - x0) / sigma = eps; Euler move from sigma to sigma_down.
        previous = x + eps * (sigma_down - sigma)
        if noise is not None:
            previous = previous + _float32(noise) * _lookup(self.sigma_up, step_index, ndim)
        return _restore(previous, sample)


class DDIMSampler(_Sampler):
    """DDIM sampling (eta = 0 deterministic; eta > 0 adds the given noise), epsilon prediction.

    SD v1 configuration: "leading" timestep spacing with steps_offset 1 (t = i * (T // steps) + 1),
    no sample clipping, and the step past t = 0 lands on alphas_cumprod[0] (set_alpha_to_one off).
    As diffusers' `DDIMScheduler` with SD v1's scheduler configuration.

    Args:
        train_timesteps: int. Diffusion steps of training. Defaults to TRAIN_TIMESTEPS (1000).
        beta_start: float. First beta. Defaults to BETA_START (0.00085).
        beta_end: float. Last beta. Defaults to BETA_END (0.012).
        eta: float. Weight of the stochastic part, in [0, 1]: 0 is DDIM, 1 the DDPM posterior
            variance. Defaults to 0.
        steps_offset: int. Added to every timestep. Defaults to 1.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.schedulers import DDIMSampler
        >>> DDIMSampler().set_timesteps(20)[:3]
        array([951., 901., 851.], dtype=float32)
    """

    name = "ddim"

    def __init__(
        self, train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END, eta=0.0, steps_offset=1
    ):
        super().__init__(train_timesteps, beta_start, beta_end)
        self.eta = float(eta)
        self.steps_offset = int(steps_offset)
        if not 0.0 <= self.eta <= 1.0:
            raise UserInputError(f"DDIMSampler eta must be in [0, 1], got {eta}")

    init_noise_sigma = 1.0
    """Standard deviation of the initial latents."""

    def set_timesteps(self, steps):
        """Choose the sampling timesteps and the per-step coefficients.

        Args:
            steps: int. Number of sampling steps.

        Returns:
            np.ndarray float32, shape `(steps,)`: the U-Net timesteps (integers), decreasing.
        """
        steps = self._check_steps(steps)
        ratio = self.train_timesteps // steps
        timesteps = np.arange(steps)[::-1] * ratio + self.steps_offset
        if timesteps.max() >= self.train_timesteps:
            raise UserInputError(
                f"DDIMSampler: steps_offset {self.steps_offset} puts a timestep past {self.train_timesteps - 1}"
            )
        previous = timesteps - ratio
        alpha = self.alphas_cumprod[timesteps]
        alpha_prev = np.where(previous >= 0, self.alphas_cumprod[np.maximum(previous, 0)], self.alphas_cumprod[0])
        variance = (1.0 - alpha_prev) / (1.0 - alpha) * (1.0 - alpha / alpha_prev)
        std = self.eta * np.sqrt(variance)
        # prev = sqrt(a_prev) * (x - sqrt(1 - a) * eps) / sqrt(a) + sqrt(1 - a_prev - std^2) * eps + std * noise
        self.sample_coefficient = np.sqrt(alpha_prev / alpha)
        self.eps_coefficient = np.sqrt(1.0 - alpha_prev - std**2) - np.sqrt(alpha_prev * (1.0 - alpha) / alpha)
        self.noise_coefficient = std
        self.timesteps = timesteps.astype(np.float32)
        return self.timesteps

    def scale_model_input(self, sample, step_index):
        """DDIM feeds the latents unscaled.

        Args:
            sample: tensor. Current latents, float, shape `(N, h, w, C)`.
            step_index: int or int tensor. Index into `timesteps` (unused).

        Returns:
            `sample` itself.
        """
        return sample

    def step(self, model_output, step_index, sample, noise=None):
        """One DDIM step from timesteps[i] to timesteps[i] - T // steps.

        Args:
            model_output: tensor. Predicted noise (after guidance), the shape of `sample`.
            step_index: int, or int tensor: a scalar, or one index per sample `(N,)`. Index
                into `timesteps`.
            sample: tensor. Current latents, float, shape `(N, h, w, C)`.
            noise: tensor or None. N(0, 1) draw of this step, the shape of `sample`; required
                when eta > 0, ignored when eta = 0. Defaults to None.

        Returns:
            The latents at the previous timestep, the shape and dtype of `sample`.
        """
        self._check_ready()
        x = _float32(sample)
        eps = _float32(model_output)
        ndim = len(x.shape)
        previous = x * _lookup(self.sample_coefficient, step_index, ndim)
        previous = previous + eps * _lookup(self.eps_coefficient, step_index, ndim)
        if self.eta > 0.0:
            if noise is None:
                raise ValueError("DDIMSampler.step with eta > 0 needs the step's N(0, 1) noise (noise=...)")
            previous = previous + _float32(noise) * _lookup(self.noise_coefficient, step_index, ndim)
        return _restore(previous, sample)

    def get_config(self):
        config = super().get_config()
        config.update(eta=self.eta, steps_offset=self.steps_offset)
        return config


SAMPLERS = {"euler_ancestral": EulerAncestralSampler, "ddim": DDIMSampler}
"""Sampler classes by name (the names recipes and the CLI accept)."""


def get_sampler(name="euler_ancestral", **kwargs):
    """A sampler by name.

    Args:
        name: str. "euler_ancestral" or "ddim". Defaults to "euler_ancestral".
        **kwargs: constructor arguments of the sampler (train_timesteps, beta_start, beta_end;
            eta and steps_offset for DDIM).

    Returns:
        An `EulerAncestralSampler` or `DDIMSampler`.

    Raises:
        UserInputError: unknown name (the one-line message lists the names).
    """
    if name not in SAMPLERS:
        raise UserInputError(f"unknown sampler {name!r} (available: {', '.join(sorted(SAMPLERS))})")
    return SAMPLERS[name](**kwargs)
