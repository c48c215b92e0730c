"""Instance-aware colorization in three stages, one run directory each.

A recipe with an `instances` section trains, under its run directory:

- `full/`: the full-image colorizer (the recipe's U-Net) on whole photos;
- `instance/`: the instance colorizer, initialised from `full/checkpoints/best.keras`,
  on the instance crops of the photos (`instances.boxes`);
- `fusion/`: a `FusionColorizer` holding both networks, frozen, whose weight networks
  learn to blend their feature maps; `fusion/checkpoints/best.keras` is the
  instance-aware colorizer.

Each stage directory is an ordinary run directory (recipe, checkpoints, state, history,
samples) and each stage starts from the `best.keras` of the stages before it. The
`stages` section sets the epochs, batch size, steps and learning rate of each stage.
"""

from pathlib import Path

import numpy as np

from keras_colorize.errors import UserInputError
from keras_colorize.recipes.schema import STAGES
from keras_colorize.training.run import (
    RunDirectoryError,
    RunPlan,
    _say,
    default_plan,
    default_run_dir,
    fit_run,
    loss_text,
    read_state,
)

# What each stage's run trains, and the stages whose best checkpoint it starts from.
_NEEDS = {"full": (), "instance": ("full",), "fusion": ("full", "instance")}


def stage_recipe(recipe, stage):
    """The recipe of one stage: `stages.<stage>` applied to `train` and `optimizer`.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        stage: "full", "instance" or "fusion".

    Returns:
        A `Recipe` without `stages` (and, for "full", without `instances`), named
        `<name>-<stage>`.
    """
    from keras_colorize.recipes import Recipe

    data = recipe.to_dict()
    values = data.pop("stages", {}).get(stage) or {}
    for key in ("epochs", "batch_size", "steps_per_epoch"):
        if values.get(key) is not None:
            data["train"][key] = values[key]
    if values.get("learning_rate") is not None:
        data["optimizer"]["learning_rate"] = values["learning_rate"]
    if stage == "full":
        data.pop("instances")
    data["name"] = f"{recipe.get('name') or 'run'}-{stage}"
    return Recipe(data, source=recipe.source, origins=recipe.origins, base=recipe.base, overrides=recipe.overrides)


def _best_checkpoint(run_dir, stage, wanted_by):
    path = Path(run_dir) / stage / "checkpoints" / "best.keras"
    if not path.is_file():
        raise RunDirectoryError(
            f"{path}: not found; the {wanted_by} stage starts from the {stage} stage (run --stage {stage} first)"
        )
    return path


def _stage_plan(recipe, stage, run_dir):
    """The `RunPlan` of one stage of an `instances` recipe."""
    from keras_colorize.recipes.builder import (
        build_fusion_colorizer,
        build_instance_colorizer,
        build_instance_datasets,
    )

    srecipe = stage_recipe(recipe, stage)
    if stage == "full":
        return default_plan(srecipe)
    starts = {name: _best_checkpoint(run_dir, name, stage) for name in _NEEDS[stage]}
    curves = ["loss", "val_loss"]

    def monitor(has_validation):
        return "val_loss" if has_validation else "loss"

    if stage == "instance":
        return RunPlan(
            srecipe,
            datasets=lambda: build_instance_datasets(srecipe, "crops"),
            build=lambda steps: build_instance_colorizer(srecipe, starts["full"], steps_per_epoch=steps),
            kind="Colorizer",
            description=lambda model: (
                f"instance colorizer {srecipe['model']['name']} ({model.generator.count_params():,} parameters, "
                f"from {starts['full']}) on instance crops"
            ),
            sample_inputs=lambda dataset, count: dataset.sample_images(count),
            curves=curves,
            monitor=monitor,
            title=f"{srecipe['name']}: instance colorizer, {loss_text(srecipe['colorizer']['loss'])} loss",
        )
    return RunPlan(
        srecipe,
        datasets=lambda: build_instance_datasets(srecipe, "images"),
        build=lambda steps: build_fusion_colorizer(srecipe, starts["full"], starts["instance"], steps_per_epoch=steps),
        kind="FusionColorizer",
        description=lambda model: (
            f"fusion of {srecipe['model']['name']} full-image and instance colorizers (frozen), "
            f"{sum(int(np.prod(w.shape)) for w in model.trainable_weights):,} trainable parameters"
        ),
        sample_inputs=lambda dataset, count: dataset.sample_inputs(count),
        curves=curves,
        monitor=monitor,
        title=f"{srecipe['name']}: fusion weights, {loss_text(srecipe['colorizer']['loss'])} loss",
    )


def _stage_is_complete(stage_dir, epochs):
    state = read_state(stage_dir)
    return state is not None and int(state["epoch"]) >= epochs and (stage_dir / "checkpoints" / "best.keras").is_file()


def _check_boxes_paths(recipe):
    for key in ("boxes", "validation_boxes"):
        value = recipe["instances"].get(key)
        if value is not None and not Path(value).expanduser().exists():
            raise recipe.error(("instances", key), f"file or folder not found: {value}")


def run_stages(recipe, run_dir=None, stage=None, resume=False, verbose="auto"):
    """Train the stages of an instance-aware recipe, one run directory each.

    Without `stage`, runs "full", "instance" and "fusion" in order; with `resume`,
    stages already trained to their epochs are skipped and a partly trained one
    continues. With `stage`, runs that one only; the stages it starts from must have a
    `checkpoints/best.keras` under `run_dir`.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        run_dir: str, Path or None. The parent run directory. Defaults to None
            (`train.run_dir`, else `runs/<recipe name>`).
        stage: "full", "instance", "fusion" or None. Defaults to None (all, in order).
        resume: bool. Continue the stage runs under `run_dir`. Defaults to False.
        verbose: "auto", 0, 1 or 2. Keras progress output. Defaults to "auto".

    Returns:
        The parent run directory, a `pathlib.Path`.

    Raises:
        RecipeError, RunDirectoryError, TrainingDivergedError: as `run_training`.
    """
    from keras_colorize.recipes import check_data_paths

    if stage is not None and stage not in STAGES:
        raise UserInputError(f"unknown stage {stage!r} (expected one of: {', '.join(STAGES)})")
    check_data_paths(recipe)
    _check_boxes_paths(recipe)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    for name in [stage] if stage else STAGES:
        stage_dir = run_dir / name
        srecipe_epochs = stage_recipe(recipe, name)["train"]["epochs"]
        if stage is None and resume and _stage_is_complete(stage_dir, srecipe_epochs):
            _say(f"stage {name}: already trained ({stage_dir}); skipped")
            continue
        plan = _stage_plan(recipe, name, run_dir)
        _say(f"stage {name} ({STAGES.index(name) + 1} of {len(STAGES)})")
        fit_run(plan, stage_dir, resume=resume and read_state(stage_dir) is not None, verbose=verbose)
    return run_dir


__all__ = ["run_stages", "stage_recipe"]
