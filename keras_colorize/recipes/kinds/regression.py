"""Regression: a `Colorizer` fitted with `model.fit` on the recipe's `colorizer.loss`.

The kind of every recipe that asks for no other: it owns no section of its own.
"""

from keras_colorize.recipes.builder import (
    build_colorizer,
    build_datasets,
    build_fine_tuning_optimizer,
    compile_colorizer,
    rebalancing_weights_for,
)
from keras_colorize.recipes.kinds.base import TrainingKind

CLASS_LABELS_PROBLEM = "class labels are used by an adversarial trainer's class term only"


def encoder_phases(recipe):
    """The phases of `train.freeze_encoder_epochs`: the decoder alone, then the whole
    generator with the encoder at `train.encoder_learning_rate`.

    Returns:
        A callable `phases(epochs)` for `RunPlan`.
    """
    from keras_colorize.training.run import say

    frozen_epochs = recipe["train"]["freeze_encoder_epochs"]

    def unfreeze(model, steps_per_epoch):
        generator = model.generator
        if generator.encoder.trainable:
            return  # fine-tuning already (a resumed run)
        generator.set_encoder_trainable(True)
        remaining = steps_per_epoch * (recipe["train"]["epochs"] - frozen_epochs)
        optimizer = build_fine_tuning_optimizer(recipe, generator, decay_steps=remaining)
        compile_colorizer(recipe, model, optimizer, model.colorization_loss.class_weights)
        say(f"epoch {frozen_epochs + 1}: the encoder is unfrozen and fine-tuned")

    def phases(epochs):
        if not frozen_epochs or frozen_epochs >= epochs:
            return [(epochs, None)]
        return [(frozen_epochs, None), (epochs, unfreeze)]

    return phases


class RegressionKind(TrainingKind):
    """A `Colorizer` trained on `colorizer.loss` (no `trainer`, `instances` or InstructPix2Pix)."""

    name = "regression"
    labels_problem = CLASS_LABELS_PROBLEM

    def claims(self, data):
        return True

    def build_model(self, recipe, steps_per_epoch=None, compile=True, class_weights=None):
        return build_colorizer(recipe, compile=compile, steps_per_epoch=steps_per_epoch, class_weights=class_weights)

    def plan(self, recipe):
        """A Colorizer whose loss has the `ab_classification` term gets its rebalancing
        weights from one pass over the training photos; with
        `train.freeze_encoder_epochs`, its encoder is fine-tuned after those epochs."""
        from keras_colorize.training.run import RunPlan, fixed_images, loss_text

        image_size = recipe["colorizer"]["image_size"]
        made = {}

        def datasets():
            made["train"], validation_set = build_datasets(recipe)
            return made["train"], validation_set

        def build(steps):
            weights = rebalancing_weights_for(recipe, made["train"])
            return self.build_model(recipe, steps_per_epoch=steps, class_weights=weights)

        return RunPlan(
            recipe,
            datasets=datasets,
            build=build,
            model_class="Colorizer",
            description=lambda model: f"{recipe['model']['name']} ({model.generator.count_params():,} parameters)",
            sample_inputs=lambda dataset, count: fixed_images(dataset, count, image_size),
            curves=["loss", "val_loss"],
            monitor=lambda has_validation: "val_loss" if has_validation else "loss",
            title=(
                f"{recipe.get('name', 'run')}: {recipe['model']['name']}, "
                f"{loss_text(recipe['colorizer']['loss'])} loss"
            ),
            phases=encoder_phases(recipe),
        )
