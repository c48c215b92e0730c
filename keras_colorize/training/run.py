"""A training run from a recipe: the run directory, the callbacks, resuming.

A run directory holds:

- `recipe.yaml`: the resolved recipe (base merged, `--set` overrides and defaults applied);
- `environment.json`: the backend and the versions of Python, Keras, the backend library
  and NumPy;
- `checkpoints/last.keras` (every epoch) and `checkpoints/best.keras`, chosen by
  `recipes.builder.checkpoint_monitor`: `train.monitor` when the recipe sets it, else
  with validation data the lowest `val_lpips` (the evaluation's LPIPS, which does not
  reward gray predictions as per-pixel losses on ab do; when the LPIPS weights can be
  had), else the kind's loss: `val_loss` (or `loss` without validation data), for an
  adversarial trainer the reconstruction term `val_g_rec` or `g_rec` (its combined
  loss does not measure quality); whole models (a trainer holds both networks),
  optimizer states included;
- `state.json`: the last completed epoch and the best value, written after the checkpoints;
- `history.csv`: one row per epoch (Keras `CSVLogger`);
- `loss_curve.png`: the losses per epoch, redrawn every epoch;
- `samples/epoch_XXX.png`: a few fixed images (validation images when there are any)
  as gray input, prediction and truth, after every epoch;
- `tensorboard/` (with `train.tensorboard`): TensorBoard logs of every logged value
  per epoch and of the sample grids.

InstructPix2Pix fine-tuning (`model.name: InstructPix2Pix`) also writes `preset/`, the
fine-tuned components as a preset folder, when training ends, and with
`finetune.validation.every_n_steps` the sampled validation of the held-out images,
`validation/step_XXXXXXX.png` and `validation/metrics.json`.
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


def fixed_images(dataset, count, image_size):
    """The first `count` images of a dataset, centre-cropped: sRGB in [0, 1], (N, S, S, 3).

    The fixed inputs of a run's sample grids and sampled validation.
    """
    import numpy as np

    from keras_colorize.data import center_crop

    count = min(count, len(dataset.files))
    crops = [center_crop(dataset.resized_image(i), image_size) for i in range(count)]
    return np.stack(crops).astype("float32") / 255.0


def _apply_learning_rate(model, plan):
    """On resume, the recipe's learning rates replace the checkpoint's (the rest of the
    optimizer state, such as moments and the step count, comes from the checkpoint)."""
    import keras

    recipe = plan.recipe
    for section, optimizer in plan.optimizers(model):
        wanted = recipe[section].get("learning_rate")
        if wanted is None or optimizer is None:
            continue
        if not isinstance(optimizer.get_config().get("learning_rate"), (int, float)):
            continue  # a learning-rate schedule is part of the checkpoint
        current = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if not math.isclose(current, float(wanted), rel_tol=1e-6):
            optimizer.learning_rate = float(wanted)
            say(f"{section}.learning_rate {current:g} (checkpoint) -> {float(wanted):g} (recipe)")


def _load_run_checkpoint(path, wanted):
    """The model of `checkpoints/last.keras`, checked to be a `wanted` (class name)."""
    from keras_colorize.loading import load_checkpoint

    model = load_checkpoint(path)
    if type(model).__name__ != wanted:
        raise RunDirectoryError(f"{path}: holds a {type(model).__name__}, but the recipe trains a {wanted}")
    return model


def _tensorboard_callbacks(run_dir):
    """Keras's TensorBoard callback (per-epoch values) for `run_dir/tensorboard`."""
    import importlib.util

    import keras

    from keras_colorize.quiet_import import import_quietly

    try:
        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError("tensorboard")
        import_quietly("tensorflow")  # the summary writer
    except ImportError:
        raise UserInputError(
            "train.tensorboard needs TensorFlow and TensorBoard installed (any backend): "
            "pip install 'keras-colorize[tensorboard]', or set train.tensorboard: false"
        ) from None
    return [keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False)]


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


def loss_text(loss):
    """A recipe's `colorizer.loss` in words: "huber", or "ab_classification + 0.5 colorfulness"."""
    if isinstance(loss, str):
        return loss
    return " + ".join(name if weight == 1 else f"{weight:g} {name}" for name, weight in loss.items())


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def say(message):
    """Print one line of a run's progress at once."""
    print(message, flush=True)


class RunPlan:
    """What one run directory trains: how to get its data and model, and how to show them.

    Each kind of training makes the plans of its recipes (`TrainingKind.plan`,
    `keras_colorize.recipes.kinds`); instance-aware training makes one per stage.

    Args:
        recipe: Recipe. The (stage) recipe written to the run directory.
        datasets: callable returning `(train, validation or None)`.
        build: callable `build(steps_per_epoch)` returning the compiled model.
        model_class: str. The class name a resumed `last.keras` must hold.
        description: callable `description(model)`, one line naming the networks.
        sample_inputs: callable `sample_inputs(dataset, count)`: the fixed inputs of the
            sample grids (sRGB in [0, 1], (count, S, S, 3), or a model input dict whose
            "images" are that).
        curves: list of str. The logs drawn in `loss_curve.png`.
        monitor: callable `monitor(has_validation)`: the kind's own log for choosing
            `best.keras` (its loss), used when `recipes.builder.checkpoint_monitor`
            does not choose LPIPS or `train.monitor`.
        title: str. The title of `loss_curve.png`.
        callbacks: callable or None. `callbacks(run_dir, train_set, validation_set)`
            returns extra Keras callbacks, run before the history is logged (their
            epoch logs reach `history.csv`). Defaults to None.
        finish: callable or None. `finish(model, run_dir)`, called after a run that
            did not diverge (e.g. to export the trained model). Defaults to None.
        phases: callable or None. `phases(epochs)` returns the run's phases as
            `(end_epoch, prepare)` pairs in order, `prepare(model, steps_per_epoch)`
            readying the model (e.g. unfreezing an encoder and compiling again)
            before it trains the epochs up to `end_epoch`; it must do nothing when
            the model is already ready (a resumed one). Defaults to None (one
            phase).
        optimizers: callable or None. `optimizers(model)` returns `(recipe section,
            optimizer)` pairs, whose learning rates the recipe sets on resume.
            Defaults to None (the model's `optimizer`, from the `optimizer` section).
    """

    def __init__(
        self,
        recipe,
        datasets,
        build,
        model_class,
        description,
        sample_inputs,
        curves,
        monitor,
        title,
        callbacks=None,
        finish=None,
        phases=None,
        optimizers=None,
    ):
        self.recipe = recipe
        self.datasets = datasets
        self.build = build
        self.model_class = model_class
        self.description = description
        self.sample_inputs = sample_inputs
        self.curves = curves
        self.monitor = monitor
        self.title = title
        self.callbacks = callbacks
        self.finish = finish
        self.phases = phases or (lambda epochs: [(epochs, None)])
        self.optimizers = optimizers or (lambda model: [("optimizer", model.optimizer)])


def fit_run(plan, run_dir, resume=False, verbose="auto"):
    """Train a `RunPlan` in a run directory: checks, callbacks, checkpoints, resume.

    The recipe's `train.mixed_precision` (Keras's global dtype policy, restored
    afterwards) and `train.distribution` (data-parallel on all local devices) hold
    while the model is built or loaded, compiled and fitted.

    Args:
        plan: RunPlan. What to train.
        run_dir: Path. The run directory.
        resume: bool. Continue the run in `run_dir`. Defaults to False.
        verbose: "auto", 0, 1 or 2. Keras progress output. Defaults to "auto".

    Returns:
        The run directory, a `pathlib.Path`.

    Raises:
        RecipeError, RunDirectoryError, TrainingDivergedError: as `run_training`.
        DistributionError, PrecisionError: a distribution or precision policy that
            cannot run on this backend.
    """
    from keras_colorize.training.distribution import check_distribution, data_parallel
    from keras_colorize.training.precision import check_policy, precision_policy

    train = plan.recipe["train"]
    policy, distribution = train.get("mixed_precision"), train.get("distribution")
    check_policy(policy)
    check_distribution(distribution)
    with precision_policy(policy), data_parallel(distribution, batch_size=train["batch_size"], say=say):
        return _fit_run(plan, run_dir, resume, verbose)


def _fit_run(plan, run_dir, resume, verbose):
    import keras

    from keras_colorize.recipes.builder import checkpoint_monitor
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

    recipe = plan.recipe
    run_dir = Path(run_dir)
    state = _check_run_dir(run_dir, resume)
    epochs = recipe["train"]["epochs"]
    initial_epoch = int(state["epoch"]) if state else 0
    if initial_epoch >= epochs:
        say(f"{run_dir}: already trained {initial_epoch} of {_plural(epochs, 'epoch')}; nothing to do")
        return run_dir

    keras.utils.set_random_seed(recipe["train"]["seed"])
    train_set, validation_set = plan.datasets()
    say(train_set.summary)
    if validation_set is not None:
        say(validation_set.summary)
    steps = recipe["train"]["steps_per_epoch"]
    tensorboard = _tensorboard_callbacks(run_dir) if recipe["train"]["tensorboard"] else []
    if resume:
        model = _load_run_checkpoint(run_dir / "checkpoints" / "last.keras", plan.model_class)
        _apply_learning_rate(model, plan)
        for dataset in (train_set, validation_set):
            if dataset is not None:
                dataset.epoch = initial_epoch
    else:
        model = plan.build(steps or len(train_set))

    image_size = recipe["colorizer"]["image_size"]
    samples_from = validation_set if validation_set is not None else train_set
    sample_inputs = plan.sample_inputs(samples_from, recipe["train"]["num_samples"])

    # Everything is checked: from here on the run directory is written.
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    with atomic_file(run_dir / "recipe.yaml") as tmp:
        tmp.write_text(recipe.to_yaml(), encoding="utf-8")
    write_json_atomic(run_dir / "environment.json", environment_info())
    history_path = run_dir / "history.csv"
    if resume:
        truncate_history(history_path, initial_epoch)

    with_validation = validation_set is not None
    monitor, mode, required = checkpoint_monitor(recipe, with_validation, plan.monitor(with_validation))
    curves = [key for key in plan.curves if with_validation or not key.startswith("val_")]
    if monitor not in curves:
        curves.append(monitor)
    guard = TerminateOnNonFinite()
    extra = plan.callbacks(run_dir, train_set, validation_set) if plan.callbacks is not None else []
    same_monitor = (state or {}).get("monitor", monitor) == monitor
    checkpoint = AtomicCheckpoint(
        run_dir / "checkpoints",
        state_path=run_dir / "state.json",
        monitor=monitor,
        best=(state or {}).get("best") if same_monitor else None,
        best_epoch=(state or {}).get("best_epoch") if same_monitor else None,
        mode=mode,
        required=required,
    )

    def callbacks(append):
        return [
            guard,
            checkpoint,
            *extra,
            keras.callbacks.CSVLogger(str(history_path), append=append),
            LossCurve(
                run_dir / "loss_curve.png",
                history=read_history(history_path) if append else None,
                title=plan.title,
                keys=curves,
            ),
            SampleGrid(
                sample_inputs, run_dir / "samples", tensorboard_dir=run_dir / "tensorboard" if tensorboard else None
            ),
            *tensorboard,
        ]

    action = f"resuming at epoch {initial_epoch + 1}" if resume else "training"
    say(
        f"{action}: {plan.description(model)} at {image_size}x{image_size}, {_plural(epochs, 'epoch')}, "
        f"backend {keras.backend.backend()}; run directory {run_dir}"
    )
    start, append = initial_epoch, resume
    for end, prepare in plan.phases(epochs):
        if end <= start:
            continue
        if prepare is not None:
            prepare(model, steps or len(train_set))
        model.fit(
            _first_batches(train_set, steps) if steps else train_set,
            validation_data=validation_set,
            epochs=end,
            initial_epoch=start,
            callbacks=callbacks(append),
            shuffle=False,
            verbose=verbose,
        )
        if guard.diverged is not None:
            break
        start, append = end, True

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
    if plan.finish is not None:
        plan.finish(model, run_dir)
    best = checkpoint.best
    best_text = f"best {monitor} {best:.5g} at epoch {checkpoint.best_epoch}" if math.isfinite(best) else "no best"
    say(f"done: {_plural(epochs, 'epoch')}, {best_text}; checkpoints in {run_dir / 'checkpoints'}")
    return run_dir


__all__ = [
    "RunDirectoryError",
    "RunPlan",
    "TrainingDivergedError",
    "default_run_dir",
    "environment_info",
    "fit_run",
    "fixed_images",
    "loss_text",
    "read_state",
    "say",
]
