"""A training run from a recipe: the run directory, the callbacks, resuming.

A run directory holds:

- `recipe.yaml`: the resolved recipe (base merged, `--set` overrides and defaults applied);
- `environment.json`: the backend and the versions of Python, Keras, the backend library
  and NumPy;
- `checkpoints/last.keras` (every epoch) and `checkpoints/best.keras` (lowest `val_loss`,
  or `loss` without validation data): whole models, optimizer state included;
- `state.json`: the last completed epoch and the best value, written after the checkpoints;
- `history.csv`: one row per epoch (Keras `CSVLogger`);
- `loss_curve.png`: the losses per epoch, redrawn every epoch;
- `samples/epoch_XXX.png`: a few fixed images (validation images when there are any)
  as gray input, prediction and truth, after every epoch.
"""

import json
import math
import platform
import sys
from pathlib import Path

from keras_colorize.errors import UserInputError

RUN_FILES = ("recipe.yaml", "environment.json", "state.json", "history.csv", "checkpoints")


class RunDirectoryError(UserInputError):
    """The run directory cannot be used (it holds a run already, or nothing to resume)."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the last good checkpoint."""


def environment_info():
    """The software a run used: backend, Python, Keras, the backend library, NumPy.

    Returns:
        A JSON-serialisable dict.
    """
    import keras
    import numpy

    import keras_colorize

    backend = keras.backend.backend()
    info = {
        "backend": backend,
        "python": platform.python_version(),
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "keras_colorize": keras_colorize.__version__,
        "platform": platform.platform(),
    }
    module_names = {"tensorflow": ["tensorflow"], "jax": ["jax", "jaxlib"], "torch": ["torch"]}
    for name in module_names.get(backend, []):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        info[name] = getattr(module, "__version__", "unknown")
    try:
        info["devices"] = [str(d) for d in keras.distribution.list_devices()]
    except Exception:  # the distribution API is not available on every backend build
        pass
    return info


def default_run_dir(recipe):
    """`train.run_dir`, or `runs/<recipe name>` when it is null."""
    run_dir = recipe["train"].get("run_dir")
    return Path(run_dir) if run_dir else Path("runs") / str(recipe.get("name") or "run")


def read_state(run_dir):
    """The `state.json` of a run directory, or None when there is none.

    Args:
        run_dir: str or Path. The run directory.

    Returns:
        A dict with `epoch` (completed epochs), `monitor`, `best` and `best_epoch`,
        or None.

    Raises:
        RunDirectoryError: when the file exists but cannot be read.
    """
    path = Path(run_dir) / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        raise RunDirectoryError(f"{path}: unreadable run state; the run cannot be resumed") from None
    return state


def _check_run_dir(run_dir, resume):
    if not resume:
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            what = "holds a run" if any((run_dir / name).exists() for name in RUN_FILES) else "is not empty"
            raise RunDirectoryError(
                f"{run_dir}: run directory {what}; pass --resume to continue it, or choose another --run-dir"
            )
        return None
    last = run_dir / "checkpoints" / "last.keras"
    state = read_state(run_dir)
    if state is None or not last.is_file():
        raise RunDirectoryError(f"{run_dir}: nothing to resume (no checkpoints/last.keras and state.json)")
    return state


def _fixed_images(dataset, count, image_size):
    """The first `count` images of a dataset, centre-cropped: sRGB in [0, 1], (N, S, S, 3)."""
    import numpy as np

    from keras_colorize.data import center_crop

    count = min(count, len(dataset.files))
    crops = [center_crop(dataset.resized_image(i), image_size) for i in range(count)]
    return np.stack(crops).astype("float32") / 255.0


def _apply_learning_rate(colorizer, recipe):
    """On resume, the recipe's learning rate replaces the checkpoint's (the rest of the
    optimizer state, such as moments and the step count, comes from the checkpoint)."""
    import keras

    wanted = recipe["optimizer"].get("learning_rate")
    optimizer = colorizer.optimizer
    if wanted is None or optimizer is None:
        return
    if not isinstance(optimizer.get_config().get("learning_rate"), (int, float)):
        return  # a learning-rate schedule is part of the checkpoint
    current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    if not math.isclose(current, float(wanted), rel_tol=1e-6):
        optimizer.learning_rate = float(wanted)
        _say(f"learning rate {current:g} (checkpoint) -> {float(wanted):g} (recipe)")


def _first_batches(dataset, steps):
    """A view of a `PyDataset` that gives the first `steps` batches of each epoch.

    The dataset's own epoch logic (a new shuffle and new crops every epoch) keeps
    working, so every epoch sees different batches. With more steps than batches,
    batches are reused from the start of the epoch.
    """
    import keras

    class FirstBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(
                workers=dataset.workers,
                use_multiprocessing=dataset.use_multiprocessing,
                max_queue_size=dataset.max_queue_size,
            )

        def __len__(self):
            return steps

        def __getitem__(self, index):
            return dataset[index % len(dataset)]

        def on_epoch_begin(self):
            dataset.on_epoch_begin()

        def on_epoch_end(self):
            dataset.on_epoch_end()

    return FirstBatches()


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _say(message):
    print(message, flush=True)


def run_training(recipe, run_dir=None, resume=False, overrides=(), verbose="auto"):
    """Train the Colorizer a recipe describes, in a run directory.

    Everything that can be checked is checked before the run directory is created:
    the recipe, the data folders, the images, the model. A run directory that already
    holds files is never overwritten; `resume=True` continues the run in it from
    `checkpoints/last.keras` (model and optimizer state) at the epoch after the last
    completed one, up to `train.epochs` in total; the recipe's data, epochs and
    learning rate apply, the model and the rest of the optimizer state come from the
    checkpoint.

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe, a mapping, a YAML file or a
            built-in recipe name.
        run_dir: str, Path or None. The run directory. Defaults to None
            (`train.run_dir`, else `runs/<recipe name>`).
        resume: bool. Continue the run in `run_dir`. Defaults to False.
        overrides: iterable of str. `"section.key=value"` overrides. Defaults to ().
        verbose: "auto", 0, 1 or 2. Keras progress output. Defaults to "auto".

    Returns:
        The run directory, a `pathlib.Path`.

    Raises:
        RecipeError: a problem in the recipe or the data (nothing is written).
        RunDirectoryError: the run directory holds a run (without `resume`), or has
            nothing to resume.
        TrainingDivergedError: the loss became NaN or infinite; the last good
            checkpoint is kept.

    Example:
    >>> from keras_colorize.training import run_training
    >>> run_dir = run_training("quickstart", overrides=["train.epochs=1"])  # doctest: +SKIP
    """
    import keras

    from keras_colorize.colorizer import load_colorizer
    from keras_colorize.recipes import build_colorizer, build_datasets, check_data_paths, load_recipe
    from keras_colorize.training.callbacks import (
        AtomicCheckpoint,
        LossCurve,
        SampleGrid,
        TerminateOnNonFinite,
        atomic_file,
        read_history,
        truncate_history,
        write_json_atomic,
    )

    recipe = load_recipe(recipe, overrides=overrides)
    check_data_paths(recipe)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    state = _check_run_dir(run_dir, resume)
    epochs = recipe["train"]["epochs"]
    initial_epoch = int(state["epoch"]) if state else 0
    if initial_epoch >= epochs:
        _say(f"{run_dir}: already trained {initial_epoch} of {_plural(epochs, 'epoch')}; nothing to do")
        return run_dir

    keras.utils.set_random_seed(recipe["train"]["seed"])
    train_set, validation_set = build_datasets(recipe)
    _say(train_set.summary)
    if validation_set is not None:
        _say(validation_set.summary)
    if resume:
        colorizer = load_colorizer(run_dir / "checkpoints" / "last.keras")
        _apply_learning_rate(colorizer, recipe)
        for dataset in (train_set, validation_set):
            if dataset is not None:
                dataset.epoch = initial_epoch
    else:
        colorizer = build_colorizer(recipe)

    image_size = recipe["colorizer"]["image_size"]
    samples_from = validation_set if validation_set is not None else train_set
    sample_images = _fixed_images(samples_from, recipe["train"]["num_samples"], image_size)

    # Everything is checked: from here on the run directory is written.
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    with atomic_file(run_dir / "recipe.yaml") as tmp:
        tmp.write_text(recipe.to_yaml(), encoding="utf-8")
    write_json_atomic(run_dir / "environment.json", environment_info())
    history_path = run_dir / "history.csv"
    if resume:
        truncate_history(history_path, initial_epoch)

    monitor = "val_loss" if validation_set is not None else "loss"
    guard = TerminateOnNonFinite()
    checkpoint = AtomicCheckpoint(
        run_dir / "checkpoints",
        state_path=run_dir / "state.json",
        monitor=monitor,
        best=(state or {}).get("best") if (state or {}).get("monitor", monitor) == monitor else None,
        best_epoch=(state or {}).get("best_epoch"),
    )
    callbacks = [
        guard,
        checkpoint,
        keras.callbacks.CSVLogger(str(history_path), append=resume),
        LossCurve(
            run_dir / "loss_curve.png",
            history=read_history(history_path) if resume else None,
            title=f"{recipe.get('name', 'run')}: {recipe['model']['name']}, {recipe['colorizer']['loss']} loss",
        ),
        SampleGrid(sample_images, run_dir / "samples"),
    ]

    action = f"resuming at epoch {initial_epoch + 1}" if resume else "training"
    _say(
        f"{action}: {recipe['model']['name']} ({colorizer.generator.count_params():,} parameters) "
        f"at {image_size}x{image_size}, {_plural(epochs, 'epoch')}, backend {keras.backend.backend()}; "
        f"run directory {run_dir}"
    )
    steps = recipe["train"]["steps_per_epoch"]
    colorizer.fit(
        _first_batches(train_set, steps) if steps else train_set,
        validation_data=validation_set,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        shuffle=False,
        verbose=verbose,
    )

    if guard.diverged is not None:
        what = "validation loss" if guard.diverged.get("key") == "val_loss" else "loss"
        where = f"epoch {guard.diverged['epoch']}"
        if guard.diverged["batch"] is not None:
            where += f", batch {guard.diverged['batch']}"
        if checkpoint.last_path.is_file():
            saved = read_state(run_dir) or {}
            kept = f"the last good checkpoint {checkpoint.last_path} (epoch {saved.get('epoch', '?')}) is unchanged"
        else:
            kept = "no checkpoint was written"
        raise TrainingDivergedError(
            f"training diverged: the {what} became {guard.diverged['loss']} in {where}; {kept} "
            f"(try a lower optimizer.learning_rate)"
        )
    best = checkpoint.best
    best_text = f"best {monitor} {best:.5g} at epoch {checkpoint.best_epoch}" if math.isfinite(best) else "no best"
    _say(f"done: {_plural(epochs, 'epoch')}, {best_text}; checkpoints in {run_dir / 'checkpoints'}")
    return run_dir


__all__ = [
    "RunDirectoryError",
    "TrainingDivergedError",
    "default_run_dir",
    "environment_info",
    "read_state",
    "run_training",
]
