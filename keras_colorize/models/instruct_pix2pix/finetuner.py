"""The InstructPix2Pix colorization fine-tuner: a Keras model whose `fit` trains the U-Net.

Training pairs are made on the device from colour photos: the photo is the edited
image, its gray version (L* kept, a* = b* = 0) the image to edit, and a colorization
prompt is drawn per image. The VAE and the CLIP text encoder are frozen; only the
denoising U-Net (8 input channels: noisy target latents and conditioning latents)
trains, on the noise-prediction MSE of Stable Diffusion's DDPM schedule. The
algorithm is the one of Brooks et al.'s InstructPix2Pix training:

- target latents: a sample of the VAE posterior of the photo, times `LATENT_SCALE`;
- conditioning latents: the VAE posterior mean of the gray image, unscaled;
- DDPM noise at timesteps drawn uniformly from [0, TRAIN_TIMESTEPS);
- conditioning dropout with one uniform draw p per image and d =
  `conditioning_dropout`: p < d drops the prompt (the "" prompt's text states
  replace it), d <= p < 2d drops both, 2d <= p < 3d drops the image (zeroed
  conditioning latents), so the sampler's dual classifier-free guidance has its
  unconditional branches.

The step is Keras's own `train_step` (`call` builds the pair and predicts the noise,
`compute_loss` scores it), so loss scaling (`mixed_float16`), EMA (`use_ema=True` in
the optimizer), `jit_compile` and the distribution API work as for any Keras model.

References:
    Brooks, Holynski and Efros, "InstructPix2Pix: Learning to Follow Image
    Editing Instructions", CVPR 2023.
    Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
    Losses for Scene Geometry and Semantics", CVPR 2018 (the `joint` loss weights).
"""

import numpy as np
import keras
from keras import ops

from keras_colorize.color import model_outputs_to_rgb, normalize_l, rgb_to_lightness, rgb_to_model_inputs
from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.components import NETWORKS, DiffusionComponents, network_classes
from keras_colorize.models.instruct_pix2pix.constants import (
    CONDITIONING_DROPOUT,
    IMAGE_GUIDANCE,
    LATENT_SCALE,
    LEARNING_RATE,
    SAMPLING_STEPS,
    TEXT_GUIDANCE,
    TRAIN_TIMESTEPS,
    VALIDATION_PROMPT,
)
from keras_colorize.serialization import register

LOSSES = ("noise", "joint")
"""The training objectives: the noise MSE alone, or with the LAB term (uncertainty-weighted)."""

WEIGHT_DECAY = 1e-2
ADAM_EPSILON = 1e-8
GRADIENT_CLIP_NORM = 1.0
"""AdamW settings of the InstructPix2Pix training script (with `LEARNING_RATE`)."""



class FineTunerError(UserInputError):
    """A fine-tuner setting that cannot work (one-line message naming the argument)."""


def default_optimizer(use_ema=False, ema_momentum=0.9999):
    """AdamW as the InstructPix2Pix script trains: lr `LEARNING_RATE`, decay 1e-2, clip norm 1.

    Args:
        use_ema: bool. Keep an exponential moving average of the weights (it replaces
            them at the end of `fit`). Defaults to False.
        ema_momentum: float. The moving average's momentum. Defaults to 0.9999.

    Returns:
        A `keras.optimizers.AdamW`.
    """
    return keras.optimizers.AdamW(
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        epsilon=ADAM_EPSILON,
        global_clipnorm=GRADIENT_CLIP_NORM,
        use_ema=use_ema,
        ema_momentum=ema_momentum,
    )


def gray_images(images):
    """The gray version of sRGB photos: L* kept, a* = b* = 0, back to sRGB.

    Args:
        images: tensor. sRGB in [0, 1], float, shape (N, H, W, 3).

    Returns:
        sRGB in [0, 1] (neutral gray of the same L*), float32, shape (N, H, W, 3).
    """
    images = ops.cast(images, "float32")
    l_norm = normalize_l(rgb_to_lightness(images, "channels_last"))
    return model_outputs_to_rgb(l_norm, ops.zeros_like(ops.concatenate([l_norm, l_norm], axis=-1)), "channels_last")


SAMPLING_KEYS = ("steps", "guidance", "image_guidance", "sampler", "seed")


def _sampling_settings(sampling):
    settings = {
        "steps": SAMPLING_STEPS,
        "guidance": TEXT_GUIDANCE,
        "image_guidance": IMAGE_GUIDANCE,
        "sampler": "euler_ancestral",
        "seed": 0,
    }
    unknown = sorted(set(sampling or {}) - set(SAMPLING_KEYS))
    if unknown:
        raise FineTunerError(f"sampling: unknown key {unknown[0]!r} (expected one of: {', '.join(SAMPLING_KEYS)})")
    settings.update({k: v for k, v in (sampling or {}).items() if v is not None})
    return settings


def _network_from_config(key, serialized):
    """A component network from its serialized config (its class known by role, so no registry lookup)."""
    cls = network_classes()[key]
    if serialized.get("class_name") == cls.__name__:
        return cls.from_config(serialized["config"])
    return keras.saving.deserialize_keras_object(serialized)


def _tokenizer_config(tokenizer):
    return {"class_name": type(tokenizer).__name__, "config": dict(tokenizer.get_config())}


def _tokenizer_from_config(serialized):
    from keras_colorize.models.instruct_pix2pix.text import CLIPTokenizer

    if serialized.get("class_name") != CLIPTokenizer.__name__:
        raise FineTunerError(f"tokenizer: unknown tokenizer class {serialized.get('class_name')!r}")
    return CLIPTokenizer.from_config(serialized["config"])


def lora_layers(unet):
    """The U-Net's attention projections that carry a LoRA adapter."""
    return [layer for layer in unet.attention_projections() if getattr(layer, "lora_enabled", False)]


@register
class InstructPix2PixFineTuner(keras.Model):
    """Fine-tunes an InstructPix2Pix U-Net to colorize, from batches of colour photos.

    Batches are sRGB photos in [0, 1], float32, shape (N, H, W, 3) with H and W
    divisible by the latent downsampling of the VAE times the U-Net's (8 * 8 = 64
    at the Stable Diffusion size), e.g. from `keras_colorize.data.make_datasets`;
    no labels. `fit` logs `loss`, `noise_loss` and, with `loss="joint"`,
    `lab_loss`, `noise_weight` and `lab_weight`; `evaluate` (validation) uses
    `VALIDATION_PROMPT` and no conditioning dropout.

    Args:
        components: DiffusionComponents. The U-Net (trained), the VAE encoder and
            decoder and the text encoder (frozen here), and the tokenizer.
        prompts: list of str, str (a prompt file) or None. The training
            instructions, one drawn per image and step. Defaults to None (the
            packaged colorization prompts, `keras_colorize.data.prompts`).
        conditioning_dropout: float in [0, 1/3]. The probability d of each of the
            three dropout bands (prompt only, both, image only). Defaults to
            `CONDITIONING_DROPOUT` (0.05).
        loss: "noise" or "joint". "joint" adds the LAB MSE of the one-step clean
            estimate decoded by the frozen VAE decoder (model space: L/50 - 1,
            ab/128), both terms weighted by learned log-variances s as
            0.5 * exp(-s) * term + 0.5 * s. Defaults to "noise".
        seed: int or None. Seed of the model's `keras.random.SeedGenerator` (noise,
            timesteps, prompts, dropout, posterior samples). Defaults to None.
        lora_rank: int or None. Train rank-r LoRA adapters on the U-Net's attention
            projections only (`keras.layers.Dense.enable_lora`); every other U-Net
            weight is frozen. Defaults to None (the whole U-Net trains).
        remat: bool or None. Rematerialise the U-Net's blocks in the backward pass
            (less memory, more compute): the U-Net is rebuilt with `remat=True` and
            the same weights. Defaults to None (as the U-Net was built).
        sampling: dict or None. Defaults of `predict_rgb` (`steps`, `guidance`,
            `image_guidance`, `sampler`, `seed`), e.g. a run's validation settings.
            Defaults to None (20 Euler-ancestral steps, guidance 7.0, image
            guidance 1.5, seed 0).
        **kwargs: `keras.Model` arguments (`name`, `dtype`).

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.convert.preset import random_components
        >>> from keras_colorize.models.instruct_pix2pix.finetuner import InstructPix2PixFineTuner
        >>> tuner = InstructPix2PixFineTuner(random_components(seed=0, tiny=True), seed=0)  # doctest: +SKIP
        >>> tuner.compile()  # AdamW(5e-6)  # doctest: +SKIP
        >>> tuner.fit(photos, batch_size=4, epochs=1)  # sRGB in [0, 1], (N, 64, 64, 3)  # doctest: +SKIP
        >>> tuner.save_preset("colorize_preset/")  # doctest: +SKIP
    """

    def __init__(
        self,
        components,
        prompts=None,
        conditioning_dropout=CONDITIONING_DROPOUT,
        loss="noise",
        seed=None,
        lora_rank=None,
        remat=None,
        sampling=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(components, DiffusionComponents):
            raise FineTunerError(f"components must be a DiffusionComponents, got {type(components).__name__}")
        if loss not in LOSSES:
            raise FineTunerError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        dropout = float(conditioning_dropout)
        if not 0.0 <= dropout <= 1.0 / 3.0:
            raise FineTunerError(f"conditioning_dropout must be in [0, 1/3] (three bands of d each), got {dropout!r}")
        if lora_rank is not None and (isinstance(lora_rank, bool) or int(lora_rank) != lora_rank or lora_rank < 1):
            raise FineTunerError(f"lora_rank must be a positive integer or None, got {lora_rank!r}")
        if isinstance(prompts, str) or prompts is None:
            from keras_colorize.data.prompts import load_prompts

            prompts = load_prompts(prompts)
        prompts = [str(p) for p in prompts]
        if not prompts:
            raise FineTunerError("prompts must hold at least one prompt")

        unet = components.unet
        if remat is not None and bool(getattr(unet, "remat", False)) != bool(remat):
            unet = _rebuilt_unet(unet, remat=bool(remat))
        self.unet = unet
        self.vae_encoder = components.vae_encoder
        self.vae_decoder = components.vae_decoder
        self.text_encoder = components.text_encoder
        self.tokenizer = components.tokenizer
        for network in (self.vae_encoder, self.vae_decoder, self.text_encoder):
            _freeze(network)
        self.prompts = prompts
        self.conditioning_dropout = dropout
        self.loss_name = loss
        self.seed = None if seed is None else int(seed)
        self.lora_rank = None if lora_rank is None else int(lora_rank)
        self.remat = None if remat is None else bool(remat)
        self.sampling = _sampling_settings(sampling)
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")

        from keras_colorize.models.instruct_pix2pix.schedulers import DDPMScheduler

        self.scheduler = DDPMScheduler()
        alphas = np.asarray(self.scheduler.alphas_cumprod, "float64")
        self._sqrt_alphas = np.sqrt(alphas).astype("float32")
        self._sqrt_one_minus_alphas = np.sqrt(1.0 - alphas).astype("float32")

        if self.lora_rank is not None:
            self.unet.enable_lora(self.lora_rank)

        # The text encoder is frozen: the states of every prompt, of "" (dropped
        # prompt) and of the validation prompt are computed once. They are
        # variables so that a loaded checkpoint restores them with the weights.
        states = self._encode_prompts(prompts + ["", VALIDATION_PROMPT])
        self.prompt_states = self.add_weight(
            shape=(len(prompts),) + states.shape[1:],
            initializer=keras.initializers.Constant(states[: len(prompts)]),
            dtype="float32",
            trainable=False,
            name="prompt_states",
        )
        self.null_state = self.add_weight(
            shape=states.shape[1:],
            initializer=keras.initializers.Constant(states[len(prompts)]),
            dtype="float32",
            trainable=False,
            name="null_state",
        )
        self.validation_state = self.add_weight(
            shape=states.shape[1:],
            initializer=keras.initializers.Constant(states[len(prompts) + 1]),
            dtype="float32",
            trainable=False,
            name="validation_state",
        )
        if loss == "joint":
            self.noise_log_variance = self.add_weight(
                shape=(), initializer="zeros", dtype="float32", name="noise_log_variance"
            )
            self.lab_log_variance = self.add_weight(shape=(), initializer="zeros", dtype="float32", name="lab_log_variance")
        self.noise_loss_tracker = keras.metrics.Mean(name="noise_loss")
        if loss == "joint":
            self.lab_loss_tracker = keras.metrics.Mean(name="lab_loss")
            self.noise_weight_tracker = keras.metrics.Mean(name="noise_weight")
            self.lab_weight_tracker = keras.metrics.Mean(name="lab_weight")
        self.built = True

    # ------------------------------------------------------------------ setup
    def _encode_prompts(self, prompts):
        tokens = np.asarray(self.tokenizer(list(prompts)), "int32")
        states = self.text_encoder(ops.convert_to_tensor(tokens), training=False)
        return ops.convert_to_numpy(ops.cast(states, "float32"))

    def refresh_lora_adapters(self):
        """Give every LoRA adapter whose both factors are zero a fresh random factor A.

        Keras merges LoRA into the kernels when it saves a model and zeroes both
        factors when it loads one; with A = B = 0 the adapter would get no gradient.
        A fresh A (B stays 0) keeps the merged function and lets training go on.
        Called by `fit`; does nothing without LoRA.
        """
        if self.lora_rank is None:
            return
        initializer = keras.initializers.HeUniform(seed=self.seed)
        for layer in lora_layers(self.unet):
            a = ops.convert_to_numpy(layer.lora_kernel_a.value)
            b = ops.convert_to_numpy(layer.lora_kernel_b.value)
            if not a.any() and not b.any():
                layer.lora_kernel_a.assign(initializer(layer.lora_kernel_a.shape, dtype=layer.lora_kernel_a.dtype))

    @property
    def components(self):
        """The (fine-tuned) `DiffusionComponents`."""
        return DiffusionComponents(
            unet=self.unet,
            vae_encoder=self.vae_encoder,
            vae_decoder=self.vae_decoder,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
        )

    # ------------------------------------------------------------------ the pair
    def sample_conditioning(self, batch_size, training=True):
        """Draw the prompt of each image and its conditioning dropout.

        Args:
            batch_size: int. Images in the batch.
            training: bool. False: every image gets the validation prompt and no
                dropout. Defaults to True.

        Returns:
            A dict of `prompt_index` (int32 (N,), into `prompts`; -1 for the
            validation prompt), `drop_prompt` and `drop_image` (bool (N,)).
        """
        n = batch_size
        if not training or self.conditioning_dropout == 0.0:
            none = ops.zeros((n,), "bool")
            index = ops.full((n,), -1, "int32") if not training else self._draw_prompt(n)
            return {"prompt_index": index, "drop_prompt": none, "drop_image": none}
        index = self._draw_prompt(n)
        p = keras.random.uniform((n,), seed=self.seed_generator)
        d = self.conditioning_dropout
        drop_prompt = ops.less(p, 2.0 * d)
        drop_image = ops.logical_and(ops.greater_equal(p, d), ops.less(p, 3.0 * d))
        return {"prompt_index": index, "drop_prompt": drop_prompt, "drop_image": drop_image}

    def _draw_prompt(self, n):
        return ops.cast(keras.random.randint((n,), 0, len(self.prompts), seed=self.seed_generator), "int32")

    def text_states(self, conditioning):
        """The text states of a batch: its prompts', or the "" prompt's where dropped.

        Args:
            conditioning: dict from `sample_conditioning`.

        Returns:
            float32 (N, L, width).
        """
        index = conditioning["prompt_index"]
        null = ops.expand_dims(ops.convert_to_tensor(self.null_state), 0)
        validation = ops.expand_dims(ops.convert_to_tensor(self.validation_state), 0)
        states = ops.take(ops.convert_to_tensor(self.prompt_states), ops.maximum(index, 0), axis=0)
        states = ops.where(ops.reshape(ops.less(index, 0), (-1, 1, 1)), validation, states)
        return ops.where(ops.reshape(conditioning["drop_prompt"], (-1, 1, 1)), null, states)

    def prepare_batch(self, images, training=True):
        """Make the training pair of a batch of photos, on the device.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3).
            training: bool. Draw prompts and dropout (False: the validation prompt,
                no dropout). Defaults to True.

        Returns:
            A dict of float32 tensors: `latents` (the scaled target latents,
            (N, h, w, 4)), `noise` (N(0, 1), same shape), `timesteps` (int32
            (N,)), `noisy_latents`, `conditioning` (unscaled VAE mean of the gray
            image, zeroed where the image is dropped), `text_states` (N, L,
            width), `target_moments` (the photo's posterior: mean and
            log-variance, unscaled) and the draws of `sample_conditioning`.
        """
        from keras_colorize.models.instruct_pix2pix.vae import latent_mean, sample_latents

        images = ops.cast(images, "float32")
        n = ops.shape(images)[0]
        pixels = ops.concatenate([images, gray_images(images)], axis=0) * 2.0 - 1.0
        moments = ops.cast(self.vae_encoder(pixels, training=False), "float32")
        moments = ops.stop_gradient(moments)
        target_moments, gray_moments = moments[:n], moments[n:]
        latents = ops.cast(sample_latents(target_moments, self.seed_generator), "float32") * LATENT_SCALE
        conditioning_latents = ops.cast(latent_mean(gray_moments), "float32")

        noise = keras.random.normal(ops.shape(latents), seed=self.seed_generator)
        timesteps = ops.cast(keras.random.randint((n,), 0, TRAIN_TIMESTEPS, seed=self.seed_generator), "int32")
        noisy = ops.cast(self.scheduler.add_noise(latents, noise, timesteps), "float32")

        draws = self.sample_conditioning(n, training=training)
        keep_image = 1.0 - ops.cast(draws["drop_image"], "float32")
        conditioning_latents = conditioning_latents * ops.reshape(keep_image, (-1, 1, 1, 1))
        return {
            "latents": latents,
            "noise": noise,
            "timesteps": timesteps,
            "noisy_latents": noisy,
            "conditioning": conditioning_latents,
            "text_states": self.text_states(draws),
            "target_moments": target_moments,
            **draws,
        }

    def call(self, images, training=False):
        """Make the pair of a batch and predict its noise.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3).
            training: bool. Training draws (prompts, dropout) or validation ones.
                Defaults to False.

        Returns:
            A dict: `noise` and `noise_pred` (float32 (N, h, w, 4)); with
            `loss="joint"` also `lab_pred` and `lab_true`, model-space L*a*b*
            (L/50 - 1, ab/128), float32 (N, H, W, 3), of the decoded one-step
            clean estimate and of the photo, and the two learned log-variances
            `noise_log_variance` and `lab_log_variance` (scalars).
        """
        batch = self.prepare_batch(images, training=training)
        unet_inputs = ops.concatenate([batch["noisy_latents"], batch["conditioning"]], axis=-1)
        noise_pred = self.unet(
            [unet_inputs, ops.cast(batch["timesteps"], "float32"), batch["text_states"]], training=training
        )
        noise_pred = ops.cast(noise_pred, "float32")
        outputs = {"noise": batch["noise"], "noise_pred": noise_pred}
        if self.loss_name == "joint":
            outputs["lab_pred"] = self._decoded_lab(batch, noise_pred)
            l_norm, ab_norm = rgb_to_model_inputs(ops.cast(images, "float32"), "channels_last")
            outputs["lab_true"] = ops.concatenate([l_norm, ab_norm], axis=-1)
            # Read here, where every backend's step maps the model's variables.
            outputs["noise_log_variance"] = ops.convert_to_tensor(self.noise_log_variance)
            outputs["lab_log_variance"] = ops.convert_to_tensor(self.lab_log_variance)
        return outputs

    def _decoded_lab(self, batch, noise_pred):
        """Model-space L*a*b* of the one-step clean estimate, decoded by the frozen VAE."""
        t = batch["timesteps"]
        sqrt_alpha = ops.reshape(ops.take(ops.convert_to_tensor(self._sqrt_alphas), t), (-1, 1, 1, 1))
        sqrt_one_minus = ops.reshape(ops.take(ops.convert_to_tensor(self._sqrt_one_minus_alphas), t), (-1, 1, 1, 1))
        clean = (batch["noisy_latents"] - sqrt_one_minus * noise_pred) / sqrt_alpha
        decoded = ops.cast(self.vae_decoder(clean / LATENT_SCALE, training=False), "float32")
        rgb = ops.clip((decoded + 1.0) * 0.5, 0.0, 1.0)
        l_norm, ab_norm = rgb_to_model_inputs(rgb, "channels_last")
        return ops.concatenate([l_norm, ab_norm], axis=-1)

    # ------------------------------------------------------------------ losses
    def loss_terms(self, outputs):
        """The loss terms of `call`'s outputs.

        Args:
            outputs: dict from `call`.

        Returns:
            A dict of scalars: `total`, `noise_loss` and, with `loss="joint"`,
            `lab_loss`, `noise_weight` and `lab_weight` (0.5 * exp(-s) of each).
        """
        noise_loss = ops.mean(ops.square(outputs["noise_pred"] - outputs["noise"]))
        if self.loss_name != "joint":
            return {"total": noise_loss, "noise_loss": noise_loss}
        lab_loss = ops.mean(ops.square(outputs["lab_pred"] - outputs["lab_true"]))
        s_noise = outputs["noise_log_variance"]
        s_lab = outputs["lab_log_variance"]
        noise_weight = 0.5 * ops.exp(-s_noise)
        lab_weight = 0.5 * ops.exp(-s_lab)
        total = noise_weight * noise_loss + 0.5 * s_noise + lab_weight * lab_loss + 0.5 * s_lab
        return {
            "total": total,
            "noise_loss": noise_loss,
            "lab_loss": lab_loss,
            "noise_weight": noise_weight,
            "lab_weight": lab_weight,
        }

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The training objective of a batch (`y` is ignored: the photo is its own target).

        Under a TensorFlow distribution strategy the value is divided by the
        replicas in sync, as Keras's own losses are.
        """
        from keras_colorize.training.gradients import replicas_in_sync

        if y_pred is None:
            y_pred = self(x, training=training)
        total = self.loss_terms(y_pred)["total"]
        for extra in self.losses:
            total = total + ops.cast(extra, "float32")
        replicas = replicas_in_sync()
        return total / replicas if replicas > 1 else total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the loss-term trackers (outside the differentiated function).

        Each batch counts with its number of images, as Keras's own `loss` does.
        """
        terms = self.loss_terms(y_pred)
        images = ops.shape(x)[0]
        trackers = [(self.noise_loss_tracker, "noise_loss")]
        if self.loss_name == "joint":
            trackers += [
                (self.lab_loss_tracker, "lab_loss"),
                (self.noise_weight_tracker, "noise_weight"),
                (self.lab_weight_tracker, "lab_weight"),
            ]
        for tracker, name in trackers:
            tracker.update_state(terms[name], sample_weight=images)
        return self.get_metrics_result()

    # ------------------------------------------------------------------ Keras API
    def compile(self, optimizer=None, **kwargs):
        """Configure training.

        Args:
            optimizer: keras.optimizers.Optimizer, str, dict or None. Defaults to
                None: `default_optimizer()`, AdamW(5e-6, weight decay 1e-2,
                epsilon 1e-8, global clip norm 1) as the InstructPix2Pix script;
                pass one with `use_ema=True` for an EMA of the weights.
            **kwargs: `keras.Model.compile` arguments (`jit_compile`,
                `steps_per_execution`, ...); `loss` and `metrics` are not taken
                (the objective is fixed by the `loss` argument of the model).
        """
        for key in ("loss", "metrics"):
            if kwargs.get(key) is not None:
                raise FineTunerError(
                    f"{type(self).__name__}.compile does not take {key}; the objective is set by the model's loss argument"
                )
            kwargs.pop(key, None)
        optimizer = default_optimizer() if optimizer is None else keras.optimizers.get(optimizer)
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Restore `compile()` (and build the optimizer, so its state loads) from a `.keras` file."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(optimizer=config.get("optimizer"))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_compile_config(self):
        if not getattr(self, "compiled", False) or self.optimizer is None:
            return None
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def fit(self, *args, **kwargs):
        """`keras.Model.fit` (after `refresh_lora_adapters`, for a loaded LoRA checkpoint)."""
        self.refresh_lora_adapters()
        return super().fit(*args, **kwargs)

    # ------------------------------------------------------------------ inference
    def pipeline(self, sampler="euler_ancestral"):
        """The sampling pipeline of the current (fine-tuned) components.

        One pipeline per sampler name is kept, so its compiled denoising step is
        reused (it reads the weights as they are when called).

        Args:
            sampler: str. "euler_ancestral" or "ddim". Defaults to "euler_ancestral".

        Returns:
            An `InstructPix2PixPipeline`.
        """
        from keras_colorize.models.instruct_pix2pix.pipeline import InstructPix2PixPipeline

        cache = self.__dict__.setdefault("_pipeline_cache", {})
        if sampler not in cache:
            cache[sampler] = InstructPix2PixPipeline(self.components, sampler=sampler)
        return cache[sampler]

    def predict_rgb(
        self,
        images,
        steps=None,
        guidance=None,
        image_guidance=None,
        seed=None,
        sampler=None,
        prompt=VALIDATION_PROMPT,
        batch_size=4,
    ):
        """Colorize a batch: sample from the gray images, keep each photo's own L*.

        Args:
            images: sRGB in [0, 1], float32, shape (N, H, W, 3) (colour or gray;
                only L* is used), at a size the networks take.
            steps: int or None. Sampling steps. Defaults to None (the model's
                `sampling` settings: `SAMPLING_STEPS`, 20, unless set).
            guidance: float or None. Text guidance scale. Defaults to None
                (`sampling`; `TEXT_GUIDANCE`, 7.0).
            image_guidance: float or None. Image guidance scale. Defaults to None
                (`sampling`; `IMAGE_GUIDANCE`, 1.5).
            seed: int or None. Seed of the sampling noise (batch i uses seed + i).
                Defaults to None (`sampling`; 0).
            sampler: str or None. "euler_ancestral" or "ddim". Defaults to None
                (`sampling`; "euler_ancestral").
            prompt: str. The instruction. Defaults to `VALIDATION_PROMPT`.
            batch_size: int. Images sampled at a time. Defaults to 4.

        Returns:
            NumPy float32 sRGB in [0, 1], shape (N, H, W, 3): the generated a*b*
            with the input's L*.
        """
        from keras_colorize.colorizer import recombine

        chosen = {"steps": steps, "guidance": guidance, "image_guidance": image_guidance, "seed": seed}
        steps, guidance, image_guidance, seed = (
            self.sampling[k] if v is None else v for k, v in chosen.items()
        )
        images = np.asarray(images, "float32")
        pipeline = self.pipeline(self.sampling["sampler"] if sampler is None else sampler)
        gray = ops.convert_to_numpy(gray_images(ops.convert_to_tensor(images)))
        outputs = []
        for number, start in enumerate(range(0, len(images), batch_size)):
            generated = pipeline.generate(
                gray[start : start + batch_size],
                prompt=prompt,
                steps=steps,
                guidance=guidance,
                image_guidance=image_guidance,
                seed=seed + number,
            )
            generated = np.clip(np.asarray(generated, "float32"), 0.0, 1.0)
            _, ab = rgb_to_model_inputs(ops.convert_to_tensor(generated), "channels_last")
            outputs.append(recombine(images[start : start + batch_size], ops.convert_to_numpy(ab)))
        return np.concatenate(outputs, axis=0)

    def save_preset(self, path, overwrite=False):
        """Write the fine-tuned components as a preset directory.

        LoRA adapters are merged into the kernels (Keras's `Dense` saves merged
        weights), so the preset loads into plain components. With EMA, call it
        after `fit` (which leaves the averaged weights in the model).

        Args:
            path: str or Path. The preset directory (`config.json` and one
                `.weights.h5` per network; see `convert.preset.save_preset`).
            overwrite: bool. Replace an existing preset. Defaults to False.

        Returns:
            The path, a `pathlib.Path`.
        """
        from pathlib import Path

        from keras_colorize.models.instruct_pix2pix.convert.preset import save_preset

        metadata = {"fine_tuned": {"loss": self.loss_name, "lora_rank": self.lora_rank, "prompts": len(self.prompts)}}
        return Path(save_preset(path, self.components, overwrite=overwrite, metadata=metadata))

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "components": {
                **{key: keras.saving.serialize_keras_object(getattr(self, key)) for key in NETWORKS},
                "tokenizer": _tokenizer_config(self.tokenizer),
            },
            "prompts": list(self.prompts),
            "conditioning_dropout": self.conditioning_dropout,
            "loss": self.loss_name,
            "seed": self.seed,
            "lora_rank": self.lora_rank,
            "remat": self.remat,
            "sampling": dict(self.sampling),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        parts = dict(config.pop("components"))
        networks = {key: _network_from_config(key, parts[key]) for key in NETWORKS}
        components = DiffusionComponents(tokenizer=_tokenizer_from_config(parts.get("tokenizer")), **networks)
        return cls(components, **config)


def _freeze(network):
    """Make a network and every one of its variables non-trainable.

    The variables are set one by one: a network deserialized with `trainable: false`
    may still hold trainable variables, and on TensorFlow assigning the value an
    attribute already has does not run the `trainable` setter.
    """
    network.trainable = False
    for variable in network.weights:
        variable.trainable = False


def _rebuilt_unet(unet, remat):
    """A copy of a U-Net with another `remat` setting and the same weights."""
    config = dict(unet.get_config())
    if "remat" not in config:
        raise FineTunerError(f"remat: {type(unet).__name__} has no remat setting")
    config["remat"] = remat
    clone = type(unet).from_config(config)
    clone.set_weights(unet.get_weights())
    return clone


__all__ = [
    "LOSSES",
    "FineTunerError",
    "InstructPix2PixFineTuner",
    "default_optimizer",
    "gray_images",
    "lora_layers",
]
