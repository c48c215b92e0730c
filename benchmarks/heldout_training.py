"""Train a U-Net on a photo folder for a fixed wall-clock budget; score held-out photos.

Prints one JSON line: the held-out ab mean squared error (model space, ab / 128) of the
trained colorizer and of the gray baseline (ab = 0), PSNR for both, and the timings.

Usage:
    KERAS_BACKEND=tensorflow python -m benchmarks.heldout_training --data PHOTOS [--minutes 30]
"""

import argparse
import json
import time

import keras
import numpy as np

from keras_colorize import Colorizer
from keras_colorize.color import rgb_to_model_inputs
from keras_colorize.colorizer import gray_baseline
from keras_colorize.data import ImageFolder, split_files
from keras_colorize.models import get_model


class TimeBudget(keras.callbacks.Callback):
    """Stop training once `seconds` of wall-clock time have passed (checked per batch)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.started = None
        self.epochs_done = 0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.started > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done = epoch + 1


def heldout_scores(colorizer, dataset):
    """Mean ab MSE (model space) and PSNR over every held-out image, model and gray baseline."""
    from keras_colorize.metrics import psnr

    ab_model, ab_gray, psnr_model, psnr_gray = [], [], [], []
    for index in range(len(dataset)):
        images = dataset[index]
        _, ab_true = rgb_to_model_inputs(images, "channels_last")
        ab_true = keras.ops.convert_to_numpy(ab_true)
        ab_pred = colorizer.predict(images, verbose=0)
        ab_model.extend(np.mean((ab_pred - ab_true) ** 2, axis=(1, 2, 3)))
        ab_gray.extend(np.mean(ab_true**2, axis=(1, 2, 3)))
        psnr_model.extend(keras.ops.convert_to_numpy(psnr(images, colorizer.predict_rgb(images))))
        psnr_gray.extend(keras.ops.convert_to_numpy(psnr(images, gray_baseline(images))))
    return {
        "images": len(ab_model),
        "ab_mse_model": float(np.mean(ab_model)),
        "ab_mse_gray": float(np.mean(ab_gray)),
        "psnr_model": float(np.mean(psnr_model)),
        "psnr_gray": float(np.mean(psnr_gray)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of colour photos")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    parser.add_argument("--model", default="UNetV2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--loss", default="l2")
    parser.add_argument("--heldout-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    train_files, heldout_files = split_files(args.data, args.heldout_fraction, seed=args.seed)
    train = ImageFolder(
        train_files, args.image_size, args.batch_size, training=True, seed=args.seed, resize_to=args.image_size + 16
    )
    heldout = ImageFolder(heldout_files, args.image_size, args.batch_size, training=False)
    colorizer = Colorizer(get_model(args.model), image_size=args.image_size)
    colorizer.compile(optimizer=keras.optimizers.Adam(args.learning_rate, beta_1=0.5), loss=args.loss, metrics=[])

    budget = TimeBudget(args.minutes * 60)
    started = time.perf_counter()
    history = colorizer.fit(train, epochs=10_000, callbacks=[budget], shuffle=False, verbose=2)
    train_seconds = time.perf_counter() - started
    result = {
        "backend": keras.backend.backend(),
        "model": args.model,
        "parameters": colorizer.count_params(),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "loss": args.loss,
        "train_images": len(train.files),
        "train_summary": train.summary,
        "epochs": budget.epochs_done,
        "steps": int(colorizer.optimizer.iterations),
        "train_seconds": round(train_seconds, 1),
        "final_train_loss": float(history.history["loss"][-1]),
        **heldout_scores(colorizer, heldout),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
