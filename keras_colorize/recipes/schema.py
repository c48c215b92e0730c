"""The recipe schema (JSON Schema, draft 2020-12) and the defaults of every section.

A recipe is a YAML mapping. Every section rejects unknown keys, except `model` and
`optimizer`: their keys beyond `name` are the constructor arguments of the named class
and are checked against its signature when the recipe is loaded
(see `keras_colorize.recipes.loader`). Keys, with their defaults:

- `name`: label of the run (default: the recipe file's name); `runs/<name>` is the
  default run directory. `description`: one line shown by `keras-colorize recipes`.
- `base`: one recipe (a built-in name or a path) whose keys this one overrides; a base
  cannot have a base of its own.
- `model`: `name` of a registered zoo generator (`keras-colorize models`) and its
  constructor arguments (the class defaults apply to the ones left out).
- `model.preset` (zoo generators): start from the generator of a Colorizer preset
  (a built-in name such as `backbone_unet_vgg16`, or a preset folder) instead of
  building `name` from arguments; `name` must match the preset's generator and no
  other argument is allowed.
- `colorizer`: `image_size` (256), the square size the generator is trained at;
  `loss` (`l2`), the regression objective: a term name or a mapping of term names to
  weights, from `l1`, `l2`, `huber` (on ab in model units), `ab_classification`
  (rebalanced cross-entropy over a*b* bins; a generator with a classification
  head), `colorfulness` (the colourfulness gap) and `lpips` (see
  `keras_colorize.losses.ColorizationLoss`; an adversarial trainer has its own
  `reconstruction`); `rebalancing` (0.5), the share of the uniform distribution in
  the class-rebalancing weights of `ab_classification`, computed from the training
  photos before training (1: no rebalancing); `lpips_network` (`vgg`), the network
  of the `lpips` term.
- `trainer` (absent: regression with `model.fit` on the Colorizer): `name` of an
  adversarial trainer, `GANTrainer` or `WGANGPTrainer`, and its constructor
  arguments (`lambda_adv`, `lambda_rec`, `reconstruction`, `lambda_class`, ...);
  `teacher` is the path of a `.keras` classifier (sRGB in [0, 1] -> class
  probabilities) for `class_target: teacher`.
- `discriminator`: with a `trainer`, the `name` of a registered critic
  (`PatchGANDiscriminator`) and its constructor arguments.
- `optimizer`: `name` (`adam`) of a Keras optimizer and its arguments
  (`learning_rate` defaults to 1e-3 for Adam, to Keras's default for the others);
  the generator's.
- `discriminator_optimizer`: the discriminator's (critic's) optimizer, same keys
  (absent: the same settings as `optimizer`).
- `schedule`: `name` (`constant`) or `cosine`: cosine annealing of every
  optimizer's learning rate over the whole run, from its `learning_rate` down to
  `final_learning_rate` (0).
- `data`: `train`, a folder searched recursively or `samples` (the eight photos that
  ship inside scikit-image and scikit-learn; a folder named "samples" is `./samples`);
  `validation` (null), a folder; `validation_fraction` (0), the share of `train` held
  out when `validation` is null; `holdout_fraction` (0), the share of `train` set aside
  first (seeded by `train.seed`) and used for neither training nor validation, a test
  set: `keras-colorize evaluate CHECKPOINT --data holdout` scores the run's
  checkpoints on it; `resize_to` (null: `image_size`), the shorter side
  before cropping; `drop_grayscale` (null: on for training); `repeat` (1), passes over
  the files per epoch; `cache` (`auto`), keep resized images in memory; `workers` (2);
  `labels` (false), yield class labels from the sub-folders of `train` (class names
  sorted; the generator's `num_classes` must match their number).
- `train`: `epochs` (10); `batch_size` (16); `seed` (0); `steps_per_epoch` (null: every
  batch; otherwise the first N batches of each epoch's shuffle); `run_dir` (null:
  `runs/<name>`); `num_samples` (4), images in each `samples/epoch_XXX.png`;
  `tensorboard` (false), also write TensorBoard logs (scalars and the sample
  grids) to `<run_dir>/tensorboard` (needs TensorFlow installed, any backend);
  `distribution` (null: one device), `data_parallel` replicates the model on every
  local device and splits each batch of `batch_size` over them (JAX and TensorFlow;
  see `keras_colorize.training.distribution`); `mixed_precision` (null: float32),
  `float32`, `mixed_bfloat16` or `mixed_float16` (with dynamic loss scaling), the
  Keras dtype policy the networks are built with (see
  `keras_colorize.training.precision`); `monitor` (null: the kind's default, see
  `keras_colorize.training.run`), the logged value whose lowest value chooses
  `best.keras` (`val_psnr` and `val_ssim`: highest), e.g. `val_loss` for the
  behaviour of earlier versions; `freeze_encoder_epochs` (0), for a generator with a
  pretrained encoder (`BackboneUNet`), the first epochs train the decoder only, then
  the encoder is fine-tuned at `encoder_learning_rate` (null: the optimizer's
  learning rate / 10) while the rest keeps `optimizer.learning_rate`.
- `instances` (absent: one-stage training): instance-aware colorization in three
  stages (full image, instance crops, fusion). `boxes`, the instance boxes of the
  training photos: a COCO-style JSON file or a folder of one JSON (or `.npz`) file per
  image (see `keras_colorize.data.read_boxes`); `validation_boxes` (null: `boxes`), for
  a separate `data.validation` folder; `min_score`, `min_variance` and `max_instances`
  (null: the defaults of `keras_colorize.data.select_instances`, 0.99, 2000 and 8),
  which boxes become instances; `instance_size` (null: `colorizer.image_size`), the
  side of the instance crops; `fusion_points` (null: every decoder block below full
  resolution), where the feature maps are fused; `weight_filters` (null: the
  `SimpleWeightModel` default), the width of the weight networks. `model` must be a
  U-Net (`UNetV1` or `UNetV2`).
- `stages` (with `instances`): `full`, `instance` and `fusion`, each with `epochs`,
  `batch_size`, `steps_per_epoch` and `learning_rate` (null: the `train` and
  `optimizer` values) for that stage.
- `evaluate`: `data` (null), the default folder of `keras-colorize evaluate` for this
  run's checkpoints; `batch_size` (16).

InstructPix2Pix fine-tuning (`model.name: InstructPix2Pix`) trains the denoising U-Net
of a Stable Diffusion v1 InstructPix2Pix model to colorize (see
`keras_colorize.models.instruct_pix2pix.finetuner`):

- `model`: `preset`, a preset folder (`convert.preset.save_preset`), or `random`:
  `tiny` or `full`, seeded random components (`seed`, 0) for trials; `dtype` (null),
  the dtype policy of the loaded networks. `colorizer.image_size` is the training crop
  (a multiple of 64 at the Stable Diffusion size); `colorizer.loss` is not used.
- `optimizer` (`adamw`): with AdamW, the arguments left out take the InstructPix2Pix
  script's values (`finetuner.default_optimizer`: learning rate 5e-6, weight decay
  1e-2, epsilon 1e-8, global clip norm 1).
- `finetune` (a null value means the constant of
  `keras_colorize.models.instruct_pix2pix.constants`): `conditioning_dropout` (null:
  0.05); `loss` (`noise`) or `joint` (noise MSE
  plus the LAB MSE of the decoded one-step estimate, uncertainty-weighted);
  `lora_rank` (null: the whole U-Net trains); `remat` (null); `ema` (false) and
  `ema_momentum` (0.9999), an exponential moving average of the weights kept by the
  optimizer; `prompts` (null: the packaged colorization prompts), a prompt file;
  `validation`: sampled validation during training, `every_n_steps` (null: off),
  `images` (4), `steps` (null: 20), `guidance` (null: 7.0), `image_guidance` (null:
  1.5), `sampler`
  (`euler_ancestral` or `ddim`), `seed` (0). The fine-tuned preset is written to
  `<run_dir>/preset` when training ends.

Paths are relative to the current working directory.
"""

import copy

LOSSES = ("l1", "l2", "huber")
"""Per-pixel regression losses on ab."""
LOSS_TERMS = LOSSES + ("ab_classification", "colorfulness", "lpips")
"""Terms of `colorizer.loss` (`keras_colorize.losses.colorization.TERMS`)."""

TRAINERS = ("GANTrainer", "WGANGPTrainer")
SCHEDULES = ("constant", "cosine")
STAGES = ("full", "instance", "fusion")
"""The stages of instance-aware training, in the order they run."""

INSTRUCT_PIX2PIX = "InstructPix2Pix"
"""The `model.name` of InstructPix2Pix fine-tuning (not a zoo generator)."""
FINETUNE_LOSSES = ("noise", "joint")
SAMPLERS = ("euler_ancestral", "ddim")
RANDOM_COMPONENTS = ("tiny", "full")

INSTRUCT_PIX2PIX_MODEL = {
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

INSTRUCT_PIX2PIX_OPTIMIZER = {"name": "adamw"}
"""The optimizer section of InstructPix2Pix fine-tuning when a recipe leaves it out: AdamW
with the InstructPix2Pix script's settings (`finetuner.default_optimizer`) for every
argument not given."""

_POSITIVE_INT = {"type": "integer", "minimum": 1}
_OPTIONAL_PATH = {"type": ["string", "null"], "minLength": 1}
_CLASS_SECTION = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}},
    "additionalProperties": True,
}
_OPTIMIZER_SECTION = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
    },
    "additionalProperties": True,
}

_STAGE_SECTION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "epochs": {"type": ["integer", "null"], "minimum": 1},
        "batch_size": {"type": ["integer", "null"], "minimum": 1},
        "steps_per_epoch": {"type": ["integer", "null"], "minimum": 1},
        "learning_rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
}

RECIPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "keras-colorize recipe",
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "base": {"type": "string", "minLength": 1},
        "model": _CLASS_SECTION,
        "colorizer": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "image_size": {"type": "integer", "minimum": 8},
                "loss": {
                    "anyOf": [
                        {"enum": list(LOSS_TERMS)},
                        {
                            "type": "object",
                            "minProperties": 1,
                            "propertyNames": {"enum": list(LOSS_TERMS)},
                            "additionalProperties": {"type": "number", "minimum": 0},
                        },
                    ]
                },
                "rebalancing": {"type": "number", "minimum": 0, "maximum": 1},
                "lpips_network": {"enum": ["alex", "vgg"]},
            },
        },
        "trainer": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"enum": list(TRAINERS)},
                "teacher": _OPTIONAL_PATH,
            },
            "additionalProperties": True,
        },
        "discriminator": _CLASS_SECTION,
        "optimizer": _OPTIMIZER_SECTION,
        "discriminator_optimizer": _OPTIMIZER_SECTION,
        "schedule": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": {"enum": list(SCHEDULES)},
                "final_learning_rate": {"type": "number", "minimum": 0},
            },
        },
        "data": {
            "type": "object",
            "additionalProperties": False,
            "required": ["train"],
            "properties": {
                "train": {"type": "string", "minLength": 1},
                "validation": _OPTIONAL_PATH,
                "validation_fraction": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMaximum": 1,
                },
                "holdout_fraction": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "resize_to": {"type": ["integer", "null"], "minimum": 8},
                "drop_grayscale": {"type": ["boolean", "null"]},
                "repeat": _POSITIVE_INT,
                "cache": {"enum": ["auto", True, False]},
                "workers": {"type": "integer", "minimum": 1},
                "labels": {"type": "boolean"},
            },
        },
        "train": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": _POSITIVE_INT,
                "batch_size": _POSITIVE_INT,
                "seed": {"type": "integer", "minimum": 0},
                "steps_per_epoch": {"type": ["integer", "null"], "minimum": 1},
                "run_dir": _OPTIONAL_PATH,
                "num_samples": {"type": "integer", "minimum": 1, "maximum": 64},
                "tensorboard": {"type": "boolean"},
                "distribution": {"enum": [None, "data_parallel"]},
                "mixed_precision": {"enum": [None, "float32", "mixed_bfloat16", "mixed_float16"]},
                "monitor": {"type": ["string", "null"], "minLength": 1},
                "freeze_encoder_epochs": {"type": "integer", "minimum": 0},
                "encoder_learning_rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
            },
        },
        "instances": {
            "type": "object",
            "additionalProperties": False,
            "required": ["boxes"],
            "properties": {
                "boxes": {"type": "string", "minLength": 1},
                "validation_boxes": _OPTIONAL_PATH,
                "min_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "min_variance": {"type": ["number", "null"], "minimum": 0},
                "max_instances": {"type": ["integer", "null"], "minimum": 1},
                "instance_size": {"type": ["integer", "null"], "minimum": 8},
                "fusion_points": {"type": ["array", "null"], "items": {"type": "string"}, "minItems": 1},
                "weight_filters": {"type": ["integer", "null"], "minimum": 1},
            },
        },
        "stages": {
            "type": "object",
            "additionalProperties": False,
            "properties": {stage: _STAGE_SECTION for stage in STAGES},
        },
        "evaluate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "data": _OPTIONAL_PATH,
                "batch_size": _POSITIVE_INT,
            },
        },
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
                "prompts": _OPTIONAL_PATH,
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
    },
}

# Values a recipe gets for the keys it leaves out. `model` has no defaults beyond the
# class's own constructor defaults; `train.run_dir: null` means `runs/<recipe name>`.
DEFAULTS = {
    "colorizer": {"image_size": 256, "loss": "l2", "rebalancing": 0.5, "lpips_network": "vgg"},
    "optimizer": {"name": "adam", "learning_rate": 1.0e-3},
    "schedule": {"name": "constant", "final_learning_rate": 0.0},
    "data": {
        "validation": None,
        "validation_fraction": 0.0,
        "holdout_fraction": 0.0,
        "resize_to": None,
        "drop_grayscale": None,
        "repeat": 1,
        "cache": "auto",
        "workers": 2,
        "labels": False,
    },
    "train": {
        "epochs": 10,
        "batch_size": 16,
        "seed": 0,
        "steps_per_epoch": None,
        "run_dir": None,
        "num_samples": 4,
        "tensorboard": False,
        "distribution": None,
        "mixed_precision": None,
        "monitor": None,
        "freeze_encoder_epochs": 0,
        "encoder_learning_rate": None,
    },
    "evaluate": {"data": None, "batch_size": 16},
}

# Defaults of the sections that are filled in only when a recipe has them.
OPTIONAL_DEFAULTS = {
    "instances": {
        "validation_boxes": None,
        "min_score": None,
        "min_variance": None,
        "max_instances": None,
        "instance_size": None,
        "fusion_points": None,
        "weight_filters": None,
    },
    "stages": {
        stage: {"epochs": None, "batch_size": None, "steps_per_epoch": None, "learning_rate": None}
        for stage in STAGES
    },
    # Filled in for every InstructPix2Pix recipe (see the loader). A null value stands
    # for the constant of keras_colorize.models.instruct_pix2pix.constants (resolved by
    # the builder, so that this module imports no Keras).
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

SECTION_ORDER = (
    "name",
    "description",
    "base",
    "model",
    "colorizer",
    "trainer",
    "discriminator",
    "optimizer",
    "discriminator_optimizer",
    "schedule",
    "instances",
    "stages",
    "finetune",
    "data",
    "train",
    "evaluate",
)


def section_keys(section):
    """The keys a section of the schema knows, in schema order.

    Args:
        section: str or None. A top-level section name, or None for the top level.

    Returns:
        A list of key names.
    """
    if section is None:
        return list(RECIPE_SCHEMA["properties"])
    return list(RECIPE_SCHEMA["properties"][section].get("properties", {}))


def default_sections():
    """A fresh deep copy of `DEFAULTS`."""
    return copy.deepcopy(DEFAULTS)


def optional_section_defaults():
    """A fresh deep copy of `OPTIONAL_DEFAULTS`."""
    return copy.deepcopy(OPTIONAL_DEFAULTS)
