"""Sampled validation of an InstructPix2Pix fine-tuning run: colorize held-out photos as it trains.

The noise MSE says little about the pictures a diffusion model makes, so every few
steps the held-out photos are colorized with the dual-guidance sampler (their gray
version and "colorize the image"), the generated a*b* recombined with each photo's
own L* (the evaluation protocol of `keras_colorize.evaluation`), and scored against
the photos in sRGB and CIE L*a*b*.
"""

import json
import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_colorize.atomic_files import atomic_file, write_json_atomic
from keras_colorize.color import rgb_to_lab
from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import (
    IMAGE_GUIDANCE,
    SAMPLING_STEPS,
    TEXT_GUIDANCE,
    VALIDATION_PROMPT,
)

METRIC_NAMES = ("lab_mse", "psnr", "ssim", "mae")
"""The logged metrics: L*a*b* MSE, PSNR (dB), SSIM and MAE (0-255 scale)."""

LOG_PREFIX = "sampled_"
"""Prefix of the metrics added to each epoch's logs (`sampled_lab_mse`, ...)."""


def lab_mse(y_true, y_pred):
    """Mean squared error in CIE L*a*b* per image (L* in [0, 100], a* and b* in their own units).

    Args:
        y_true: sRGB in [0, 1], float, shape (N, H, W, 3).
        y_pred: sRGB in [0, 1], float, shape (N, H, W, 3).

    Returns:
        NumPy float32 of shape (N,).
    """
    true_lab = rgb_to_lab(ops.convert_to_tensor(np.asarray(y_true, "float32")), "channels_last")
    pred_lab = rgb_to_lab(ops.convert_to_tensor(np.asarray(y_pred, "float32")), "channels_last")
    return np.asarray(ops.convert_to_numpy(ops.mean(ops.square(true_lab - pred_lab), axis=(1, 2, 3))), "float32")


def image_metrics(y_true, y_pred):
    """The sampled-validation metrics of predictions against the photos, averaged over images.

    Args:
        y_true: sRGB in [0, 1], float, shape (N, H, W, 3), H and W >= 11.
        y_pred: sRGB in [0, 1], float, shape (N, H, W, 3).

    Returns:
        A dict of floats: `lab_mse` (CIE L*a*b* units squared), `psnr` (dB, data
        range 1), `ssim` and `mae` (0-255 scale), as `keras_colorize.metrics` defines them.
    """
    from keras_colorize.metrics import mean_absolute_error_255, psnr, ssim

    y_true = np.asarray(y_true, "float32")
    y_pred = np.asarray(y_pred, "float32")
    values = {
        "lab_mse": lab_mse(y_true, y_pred),
        "psnr": ops.convert_to_numpy(psnr(y_true, y_pred)),
        "ssim": ops.convert_to_numpy(ssim(y_true, y_pred)),
        "mae": ops.convert_to_numpy(mean_absolute_error_255(y_true, y_pred)),
    }
    return {name: float(np.mean(values[name])) for name in METRIC_NAMES}


class SampledValidation(keras.callbacks.Callback):
    """Colorize held-out photos every `every_n_steps` training steps; log metrics and a grid.

    The photos' gray versions are sampled with the model's dual-guidance pipeline
    (`InstructPix2PixFineTuner.predict_rgb`: prompt "colorize the image", the
    generated a*b* with each photo's own L*). Before training, and then every
    `every_n_steps` optimizer steps, it writes `output_dir/step_XXXXXXX.png` (gray
    input, prediction, truth) and the history `output_dir/metrics.json` (both
    atomically), and at every epoch end adds the latest values to the logs as
    `sampled_lab_mse`, `sampled_psnr`, `sampled_ssim` and `sampled_mae` (so they
    reach `history.csv`). `metrics.json` also holds the gray baseline (a* = b* = 0).

    Args:
        images: sRGB in [0, 1], float32, shape (N, H, W, 3), at a size the model
            takes (the held-out photos).
        every_n_steps: int. Optimizer steps between two samplings.
        output_dir: str or Path. Folder of the grids and `metrics.json`.
        steps: int. Sampling steps. Defaults to `SAMPLING_STEPS` (20).
        guidance: float. Text guidance scale. Defaults to `TEXT_GUIDANCE` (7.0).
        image_guidance: float. Image guidance scale. Defaults to `IMAGE_GUIDANCE` (1.5).
        seed: int. Seed of the sampling noise (the same at every sampling, so the
            grids show the model change, not the noise). Defaults to 0.
        sampler: str. "euler_ancestral" or "ddim". Defaults to "euler_ancestral".
        prompt: str. The instruction. Defaults to `VALIDATION_PROMPT`.
        batch_size: int. Images sampled at a time. Defaults to 4.

    Examples:
        >>> from keras_colorize.models.instruct_pix2pix.validation import SampledValidation
        >>> callback = SampledValidation(held_out, every_n_steps=500, output_dir="run/validation")  # doctest: +SKIP
        >>> tuner.fit(train, callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(
        self,
        images,
        every_n_steps,
        output_dir,
        steps=SAMPLING_STEPS,
        guidance=TEXT_GUIDANCE,
        image_guidance=IMAGE_GUIDANCE,
        seed=0,
        sampler="euler_ancestral",
        prompt=VALIDATION_PROMPT,
        batch_size=4,
    ):
        super().__init__()
        images = np.asarray(images, "float32")
        if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
            raise UserInputError(f"SampledValidation: images must be sRGB of shape (N, H, W, 3), got {images.shape}")
        if isinstance(every_n_steps, bool) or int(every_n_steps) != every_n_steps or every_n_steps < 1:
            raise UserInputError(f"SampledValidation: every_n_steps must be a positive integer, got {every_n_steps!r}")
        from keras_colorize.colorizer import gray_baseline

        self.images = np.clip(images, 0.0, 1.0)
        self.gray = gray_baseline(self.images)
        self.every_n_steps = int(every_n_steps)
        self.output_dir = Path(output_dir)
        self.steps = int(steps)
        self.guidance = float(guidance)
        self.image_guidance = float(image_guidance)
        self.seed = int(seed)
        self.sampler = sampler
        self.prompt = prompt
        self.batch_size = int(batch_size)
        self.records = []
        self.latest = None
        self.gray_baseline = image_metrics(self.images, self.gray)
        self._step = 0

    @property
    def metrics_path(self):
        """Path of `metrics.json`."""
        return self.output_dir / "metrics.json"

    def grid_path(self, step):
        """Path of the grid of optimizer step `step`."""
        return self.output_dir / f"step_{int(step):07d}.png"

    def on_train_begin(self, logs=None):
        self._step = int(ops.convert_to_numpy(self.model.optimizer.iterations)) if self.model.optimizer else 0
        self.records = [r for r in self._read_records() if r["step"] < self._step]
        self.sample(self._step)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every_n_steps == 0:
            self.sample(self._step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.latest is not None:
            logs.update({LOG_PREFIX + name: self.latest[name] for name in METRIC_NAMES})

    def _read_records(self):
        if not self.metrics_path.is_file():
            return []
        try:
            data = json.loads(self.metrics_path.read_text(encoding="utf-8"))
            return [dict(r) for r in data.get("history", []) if isinstance(r.get("step"), int)]
        except (OSError, ValueError, AttributeError, TypeError):
            return []

    def sample(self, step):
        """Colorize the photos with the current weights; write the grid and the metrics.

        Args:
            step: int. The optimizer step the files are named after.

        Returns:
            A dict: `step` and the metrics of `METRIC_NAMES`.
        """
        from keras_colorize.visualization import save_comparison_grid

        prediction = self.model.predict_rgb(
            self.images,
            steps=self.steps,
            guidance=self.guidance,
            image_guidance=self.image_guidance,
            seed=self.seed,
            sampler=self.sampler,
            prompt=self.prompt,
            batch_size=self.batch_size,
        )
        values = image_metrics(self.images, prediction)
        record = {"step": int(step), **{k: (v if math.isfinite(v) else None) for k, v in values.items()}}
        self.latest = values
        self.records = [r for r in self.records if r["step"] != record["step"]] + [record]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.grid_path(step)) as tmp:
            save_comparison_grid(tmp, self.images, prediction, gray=self.gray)
        write_json_atomic(
            self.metrics_path,
            {
                "prompt": self.prompt,
                "sampling": {
                    "steps": self.steps,
                    "guidance": self.guidance,
                    "image_guidance": self.image_guidance,
                    "sampler": self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__,
                    "seed": self.seed,
                },
                "images": int(len(self.images)),
                "image_size": list(self.images.shape[1:3]),
                "metrics": {
                    "lab_mse": "mean squared CIE L*a*b* difference (L* 0-100, a*, b*), per pixel and channel",
                    "psnr": "dB, sRGB in [0, 1], data range 1",
                    "ssim": "Gaussian window, sigma 1.5, on RGB",
                    "mae": "mean absolute sRGB difference on the 0-255 scale",
                },
                "gray_baseline": self.gray_baseline,
                "history": self.records,
            },
        )
        return record


__all__ = ["LOG_PREFIX", "METRIC_NAMES", "SampledValidation", "image_metrics", "lab_mse"]
