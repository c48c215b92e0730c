"""InstructPix2Pix sampling: an image and an instruction in, an edited image out.

The conditioning image is encoded by the VAE (the mean of its latent distribution,
unscaled, as InstructPix2Pix was trained); the latents start as seeded Gaussian
noise and are denoised by the U-Net under dual classifier-free guidance over the
batch [text + image, image only, neither]:

    eps = eps_uncond + s_text * (eps_text - eps_image) + s_image * (eps_image - eps_uncond)

then decoded. One denoising step (U-Net call, guidance and sampler update) is one
compiled function (XLA on TensorFlow and JAX), traced once per sampler and step count.

References:
    Brooks, Holynski and Efros, "InstructPix2Pix: Learning to Follow Image Editing
    Instructions", CVPR 2023.
"""

import copy

import keras
import numpy as np
from keras import ops

from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
from keras_colorize.colorizer import colorize_at_full_resolution
from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import (
    IMAGE_GUIDANCE,
    LATENT_SCALE,
    SAMPLING_STEPS,
    TEXT_GUIDANCE,
    VALIDATION_PROMPT,
)

DEFAULT_IMAGE_SIZE = 256
"""Model size of `colorize` when none is given (InstructPix2Pix's training resolution)."""


def _config(network):
    return network.get_config() if hasattr(network, "get_config") else {}


def size_multiple(components):
    """The factor that image sides must be a multiple of: VAE downsampling times U-Net downsampling.

    Args:
        components: DiffusionComponents.

    Returns:
        int. 2 ** (VAE levels - 1) * 2 ** (U-Net levels - 1); 64 for Stable Diffusion v1.
    """
    vae_levels = len(_config(components.vae_encoder).get("channels", (0,) * 4))
    unet_levels = len(_config(components.unet).get("widths", (0,) * 4))
    return 2 ** (vae_levels - 1) * 2 ** (unet_levels - 1)


class _DenoisingStep(keras.Model):
    """One denoising step: U-Net on the guidance batch, guidance, sampler update.

    Called through `predict_on_batch`, so Keras compiles it (XLA on TensorFlow and
    JAX, eager on PyTorch). The sampler's tables for one step count are constants
    of the trace; a pipeline keeps one step per sampler copy and step count.
    """

    def __init__(self, unet, sampler, guided, **kwargs):
        kwargs.setdefault("name", "denoising_step")
        super().__init__(**kwargs)
        self.unet = unet
        self.sampler = sampler
        self.guided = guided
        self.built = unet.built  # no eager build call before the first compiled one

    def call(self, inputs):
        latents = ops.cast(inputs["latents"], "float32")
        step_index = inputs["step_index"]
        scaled = self.sampler.scale_model_input(latents, step_index)
        copies = 3 if self.guided else 1
        model_input = ops.concatenate(
            [ops.concatenate([scaled] * copies, axis=0), ops.cast(inputs["image_latents"], scaled.dtype)], axis=-1
        )
        timesteps = ops.cast(inputs["timesteps"], "float32")
        eps = ops.cast(self.unet([model_input, timesteps, inputs["context"]]), "float32")
        if self.guided:
            eps_text, eps_image, eps_uncond = ops.split(eps, 3, axis=0)
            scales = ops.cast(inputs["guidance"], "float32")
            eps = eps_uncond + scales[0] * (eps_text - eps_image) + scales[1] * (eps_image - eps_uncond)
        return self.sampler.step(eps, step_index, latents, noise=ops.cast(inputs["noise"], "float32"))


class InstructPix2PixPipeline:
    """Samples images from an InstructPix2Pix model conditioned on an image and a prompt.

    Args:
        components: DiffusionComponents. The U-Net (8 input channels), VAE,
            text encoder and tokenizer.
        sampler: str or sampler object. "euler_ancestral" or "ddim" (see
            `schedulers.get_sampler`), or a sampler instance (copied per step
            count). Defaults to "euler_ancestral".
        image_size: int or (int, int). Model size of `colorize`. Defaults to 256.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset
        >>> from keras_colorize.models.instruct_pix2pix.pipeline import InstructPix2PixPipeline
        >>> pipeline = InstructPix2PixPipeline(load_preset("presets/ip2p"))  # doctest: +SKIP
        >>> colour = pipeline.colorize(gray_uint8, steps=20, seed=0)  # doctest: +SKIP
    """

    def __init__(self, components, sampler="euler_ancestral", image_size=DEFAULT_IMAGE_SIZE):
        from keras_colorize.models.instruct_pix2pix.schedulers import get_sampler

        self.components = components
        self.sampler = get_sampler(sampler) if isinstance(sampler, str) else sampler
        self.image_size = self._model_size(image_size)
        self._steps = {}  # (steps, guided) -> (sampler set to steps, its timesteps, compiled step)

    # ------------------------------------------------------------------ building blocks

    @property
    def size_multiple(self):
        """int. Image sides are multiples of this (VAE times U-Net downsampling)."""
        return size_multiple(self.components)

    def _model_size(self, size):
        if size is None:
            return getattr(self, "image_size", (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE))
        sides = (size, size) if np.ndim(size) == 0 else tuple(size)
        if len(sides) != 2 or any(int(s) < 1 for s in sides):
            raise UserInputError(f"size must be a positive int or (height, width), got {size!r}")
        multiple = size_multiple(self.components)
        return tuple(max(multiple, int(s) // multiple * multiple) for s in sides)

    def encode_prompt(self, prompts):
        """Text states of prompts.

        Args:
            prompts: str or list of str.

        Returns:
            NumPy float32 of shape (N, sequence_length, width): the text encoder's
            last hidden states.
        """
        tokens = self.components.tokenizer([prompts] if isinstance(prompts, str) else list(prompts))
        return np.asarray(self.components.text_encoder.predict_on_batch(np.asarray(tokens, "int32")), "float32")

    def encode_image(self, images):
        """Conditioning latents of images: the VAE's latent mean, unscaled.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3), H and W multiples
                of the VAE's downsampling factor.

        Returns:
            NumPy float32 of shape (N, H/f, W/f, latent_channels).
        """
        from keras_colorize.models.instruct_pix2pix.vae import latent_mean

        moments = self.components.vae_encoder.predict_on_batch(np.asarray(images, "float32") * 2.0 - 1.0)
        return np.asarray(ops.convert_to_numpy(latent_mean(ops.convert_to_tensor(moments))), "float32")

    def decode(self, latents):
        """sRGB images of diffusion latents.

        Args:
            latents: float32, shape (N, h, w, latent_channels), scaled (as sampled).

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, h*f, w*f, 3).
        """
        decoded = self.components.vae_decoder.predict_on_batch(np.asarray(latents, "float32") / LATENT_SCALE)
        return (np.clip(np.asarray(decoded, "float32"), -1.0, 1.0) + 1.0) / 2.0

    def _denoising_step(self, steps, guided):
        """(sampler set to `steps`, its timesteps, the compiled step), made once per pipeline."""
        key = (int(steps), bool(guided))
        if key not in self._steps:
            sampler = copy.deepcopy(self.sampler)
            timesteps = np.asarray(sampler.set_timesteps(int(steps)))
            self._steps[key] = (sampler, timesteps, _DenoisingStep(self.components.unet, sampler, guided))
        return self._steps[key]

    # ------------------------------------------------------------------ sampling

    def prepare_images(self, images):
        """Conditioning images as float32 sRGB in [0, 1] at sides that are multiples of `size_multiple`.

        Args:
            images: sRGB, uint8 (0-255) or float (0-1), shape (N, H, W, 3) or (H, W, 3).

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, H', W', 3): H and W rounded down
            to multiples of `size_multiple` (at least one multiple), resized with
            antialiasing when they change.
        """
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise UserInputError(f"expected sRGB images of shape (N, H, W, 3), got {array.shape}")
        array = array.astype("float32") / 255.0 if array.dtype == np.uint8 else np.clip(array.astype("float32"), 0, 1)
        target = self._model_size(array.shape[1:3])
        if target != array.shape[1:3]:
            resized = ops.image.resize(array, target, antialias=True, data_format="channels_last")
            array = np.clip(ops.convert_to_numpy(resized), 0.0, 1.0).astype("float32")
        return array

    def generate(
        self,
        images,
        prompt=VALIDATION_PROMPT,
        steps=SAMPLING_STEPS,
        guidance=TEXT_GUIDANCE,
        image_guidance=IMAGE_GUIDANCE,
        seed=None,
        latents=None,
        step_noise=None,
        output="rgb",
    ):
        """Edit images as the prompt says.

        Dual classifier-free guidance runs when `guidance > 1` and
        `image_guidance >= 1` (as diffusers); otherwise the U-Net sees the text and
        the image only. Random draws (initial latents, ancestral noise) come from
        NumPy's generator seeded with `seed`, so a seed gives the same draws on
        every backend.

        Args:
            images: sRGB, uint8 (0-255) or float (0-1), shape (N, H, W, 3). Sides
                are rounded down to multiples of `size_multiple` (resized).
            prompt: str or list of N str. The instruction. Defaults to
                "colorize the image".
            steps: int. Sampling steps. Defaults to 20.
            guidance: float. Text guidance scale. Defaults to 7.0.
            image_guidance: float. Image guidance scale. Defaults to 1.5.
            seed: int or None. Seed of the random draws. Defaults to None (fresh).
            latents: array or None. Initial N(0, 1) latents, shape (N, h, w, 4) with
                h, w the sides over the VAE factor; scaled by the sampler's
                `init_noise_sigma`. Defaults to None (drawn).
            step_noise: array or None. The N(0, 1) draws of the ancestral steps,
                shape (steps, N, h, w, 4). Defaults to None (drawn).
            output: str. "rgb" for images, "latents" for the final latents.
                Defaults to "rgb".

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, H', W', 3); or with
            output="latents", the final (scaled) latents, shape (N, h, w, 4).

        Raises:
            UserInputError: bad shapes, steps or prompts (one line).
        """
        if output not in ("rgb", "latents"):
            raise UserInputError(f"output must be 'rgb' or 'latents', got {output!r}")
        if int(steps) < 1:
            raise UserInputError(f"steps must be at least 1, got {steps}")
        images = self.prepare_images(images)
        count = images.shape[0]
        prompts = [prompt] * count if isinstance(prompt, str) else list(prompt)
        if len(prompts) != count:
            raise UserInputError(f"{len(prompts)} prompts for {count} images")
        guided = guidance > 1.0 and image_guidance >= 1.0
        sampler, timesteps, step = self._denoising_step(steps, guided)

        image_latents = self.encode_image(images)
        rng = np.random.default_rng(seed)
        shape = image_latents.shape[:-1] + (self._latent_channels(),)
        if latents is None:
            latents = rng.standard_normal(shape, dtype=np.float32)
        latents = np.asarray(latents, "float32")
        if latents.shape != shape:
            raise UserInputError(f"latents must have shape {shape}, got {latents.shape}")
        if step_noise is not None:
            step_noise = np.asarray(step_noise, "float32")
            if step_noise.shape != (len(timesteps),) + shape:
                raise UserInputError(f"step_noise must have shape {(len(timesteps),) + shape}, got {step_noise.shape}")
        latents = latents * np.float32(ops.convert_to_numpy(sampler.init_noise_sigma))

        text = self.encode_prompt(prompts)
        if guided:
            empty = np.repeat(self.encode_prompt([""]), count, axis=0)
            context = np.concatenate([text, empty, empty])
            image_latents = np.concatenate([image_latents, image_latents, np.zeros_like(image_latents)])
        else:
            context = text
        copies = 3 if guided else 1
        inputs = {
            "image_latents": image_latents,
            "context": context,
            "guidance": np.asarray([guidance, image_guidance], "float32"),
        }
        for index, timestep in enumerate(timesteps):
            noise = step_noise[index] if step_noise is not None else rng.standard_normal(shape, dtype=np.float32)
            inputs.update(
                latents=latents,
                step_index=np.asarray(index, "int32"),
                timesteps=np.full((count * copies,), timestep, "float32"),
                noise=noise,
            )
            latents = np.asarray(step.predict_on_batch(inputs), "float32")
        if output == "latents":
            return latents
        return self.decode(latents)

    def _latent_channels(self):
        return int(_config(self.components.unet).get("output_channels", 4))

    # ------------------------------------------------------------------ colorization

    def colorize(
        self,
        image,
        size=None,
        prompt=VALIDATION_PROMPT,
        steps=SAMPLING_STEPS,
        guidance=TEXT_GUIDANCE,
        image_guidance=IMAGE_GUIDANCE,
        seed=None,
    ):
        """Colorize one photo of any size at full resolution.

        The photo's L* is resized to the model size and turned into a gray sRGB
        image, which conditions the sampling; the a*b* of the generated image are
        upsampled to the photo's size and recombined with its original
        full-resolution L*, so the result keeps the photo's detail.

        Args:
            image: uint8 (0-255), uint16 or float (0-1) sRGB of shape (H, W, 3)
                or RGBA (H, W, 4, alpha ignored), or gray of shape (H, W) or (H, W, 1).
            size: int, (int, int) or None. Model size (rounded down to multiples
                of `size_multiple`). Defaults to None (the pipeline's image_size).
            prompt: str. The instruction. Defaults to "colorize the image".
            steps: int. Sampling steps. Defaults to 20.
            guidance: float. Text guidance scale. Defaults to 7.0.
            image_guidance: float. Image guidance scale. Defaults to 1.5.
            seed: int or None. Seed of the random draws. Defaults to None.

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        def predict_ab(l_small):
            gray_small = model_outputs_to_rgb(l_small, ops.zeros(tuple(l_small.shape[:-1]) + (2,)), "channels_last")
            gray_small = np.clip(ops.convert_to_numpy(gray_small), 0.0, 1.0)
            generated = self.generate(
                gray_small, prompt=prompt, steps=steps, guidance=guidance, image_guidance=image_guidance, seed=seed
            )
            return rgb_to_model_inputs(ops.convert_to_tensor(generated), "channels_last")[1]

        return colorize_at_full_resolution(image, self._model_size(size), predict_ab)


class DiffusionColorizer:
    """An InstructPix2Pix preset with fixed sampling settings, as a whole-photo colorizer.

    The same `colorize(image)` contract as `keras_colorize.Colorizer`, so that
    `keras-colorize colorize --model` and `keras-colorize evaluate` treat it like
    any other colorizer.

    Args:
        preset: str or Path. An InstructPix2Pix preset folder (`keras-colorize convert`).
        size: int or None. Model size in pixels (rounded down to `size_multiple`).
            Defaults to None (256).
        sampler: str. "euler_ancestral" or "ddim". Defaults to "euler_ancestral".
        prompt: str or None. The instruction. Defaults to None ("colorize the image").
        steps: int or None. Sampling steps. Defaults to None (20).
        guidance: float or None. Text guidance scale. Defaults to None (7.0).
        image_guidance: float or None. Image guidance scale. Defaults to None (1.5).
        seed: int or None. Seed of the random draws. Defaults to None (random).

    Raises:
        UserInputError: the preset cannot be read, or `size` is below the model's
            size multiple.
    """

    def __init__(self, preset, size=None, sampler="euler_ancestral", prompt=None, steps=None, guidance=None,
                 image_guidance=None, seed=None):
        from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset

        self.pipeline = InstructPix2PixPipeline(load_preset(preset), sampler=sampler or "euler_ancestral")
        size = int(size or DEFAULT_IMAGE_SIZE)
        if size < self.pipeline.size_multiple:
            raise UserInputError(f"--size {size} is below the model's size multiple {self.pipeline.size_multiple}")
        self.image_size = (size, size)
        self.settings = {
            "prompt": VALIDATION_PROMPT if prompt is None else prompt,
            "steps": steps or SAMPLING_STEPS,
            "guidance": TEXT_GUIDANCE if guidance is None else guidance,
            "image_guidance": IMAGE_GUIDANCE if image_guidance is None else image_guidance,
            "seed": seed,
        }

    def colorize(self, image):
        """Colorize one photo of any size at full resolution (see `InstructPix2PixPipeline.colorize`).

        Args:
            image: uint8 (0-255) or float (0-1) sRGB (H, W, 3), or gray (H, W) or (H, W, 1).

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        return self.pipeline.colorize(image, size=self.image_size[0], **self.settings)
