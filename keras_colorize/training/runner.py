"""Training from a recipe: one run directory, or one per stage of an instance-aware recipe.

`run_training` is the entry point of `keras-colorize fit` and of notebooks: it loads
the recipe and asks its kind to train it (`keras_colorize.recipes.kinds`), in one run
directory (`training.run.fit_run`) or, for instance-aware training, one per stage.
"""

from keras_colorize.recipes.loader import load_recipe


def run_training(recipe, run_dir=None, resume=False, overrides=(), verbose="auto", stage=None):
    """Train what a recipe describes (a Colorizer or an adversarial trainer) in a run directory.

    Everything that can be checked is checked before the run directory is created:
    the recipe, the data folders, the images, the model. A run directory that already
    holds files is never overwritten; `resume=True` continues the run in it from
    `checkpoints/last.keras` (model and optimizer state) at the epoch after the last
    completed one, up to `train.epochs` in total; the recipe's data, epochs and
    learning rate apply, the model and the rest of the optimizer state come from the
    checkpoint. A recipe with an `instances` section trains in three stages, one run
    directory each under `run_dir` (see `keras_colorize.recipes.kinds.instance.run_stages`).

    Args:
        recipe: Recipe, dict, str or Path. A loaded recipe, a mapping, a YAML file or a
            built-in recipe name.
        run_dir: str, Path or None. The run directory. Defaults to None
            (`train.run_dir`, else `runs/<recipe name>`).
        resume: bool. Continue the run in `run_dir`. Defaults to False.
        overrides: iterable of str. `"section.key=value"` overrides. Defaults to ().
        verbose: "auto", 0, 1 or 2. Keras progress output. Defaults to "auto".
        stage: "full", "instance", "fusion" or None. With an `instances` recipe, run
            this stage only. Defaults to None (every stage in order).

    Returns:
        The run directory, a `pathlib.Path`.

    Raises:
        RecipeError: a problem in the recipe or the data (nothing is written).
        RunDirectoryError: the run directory holds a run (without `resume`), or has
            nothing to resume.
        TrainingDivergedError: the loss became NaN or infinite; the last good
            checkpoint is kept.

    Examples:
        >>> from keras_colorize.training import run_training
        >>> run_dir = run_training("quickstart", overrides=["train.epochs=1"])  # doctest: +SKIP
    """
    recipe = load_recipe(recipe, overrides=overrides)
    return recipe.kind.train(recipe, run_dir=run_dir, resume=resume, verbose=verbose, stage=stage)


__all__ = ["run_training"]
