"""`TrainingKind`: what one kind of training owns of a recipe, and how it trains."""

from pathlib import Path

from keras_colorize.errors import UserInputError
from keras_colorize.recipes.checks import check_data_paths, check_optimizer, check_zoo_class


class TrainingKind:
    """One kind of training a recipe can describe (regression, adversarial, ...).

    A kind owns its top-level recipe sections (their schema and defaults), the checks
    of a recipe of its kind, the model it builds and the `RunPlan` it trains. The
    loader, the builders and the runner ask a recipe's kind (`Recipe.kind`) instead
    of testing its sections. A subclass sets the attributes and overrides `claims`,
    `build_model` and `plan` (or `train`, for several runs); kinds are registered in
    `keras_colorize.recipes.kinds.KINDS`.

    Attributes:
        name: str. The kind's name ("regression", "adversarial", ...).
        sections: dict. The JSON schema of each top-level section the kind owns.
        section_defaults: dict. Defaults merged into an owned section the recipe has.
        filled_sections: tuple of str. Owned sections filled with their defaults even
            when the recipe leaves them out.
        shared_defaults: dict. The defaults of shared sections (`recipes.schema.DEFAULTS`)
            that this kind replaces, e.g. its own optimizer.
        requirement: str or None. The problem reported on one of this kind's sections
            in a recipe of another kind: how to ask for this kind.
        refusal: str or None. The problem reported on another kind's section in a
            recipe of this kind (None: that kind's `requirement`).
        labels_problem: str or None. The problem reported on `data.labels: true`
            (None: class labels are used).
        zoo_generator: bool. `model` names a registered zoo generator.
        reports_lpips: bool. The model reports the LPIPS metric, so that `best.keras`
            can follow `val_lpips`.
    """

    name = None
    sections = {}
    section_defaults = {}
    filled_sections = ()
    shared_defaults = {}
    requirement = None
    refusal = None
    labels_problem = None
    zoo_generator = True
    reports_lpips = True

    def __repr__(self):
        return f"<{self.name} training>"

    def claims(self, data):
        """Whether a recipe mapping (raw or loaded) is of this kind."""
        raise NotImplementedError

    def check(self, recipe):
        """Check what the schema cannot (imports no Keras). Raises `RecipeError`."""

    def check_classes(self, recipe):
        """Check the named classes' arguments against their constructors (imports Keras)."""
        if self.zoo_generator:
            check_zoo_class(recipe, "model", "generator")
        check_optimizer(recipe)

    def class_labels_needed(self, recipe):
        """Whether training needs class labels (`data.labels: true`)."""
        return False

    def optimizer_arguments(self, recipe, name, kwargs):
        """The arguments of an optimizer section `name`, completed for this kind."""
        return kwargs

    def build_model(self, recipe, steps_per_epoch=None, compile=True, class_weights=None):
        """The model to fit (see `keras_colorize.recipes.builder.build_model`)."""
        raise NotImplementedError

    def plan(self, recipe):
        """The `keras_colorize.training.run.RunPlan` of a one-run recipe of this kind."""
        raise NotImplementedError

    def train(self, recipe, run_dir=None, resume=False, verbose="auto", stage=None):
        """Train a loaded recipe of this kind (see `keras_colorize.training.run_training`).

        Returns:
            The run directory, a `pathlib.Path`.
        """
        from keras_colorize.training.run import default_run_dir, fit_run

        if stage is not None:
            raise UserInputError(
                f"{recipe.source}: a stage ({stage}) needs a recipe with an instances section (instance-aware training)"
            )
        check_data_paths(recipe)
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
        return fit_run(self.plan(recipe), run_dir, resume=resume, verbose=verbose)
