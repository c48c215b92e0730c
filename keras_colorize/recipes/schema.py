"""The recipe sections every kind of training shares: their schema (JSON Schema, draft
2020-12) and their defaults.

A recipe is a YAML mapping. Every section rejects unknown keys, except `model` and
`optimizer`: their keys beyond `name` are the constructor arguments of the named class
and are checked against its signature when the recipe is loaded
(see `keras_colorize.recipes.loader`). The sections of one kind of training (an
adversarial trainer, instance-aware stages, InstructPix2Pix fine-tuning) are defined
and documented by that kind, in `keras_colorize.recipes.kinds`; the whole schema is
`keras_colorize.recipes.kinds.RECIPE_SCHEMA`. The shared keys, with their defaults:

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
- `optimizer`: `name` (`adam`) of a Keras optimizer and its arguments
  (`learning_rate` defaults to 1e-3 for Adam, to Keras's default for the others);
  the generator's.
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
- `evaluate`: `data` (null), the default folder of `keras-colorize evaluate` for this
  run's checkpoints; `batch_size` (16).

Paths are relative to the current working directory.
"""

import copy

LOSSES = ("l1", "l2", "huber")
"""Per-pixel regression losses on ab."""
LOSS_TERMS = LOSSES + ("ab_classification", "colorfulness", "lpips")
"""Terms of `colorizer.loss` (`keras_colorize.losses.colorization.TERMS`)."""
SCHEDULES = ("constant", "cosine")

POSITIVE_INT = {"type": "integer", "minimum": 1}
OPTIONAL_PATH = {"type": ["string", "null"], "minLength": 1}
CLASS_SECTION = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}},
    "additionalProperties": True,
}
"""A section naming a class (`name`) and its constructor arguments."""
OPTIMIZER_SECTION = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
    },
    "additionalProperties": True,
}
"""A section naming a Keras optimizer and its arguments."""

SHARED_SECTIONS = {
    "name": {"type": "string", "minLength": 1},
    "description": {"type": "string"},
    "base": {"type": "string", "minLength": 1},
    "model": CLASS_SECTION,
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
    "optimizer": OPTIMIZER_SECTION,
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
            "validation": OPTIONAL_PATH,
            "validation_fraction": {
                "type": "number",
                "minimum": 0,
                "exclusiveMaximum": 1,
            },
            "holdout_fraction": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "resize_to": {"type": ["integer", "null"], "minimum": 8},
            "drop_grayscale": {"type": ["boolean", "null"]},
            "repeat": POSITIVE_INT,
            "cache": {"enum": ["auto", True, False]},
            "workers": {"type": "integer", "minimum": 1},
            "labels": {"type": "boolean"},
        },
    },
    "train": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "epochs": POSITIVE_INT,
            "batch_size": POSITIVE_INT,
            "seed": {"type": "integer", "minimum": 0},
            "steps_per_epoch": {"type": ["integer", "null"], "minimum": 1},
            "run_dir": OPTIONAL_PATH,
            "num_samples": {"type": "integer", "minimum": 1, "maximum": 64},
            "tensorboard": {"type": "boolean"},
            "distribution": {"enum": [None, "data_parallel"]},
            "mixed_precision": {"enum": [None, "float32", "mixed_bfloat16", "mixed_float16"]},
            "monitor": {"type": ["string", "null"], "minLength": 1},
            "freeze_encoder_epochs": {"type": "integer", "minimum": 0},
            "encoder_learning_rate": {"type": ["number", "null"], "exclusiveMinimum": 0},
        },
    },
    "evaluate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "data": OPTIONAL_PATH,
            "batch_size": POSITIVE_INT,
        },
    },
}
"""The JSON Schema of each shared section (and of the top-level keys)."""

LEADING_SECTIONS = ("name", "description", "base", "model", "colorizer", "optimizer", "schedule")
TRAILING_SECTIONS = ("data", "train", "evaluate")
"""A resolved recipe lists the leading sections, then those of the kinds, then these."""

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


def default_sections():
    """A fresh deep copy of `DEFAULTS`."""
    return copy.deepcopy(DEFAULTS)
