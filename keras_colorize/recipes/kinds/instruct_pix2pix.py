"""InstructPix2Pix fine-tuning (`model.name: InstructPix2Pix`): the denoising U-Net of
a Stable Diffusion v1 InstructPix2Pix model trained to colorize (see
`keras_colorize.models.instruct_pix2pix.finetuner`).

Sections:

- `model`: `preset`, a preset folder (`convert.preset.save_preset`), or `random`:
  `tiny` or `full`, seeded random components (`seed`, 0) for trials; `dtype` (null),
  the dtype policy of the loaded networks. `colorizer.image_size` is the training crop
  (a multiple of 64 at the Stable Diffusion size); `colorizer.loss` is not used.
- `optimizer` (`adamw`): with AdamW, the arguments left out take the InstructPix2Pix
  script's values (`finetuner.default_optimizer`: learning rate 5e-6, weight decay
  1e-2, epsilon 1e-8, global clip norm 1).
- `finetune` (a null value means the constant of
  `keras_colorize.models.instruct_pix2pix.constants`): `conditioning_dropout` (null:
  0.05); `loss` (`noise`) or `joint` (noise MSE plus the LAB MSE of the decoded
  one-step estimate, uncertainty-weighted); `lora_rank` (null: the whole U-Net
  trains); `remat` (null); `ema` (false) and `ema_momentum` (0.9999), an exponential
  moving average of the weights kept by the optimizer; `prompts` (null: the packaged
  colorization prompts), a prompt file; `validation`: sampled validation during
  training, `every_n_steps` (null: off), `images` (4), `steps` (null: 20), `guidance`
  (null: 7.0), `image_guidance` (null: 1.5), `sampler` (`euler_ancestral` or `ddim`),
  `seed` (0).

`best.keras` follows `val_loss` (the noise MSE with the validation prompt), else
`loss`; the fine-tuned components are written to `<run_dir>/preset` when training
ends, and with `finetune.validation.every_n_steps` the sampled validation of the
held-out images to `validation/step_XXXXXXX.png` and `validation/metrics.json`.
"""

import math
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.recipes.builder import build_datasets, build_optimizer, takes_loaded_recipe
from keras_colorize.recipes.checks import check_schema
from keras_colorize.recipes.kinds.base import TrainingKind

INSTRUCT_PIX2PIX = "InstructPix2Pix"
"""The `model.name` of InstructPix2Pix fine-tuning (not a zoo generator)."""
FINETUNE_LOSSES = ("noise", "joint")
SAMPLERS = ("euler_ancestral", "ddim")
"""The samplers of `keras_colorize.models.instruct_pix2pix.schedulers.SAMPLERS`."""
RANDOM_COMPONENTS = ("tiny", "full")

MODEL_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"const": INSTRUCT_PIX2PIX},
        "preset": {"type": "string", "minLength": 1},
        "random": {"enum": list(RANDOM_COMPONENTS)},
        "seed": {"type": "integer", "minimum": 0},
        "dtype": {"enum": [None, "float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"]},
    },
}
"""The `model` section of InstructPix2Pix fine-tuning (checked instead of a zoo signature)."""


# ----------------------------------------------------------------------------- builders


@takes_loaded_recipe
def build_components(recipe):
    """Load (or make) the InstructPix2Pix components a recipe's `model` section names.

    `model.preset` is a preset folder (`convert.preset.load_preset`); `model.random`
    (`tiny` or `full`) makes seeded random components (`model.seed`, 0), for trials.
    The networks take the current Keras dtype policy, or `model.dtype` when set.

    Args:
        recipe: Recipe. A loaded recipe with `model.name: InstructPix2Pix`.

    Returns:
        A `DiffusionComponents`.

    Raises:
        RecipeError: the preset folder is missing or cannot be loaded (names
            `model.preset`).
    """
    from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset, random_components

    model = recipe["model"]
    dtype = model.get("dtype")
    if "random" in model:
        return random_components(seed=int(model.get("seed", 0)), tiny=model["random"] == "tiny", dtype=dtype)
    check_preset_path(recipe)
    try:
        return load_preset(model["preset"], dtype=dtype)
    except UserInputError as error:
        raise recipe.error(("model", "preset"), first_line(error)) from None


def check_preset_path(recipe):
    """Check that `model.preset` of an InstructPix2Pix recipe is a folder with a `config.json`.

    Raises:
        RecipeError: naming `model.preset` and how to set it.
    """
    preset = recipe["model"].get("preset")
    if preset is None:
        return
    path = Path(preset).expanduser()
    if not path.is_dir():
        raise recipe.error(("model", "preset"), f"preset folder not found: {preset} (pass --set model.preset=FOLDER)")
    if not (path / "config.json").is_file():
        raise recipe.error(("model", "preset"), f"{preset} has no config.json (not an InstructPix2Pix preset folder)")


def validation_settings(recipe):
    """The sampled-validation settings of `finetune.validation`, constants for nulls.

    Returns:
        A dict of `every_n_steps` (None: off), `images`, `steps`, `guidance`,
        `image_guidance`, `sampler` and `seed`.
    """
    from keras_colorize.models.instruct_pix2pix.constants import IMAGE_GUIDANCE, SAMPLING_STEPS, TEXT_GUIDANCE

    values = dict(recipe["finetune"]["validation"])
    for key, constant in (("steps", SAMPLING_STEPS), ("guidance", TEXT_GUIDANCE), ("image_guidance", IMAGE_GUIDANCE)):
        if values.get(key) is None:
            values[key] = constant
    return values


def finetuner_arguments(recipe):
    """The `InstructPix2PixFineTuner` arguments of a recipe's `finetune` section (constants for nulls)."""
    from keras_colorize.models.instruct_pix2pix.constants import CONDITIONING_DROPOUT

    finetune = recipe["finetune"]
    dropout = finetune.get("conditioning_dropout")
    return {
        "prompts": finetune.get("prompts"),
        "conditioning_dropout": CONDITIONING_DROPOUT if dropout is None else float(dropout),
        "loss": finetune["loss"],
        "seed": recipe["train"]["seed"],
        "lora_rank": finetune.get("lora_rank"),
        "remat": finetune.get("remat"),
        "sampling": {k: v for k, v in validation_settings(recipe).items() if k not in ("every_n_steps", "images")},
    }


@takes_loaded_recipe
def build_finetuner(recipe, steps_per_epoch=None, compile=True):
    """Build the InstructPix2Pix fine-tuner of a recipe, compiled with its optimizer.

    Args:
        recipe: Recipe. A loaded recipe with `model.name: InstructPix2Pix`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer (AdamW with the
            InstructPix2Pix settings by default; `finetune.ema` adds an EMA).
            Defaults to True.

    Returns:
        An `InstructPix2PixFineTuner` taking sRGB in [0, 1], shape
        (N, image_size, image_size, 3).

    Raises:
        RecipeError: a missing preset, a prompt file that cannot be read, an image
            size the networks cannot take, or bad fine-tuning settings.
    """
    from keras_colorize.models.instruct_pix2pix.finetuner import InstructPix2PixFineTuner
    from keras_colorize.models.instruct_pix2pix.pipeline import size_multiple

    components = build_components(recipe)
    multiple = size_multiple(components)
    image_size = recipe["colorizer"]["image_size"]
    if image_size % multiple:
        raise recipe.error(
            ("colorizer", "image_size"), f"{image_size} must be a multiple of {multiple} for these networks"
        )
    arguments = finetuner_arguments(recipe)
    try:
        finetuner = InstructPix2PixFineTuner(components, **arguments)
    except UserInputError as error:
        message = first_line(error)
        key = ("finetune", "prompts") if arguments["prompts"] and str(arguments["prompts"]) in message else "finetune"
        raise recipe.error(key, message) from None
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        finetuner.compile(optimizer=build_optimizer(recipe, decay_steps=total))
    return finetuner


class InstructPix2PixKind(TrainingKind):
    """InstructPix2Pix fine-tuning (`model.name: InstructPix2Pix`)."""

    name = "instruct_pix2pix"
    sections = {
        "finetune": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "conditioning_dropout": {"type": ["number", "null"], "minimum": 0, "maximum": 0.3333333334},
                "loss": {"enum": list(FINETUNE_LOSSES)},
                "lora_rank": {"type": ["integer", "null"], "minimum": 1},
                "remat": {"type": ["boolean", "null"]},
                "ema": {"type": "boolean"},
                "ema_momentum": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "prompts": {"type": ["string", "null"], "minLength": 1},
                "validation": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "every_n_steps": {"type": ["integer", "null"], "minimum": 1},
                        "images": {"type": "integer", "minimum": 1, "maximum": 64},
                        "steps": {"type": ["integer", "null"], "minimum": 1},
                        "guidance": {"type": ["number", "null"], "minimum": 0},
                        "image_guidance": {"type": ["number", "null"], "minimum": 0},
                        "sampler": {"enum": list(SAMPLERS)},
                        "seed": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    }
    # A null value stands for the constant of keras_colorize.models.instruct_pix2pix.constants
    # (resolved by the builders, so that loading a recipe imports no Keras).
    section_defaults = {
        "finetune": {
            "conditioning_dropout": None,
            "loss": "noise",
            "lora_rank": None,
            "remat": None,
            "ema": False,
            "ema_momentum": 0.9999,
            "prompts": None,
            "validation": {
                "every_n_steps": None,
                "images": 4,
                "steps": None,
                "guidance": None,
                "image_guidance": None,
                "sampler": "euler_ancestral",
                "seed": 0,
            },
        },
    }
    filled_sections = ("finetune",)
    # AdamW with the InstructPix2Pix script's settings for every argument left out.
    shared_defaults = {"optimizer": {"name": "adamw"}}
    requirement = f"needs model.name: {INSTRUCT_PIX2PIX} (InstructPix2Pix fine-tuning)"
    refusal = f"not used by {INSTRUCT_PIX2PIX} fine-tuning (it trains with finetune)"
    labels_problem = f"{INSTRUCT_PIX2PIX} fine-tuning uses no class labels"
    zoo_generator = False
    reports_lpips = False

    def claims(self, data):
        model = data.get("model")
        return isinstance(model, dict) and model.get("name") == INSTRUCT_PIX2PIX

    def check(self, recipe):
        check_schema(recipe, dict(recipe["model"]), MODEL_SCHEMA, prefix=("model",))
        model = recipe["model"]
        if ("preset" in model) == ("random" in model):
            raise recipe.error(
                "model",
                f"{INSTRUCT_PIX2PIX} needs either preset (a preset folder) or random (tiny or full), not "
                + ("both" if "preset" in model else "neither"),
            )
        if "seed" in model and "random" not in model:
            raise recipe.error(("model", "seed"), "only random components take a seed")

    def optimizer_arguments(self, recipe, name, kwargs):
        """AdamW arguments left out take the InstructPix2Pix script's values; `finetune.ema` adds the EMA."""
        from keras_colorize.models.instruct_pix2pix.finetuner import default_optimizer

        kwargs = dict(kwargs)
        if name.lower() == "adamw":
            config = default_optimizer().get_config()
            for key in ("learning_rate", "weight_decay", "epsilon", "global_clipnorm"):
                kwargs.setdefault(key, config[key])
        finetune = recipe["finetune"]
        if finetune.get("ema"):
            kwargs.setdefault("use_ema", True)
            kwargs.setdefault("ema_momentum", float(finetune["ema_momentum"]))
        return kwargs

    def build_model(self, recipe, steps_per_epoch=None, compile=True, class_weights=None):
        return build_finetuner(recipe, steps_per_epoch=steps_per_epoch, compile=compile)

    def plan(self, recipe):
        from keras_colorize.training.run import RunPlan, fixed_images, say

        check_preset_path(recipe)
        image_size = recipe["colorizer"]["image_size"]
        curves = ["loss", "val_loss", "noise_loss", "val_noise_loss"]
        if recipe["finetune"]["loss"] == "joint":
            curves += ["lab_loss", "val_lab_loss"]
        settings = validation_settings(recipe)
        source = recipe["model"].get("preset") or f"random {recipe['model']['random']} components"

        def describe(model):
            total = model.unet.count_params()
            trainable = sum(math.prod(v.shape) for v in model.unet.trainable_weights)
            lora = f", LoRA rank {model.lora_rank}" if model.lora_rank else ""
            return f"InstructPix2Pix U-Net ({total:,} parameters, {trainable:,} trained{lora}) from {source}"

        def callbacks(run_dir, train_set, validation_set):
            if not settings["every_n_steps"]:
                return []
            from keras_colorize.models.instruct_pix2pix.validation import SampledValidation

            held_out = validation_set if validation_set is not None else train_set
            return [
                SampledValidation(
                    fixed_images(held_out, settings["images"], image_size),
                    every_n_steps=settings["every_n_steps"],
                    output_dir=Path(run_dir) / "validation",
                    steps=settings["steps"],
                    guidance=settings["guidance"],
                    image_guidance=settings["image_guidance"],
                    sampler=settings["sampler"],
                    seed=settings["seed"],
                )
            ]

        def finish(model, run_dir):
            path = model.save_preset(Path(run_dir) / "preset", overwrite=True)
            say(f"fine-tuned preset: {path}")

        return RunPlan(
            recipe,
            datasets=lambda: build_datasets(recipe),
            build=lambda steps: self.build_model(recipe, steps_per_epoch=steps),
            model_class="InstructPix2PixFineTuner",
            description=describe,
            sample_inputs=lambda dataset, count: fixed_images(dataset, count, image_size),
            curves=curves,
            monitor=lambda has_validation: "val_loss" if has_validation else "loss",
            title=f"{recipe.get('name', 'run')}: InstructPix2Pix fine-tuning, {recipe['finetune']['loss']} loss",
            callbacks=callbacks,
            finish=finish,
        )
