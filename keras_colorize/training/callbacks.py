"""Callbacks of a training run: atomic checkpoints, sample grids, loss curves, NaN guard.

Every file is written atomically: to a temporary file in the same folder, then moved
over the target with `os.replace`, so an interrupted run never leaves a half-written
checkpoint or picture behind.
"""

import csv
import math
from pathlib import Path

import keras
import numpy as np

from keras_colorize.atomic_files import atomic_file, write_json_atomic
from keras_colorize.errors import UserInputError
from keras_colorize.visualization import plot_history, save_comparison_grid


def _is_finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def weights_are_finite(model):
    """True when every variable of `model` holds only finite values."""
    for variable in model.variables:
        value = keras.ops.convert_to_numpy(variable.value)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            return False
    return True


class TerminateOnNonFinite(keras.callbacks.TerminateOnNaN):
    """Stop training when the loss becomes NaN or infinite, and remember where.

    Unlike `keras.callbacks.TerminateOnNaN` it records the (1-based) epoch and batch,
    so the run can report them, prints nothing itself, and also stops when the
    validation loss is not finite (the model then outputs NaN).

    Attributes:
        diverged: dict or None. `{"epoch": int, "batch": int or None, "loss": float,
            "key": "loss" or "val_loss"}` once a loss stopped being finite.
    """

    def __init__(self):
        super().__init__(raise_error=False)
        self.diverged = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not _is_finite(loss) and self.diverged is None:
            self.diverged = {"epoch": self._epoch + 1, "batch": batch + 1, "loss": float(loss), "key": "loss"}
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in ("loss", "val_loss"):
            value = logs.get(key)
            if value is not None and not _is_finite(value) and self.diverged is None:
                self.diverged = {"epoch": epoch + 1, "batch": None, "loss": float(value), "key": key}
                self.model.stop_training = True


def _epoch_is_good(model, logs):
    """An epoch may be saved or drawn only when its losses and the weights are finite."""
    for key in ("loss", "val_loss"):
        value = (logs or {}).get(key)
        if value is not None and not _is_finite(value):
            return False
    return weights_are_finite(model)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Save `last.keras` every epoch and `best.keras` on improvement, atomically.

    The model is saved whole (architecture, weights, optimizer state), so a run can
    resume from `last.keras`. After the checkpoints, a small `state.json` records the
    last completed epoch and the best value; it is written last, so it never points
    at a checkpoint that does not exist. An epoch whose losses (`loss`, `val_loss`)
    or weights are not finite is not saved: the last good checkpoint stays untouched.

    Args:
        directory: str or Path. The folder for `last.keras` and `best.keras`.
        state_path: str or Path or None. Where to write `state.json`. Defaults to
            `directory/../state.json`.
        monitor: str. The log that decides "best", e.g. `"val_loss"`, falling back
            to `"loss"` when absent (unless `required`). Defaults to "val_loss".
        best: float or None. The best value so far (when resuming). Defaults to
            None (none yet).
        best_epoch: int or None. The epoch of `best` (1-based). Defaults to None.
        mode: "min" or "max". Whether lower or higher values are better. Defaults
            to "min".
        required: bool. A monitor missing from the logs is an error (a name the
            user chose) rather than a fall-back to `"loss"`. Defaults to False.
    """

    def __init__(
        self, directory, state_path=None, monitor="val_loss", best=None, best_epoch=None, mode="min", required=False
    ):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.directory = Path(directory)
        self.state_path = Path(state_path) if state_path else self.directory.parent / "state.json"
        self.monitor = monitor
        self.mode = mode
        self.required = required
        self.best = (math.inf if mode == "min" else -math.inf) if best is None else float(best)
        self.best_epoch = best_epoch
        self.last_saved_epoch = None

    def _improves(self, value):
        return float(value) < self.best if self.mode == "min" else float(value) > self.best

    @property
    def last_path(self):
        """Path of `last.keras`, the model after the last completed epoch."""
        return self.directory / "last.keras"

    @property
    def best_path(self):
        """Path of `best.keras`, the model with the best monitored value so far."""
        return self.directory / "best.keras"

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not _epoch_is_good(self.model, logs):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.last_path) as tmp:
            self.model.save(tmp)
        if self.required and self.monitor not in logs:
            raise UserInputError(
                f"train.monitor: {self.monitor!r} is not among the logged values ({', '.join(sorted(logs))})"
            )
        value = logs.get(self.monitor, logs.get("loss"))
        if value is not None and _is_finite(value) and self._improves(value):
            self.best = float(value)
            self.best_epoch = epoch + 1
            with atomic_file(self.best_path) as tmp:
                tmp.write_bytes(self.last_path.read_bytes())
        self.last_saved_epoch = epoch + 1
        write_json_atomic(
            self.state_path,
            {
                "epoch": epoch + 1,
                "monitor": self.monitor,
                "best": self.best if math.isfinite(self.best) else None,
                "best_epoch": self.best_epoch,
            },
        )


class SampleGrid(keras.callbacks.Callback):
    """Draw fixed images colorized after every epoch: `epoch_XXX.png` (1-based).

    Each row is one image; the columns are the gray input (L* kept, a* = b* = 0), the
    prediction and the truth.

    Args:
        images: sRGB in [0, 1], float32, shape (N, H, W, 3), at the model size; or a
            model input dict whose "images" entry is that (instance-aware models).
        directory: str or Path. The output folder.
        tensorboard_dir: str, Path or None. Also log each grid as the TensorBoard
            image `samples` (step: the 1-based epoch) under `tensorboard_dir/samples`
            (needs TensorFlow installed; works with every backend). Defaults to None.
    """

    def __init__(self, images, directory, tensorboard_dir=None):
        super().__init__()
        from keras_colorize.colorizer import gray_baseline

        self.inputs = images
        self.images = np.asarray(images["images"] if isinstance(images, dict) else images, "float32")
        self.gray = gray_baseline(self.images)
        self.directory = Path(directory)
        self.tensorboard_dir = None if tensorboard_dir is None else Path(tensorboard_dir) / "samples"
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if not _epoch_is_good(self.model, logs):
            return
        prediction = self.model.predict_rgb(self.inputs)
        path = self.directory / f"epoch_{epoch + 1:03d}.png"
        with atomic_file(path) as tmp:
            save_comparison_grid(tmp, self.images, prediction, gray=self.gray)
        if self.tensorboard_dir is not None:
            self._log_image(path, epoch + 1)

    def _log_image(self, path, step):
        import tensorflow as tf  # TensorBoard's writer, also under the JAX and PyTorch backends
        from PIL import Image

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))
        with Image.open(path) as image:
            grid = np.asarray(image.convert("RGB"))
        with self._writer.as_default():
            tf.summary.image("samples", grid[None], step=step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_history(path):
    """Read a Keras `CSVLogger` file into columns.

    Args:
        path: str or Path. The CSV file (missing: empty history).

    Returns:
        A dict mapping each column name to a list of floats (NaN where empty);
        the `"epoch"` column is converted to 1-based epoch numbers.
    """
    path = Path(path)
    history = {}
    if not path.is_file():
        return history
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key is None:
                    continue
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                history.setdefault(key, []).append(number)
    if "epoch" in history:
        history["epoch"] = [int(e) + 1 for e in history["epoch"]]
    return history


def truncate_history(path, epochs):
    """Keep only the rows of the first `epochs` epochs of a `CSVLogger` file (atomically).

    Used when resuming, so epochs after the last checkpoint (an interrupted or
    diverged epoch) are not listed twice.

    Args:
        path: str or Path. The CSV file; nothing happens when it is missing.
        epochs: int. The number of completed epochs to keep.
    """
    path = Path(path)
    if not path.is_file():
        return
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else None
    kept = [r for r in body if column is None or (r and r[column].strip().isdigit() and int(r[column]) < epochs)]
    if len(kept) == len(body):
        return
    with atomic_file(path) as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(kept)


class LossCurve(keras.callbacks.Callback):
    """Redraw the loss curves (by default `loss` and `val_loss` per epoch) after every epoch.

    Args:
        path: str or Path. The image file, e.g. `run/loss_curve.png`.
        history: dict or None. Earlier epochs (as returned by `read_history`), when
            resuming. Defaults to None.
        title: str or None. The figure title. Defaults to None.
        keys: sequence of str. The logs to draw. Defaults to ("loss", "val_loss").
    """

    def __init__(self, path, history=None, title=None, keys=("loss", "val_loss")):
        super().__init__()
        self.path = Path(path)
        self.title = title
        self.keys = tuple(keys)
        self.history = {k: list(v) for k, v in (history or {}).items() if k in ("epoch",) + self.keys}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epochs = self.history.setdefault("epoch", [])
        for key in self.keys:
            column = self.history.setdefault(key, [])
            column.extend([math.nan] * (len(epochs) - len(column)))
            value = logs.get(key)
            column.append(float(value) if value is not None else math.nan)
        epochs.append(epoch + 1)
        with atomic_file(self.path) as tmp:
            plot_history(self.history, tmp, title=self.title, keys=self.keys)
