"""Instance-aware colorization in three stages, one run directory each.

Sections (an `instances` section asks for this kind; `model` must be a U-Net, `UNetV1`
or `UNetV2`; training is regression on `colorizer.loss`):

- `instances`: `boxes`, the instance boxes of the training photos: a COCO-style JSON
  file or a folder of one JSON (or `.npz`) file per image (see
  `keras_colorize.data.read_boxes`; `keras-colorize detect` writes one); or instead
  `detector`, a keras-hub object detector preset (a handle or a folder, see
  `keras_colorize.detection`) that finds them: the boxes of the training (and
  validation) photos are detected once, before the first stage, into
  `<run_dir>/boxes/train.json` (and `validation.json`), and reused on resume;
  `validation_boxes` (null: `boxes`), for a separate `data.validation` folder;
  `min_score`, `min_variance` and `max_instances` (null: the
  defaults of `keras_colorize.data.select_instances`, 0.99, 2000 and 8), which boxes
  become instances; `instance_size` (null: `colorizer.image_size`), the side of the
  instance crops; `fusion_points` (null: every decoder block below full resolution),
  where the feature maps are fused; `weight_filters` (null: the `SimpleWeightModel`
  default), the width of the weight networks.
- `stages`: `full`, `instance` and `fusion`, each with `epochs`, `batch_size`,
  `steps_per_epoch` and `learning_rate` (null: the `train` and `optimizer` values) for
  that stage.

A recipe of this kind trains, under its run directory:

- `full/`: the full-image colorizer (the recipe's U-Net) on whole photos;
- `instance/`: the instance colorizer, initialised from `full/checkpoints/best.keras`,
  on the instance crops of the photos (`instances.boxes`);
- `fusion/`: a `FusionColorizer` holding both networks, frozen, whose weight networks
  learn to blend their feature maps; `fusion/checkpoints/best.keras` is the
  instance-aware colorizer.

Each stage directory is an ordinary run directory (recipe, checkpoints, state, history,
samples) and each stage starts from the `best.keras` of the stages before it. With
`instances.detector`, the stage recipes name the detected box files as `boxes`.
"""

from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.recipes.builder import (
    build_optimizer,
    compile_colorizer,
    data_error,
    dataset_arguments,
    takes_loaded_recipe,
)
from keras_colorize.recipes.checks import check_data_paths
from keras_colorize.recipes.kinds.regression import RegressionKind
from keras_colorize.recipes.schema import OPTIONAL_PATH

STAGES = ("full", "instance", "fusion")
"""The stages of instance-aware training, in the order they run."""

# The stages whose best checkpoint each stage starts from.
_NEEDS = {"full": (), "instance": ("full",), "fusion": ("full", "instance")}

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


# ----------------------------------------------------------------------------- builders


def _instance_settings(recipe):
    """The `instances` box-selection settings that are set (None: the library default)."""
    section = recipe["instances"]
    return {key: section[key] for key in ("min_score", "min_variance", "max_instances") if section.get(key) is not None}


def _instance_size(recipe):
    return recipe["instances"].get("instance_size") or recipe["colorizer"]["image_size"]


@takes_loaded_recipe
def build_instance_datasets(recipe, kind):
    """Build the datasets of an instance-aware stage from `data` and `instances`.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        kind: "crops" (the instance stage: every kept instance's crop, at
            `instances.instance_size`) or "images" (the fusion stage: photos at
            `colorizer.image_size` with their instance crops, boxes and masks).

    Returns:
        A tuple `(train, validation)` (validation may be None) of
        `InstanceCropFolder` or `InstanceImageFolder`.

    Raises:
        RecipeError: a missing folder or boxes file, or no usable image or instance.
    """
    from keras_colorize.data import make_instance_datasets, read_boxes

    data, section = recipe["data"], recipe["instances"]
    try:
        boxes = read_boxes(section["boxes"])
    except UserInputError as error:
        raise recipe.error(("instances", "boxes"), first_line(error)) from None
    validation_boxes = None
    if section.get("validation_boxes"):
        try:
            validation_boxes = read_boxes(section["validation_boxes"])
        except UserInputError as error:
            raise recipe.error(("instances", "validation_boxes"), first_line(error)) from None
    crops = kind == "crops"
    try:
        return make_instance_datasets(
            data["train"],
            image_size=_instance_size(recipe) if crops else recipe["colorizer"]["image_size"],
            boxes=boxes,
            validation_boxes=validation_boxes,
            kind=kind,
            instance_size=None if crops else _instance_size(recipe),
            **_instance_settings(recipe),
            **dataset_arguments(recipe),
        )
    except UserInputError as error:
        raise data_error(recipe, error) from None


def _stage_generator(path):
    """The generator of a stage checkpoint (a Colorizer `.keras` file)."""
    from keras_colorize.loading import load_colorizer

    return load_colorizer(path).generator


@takes_loaded_recipe
def build_instance_colorizer(recipe, full_checkpoint, steps_per_epoch=None, compile=True):
    """Build the instance colorizer of stage 2: a copy of the full-image colorizer's generator.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        full_checkpoint: str or Path. The full-image stage's `best.keras`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer and `colorizer.loss`.
            Defaults to True.

    Returns:
        A `Colorizer` at `instances.instance_size` whose generator has the full-image
        generator's configuration and weights.
    """
    from keras_colorize.colorizer import Colorizer
    from keras_colorize.models.fusion import clone_generator

    colorizer = Colorizer(clone_generator(_stage_generator(full_checkpoint)), image_size=_instance_size(recipe))
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        compile_colorizer(recipe, colorizer, build_optimizer(recipe, decay_steps=total))
    return colorizer


@takes_loaded_recipe
def build_fusion_colorizer(recipe, full_checkpoint, instance_checkpoint, steps_per_epoch=None, compile=True):
    """Build the fusion stage's `FusionColorizer` from the two earlier stages' checkpoints.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        full_checkpoint: str or Path. The full-image stage's `best.keras`.
        instance_checkpoint: str or Path. The instance stage's `best.keras`.
        steps_per_epoch: int or None. Batches per epoch, for the learning-rate
            schedule. Defaults to None.
        compile: bool. Compile with the recipe's optimizer and `colorizer.loss`.
            Defaults to True.

    Returns:
        A `FusionColorizer` whose two generators are frozen; its inputs are the dicts
        of `InstanceImageFolder` (sRGB in [0, 1]).

    Raises:
        RecipeError: unknown fusion points or bad settings.
    """
    from keras_colorize.models.fusion import FusionColorizer, SimpleWeightModel

    section = recipe["instances"]
    fusion_kwargs = {}
    if section.get("fusion_points") is not None:
        fusion_kwargs["fusion_points"] = tuple(section["fusion_points"])
    if section.get("weight_filters") is not None:
        fusion_kwargs["filters"] = section["weight_filters"]
    try:
        fusion_model = SimpleWeightModel(
            _stage_generator(full_checkpoint), _stage_generator(instance_checkpoint), **fusion_kwargs
        )
    except (UserInputError, ValueError) as error:
        raise recipe.error("instances", first_line(error)) from None
    colorizer = FusionColorizer(
        fusion_model,
        image_size=recipe["colorizer"]["image_size"],
        instance_size=_instance_size(recipe),
        **_instance_settings(recipe),
    )
    if compile:
        total = steps_per_epoch * recipe["train"]["epochs"] if steps_per_epoch else None
        compile_colorizer(recipe, colorizer, build_optimizer(recipe, decay_steps=total))
    return colorizer


# ----------------------------------------------------------------------------- stages


def stage_recipe(recipe, stage):
    """The recipe of one stage: `stages.<stage>` applied to `train` and `optimizer`.

    Args:
        recipe: Recipe. A loaded recipe with an `instances` section.
        stage: "full", "instance" or "fusion".

    Returns:
        A `Recipe` without `stages` (and, for "full", without `instances`: a
        regression recipe), named `<name>-<stage>`.
    """
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
    return recipe.replace(data)


def _best_checkpoint(run_dir, stage, wanted_by):
    from keras_colorize.training.run import RunDirectoryError

    path = Path(run_dir) / stage / "checkpoints" / "best.keras"
    if not path.is_file():
        raise RunDirectoryError(
            f"{path}: not found; the {wanted_by} stage starts from the {stage} stage (run --stage {stage} first)"
        )
    return path


def _stage_plan(recipe, stage, run_dir):
    """The `RunPlan` of one stage of an `instances` recipe."""
    import numpy as np

    from keras_colorize.training.run import RunPlan, loss_text

    srecipe = stage_recipe(recipe, stage)
    if stage == "full":
        return srecipe.kind.plan(srecipe)
    starts = {name: _best_checkpoint(run_dir, name, stage) for name in _NEEDS[stage]}
    loss = loss_text(srecipe["colorizer"]["loss"])
    shared = {
        "curves": ["loss", "val_loss"],
        "monitor": lambda has_validation: "val_loss" if has_validation else "loss",
    }
    if stage == "instance":
        return RunPlan(
            srecipe,
            datasets=lambda: build_instance_datasets(srecipe, "crops"),
            build=lambda steps: build_instance_colorizer(srecipe, starts["full"], steps_per_epoch=steps),
            model_class="Colorizer",
            description=lambda model: (
                f"instance colorizer {srecipe['model']['name']} ({model.generator.count_params():,} parameters, "
                f"from {starts['full']}) on instance crops"
            ),
            sample_inputs=lambda dataset, count: dataset.sample_images(count),
            title=f"{srecipe['name']}: instance colorizer, {loss} loss",
            **shared,
        )
    return RunPlan(
        srecipe,
        datasets=lambda: build_instance_datasets(srecipe, "images"),
        build=lambda steps: build_fusion_colorizer(srecipe, starts["full"], starts["instance"], steps_per_epoch=steps),
        model_class="FusionColorizer",
        description=lambda model: (
            f"fusion of {srecipe['model']['name']} full-image and instance colorizers (frozen), "
            f"{sum(int(np.prod(w.shape)) for w in model.trainable_weights):,} trainable parameters"
        ),
        sample_inputs=lambda dataset, count: dataset.sample_inputs(count),
        title=f"{srecipe['name']}: fusion weights, {loss} loss",
        **shared,
    )


def _photos_of(source):
    """The photos of a data folder (or the sample photos), keyed as box files key them."""
    from keras_colorize.data.samples import SAMPLES, sample_photo_paths
    from keras_colorize.detection import photo_keys

    if source == SAMPLES:
        return [(path, path.name) for path in sample_photo_paths()]
    return photo_keys([source])


def detected_boxes_recipe(recipe, run_dir):
    """Detect the boxes of the training (and validation) photos with `instances.detector`.

    The box files `<run_dir>/boxes/train.json` and `validation.json` (with a
    `data.validation` folder) are written once and resumed where they stopped
    (`keras_colorize.detection.detect_box_file`); the detector is loaded only when a
    file lacks photos, so a finished detection is reused without it. Boxes from
    `DETECTION_SCORE` (or `instances.min_score` when lower) are kept.

    Args:
        recipe: Recipe. A loaded recipe with `instances.detector`.
        run_dir: Path. The parent run directory.

    Returns:
        The recipe with `instances.boxes` (and `validation_boxes`) naming the box
        files instead of `instances.detector`.

    Raises:
        RecipeError: the detector cannot be loaded or a data folder has no photos.
    """
    from keras_colorize.detection import DETECTION_SCORE, PhotoDetector, completed_box_file, detect_box_file
    from keras_colorize.training.run import say

    section = recipe["instances"]
    min_score = min(DETECTION_SCORE, section["min_score"] if section.get("min_score") is not None else 1.0)
    sources = {"train": recipe["data"]["train"]}
    if recipe["data"]["validation"]:
        sources["validation"] = recipe["data"]["validation"]
    detector = None
    data = recipe.to_dict()
    del data["instances"]["detector"]
    for name, source in sources.items():
        path = Path(run_dir) / "boxes" / f"{name}.json"
        try:
            found = _photos_of(source)
            counts = completed_box_file(path, found, section["detector"], min_score)
            if counts is None:
                say(f"boxes of the {name} photos: detecting with {section['detector']} into {path}")
                detector = detector or PhotoDetector(section["detector"], min_score=min_score)
                counts = detect_box_file(
                    detector, found, path, preset=section["detector"], progress=False, restart_hint=f"delete {path} first"
                )
        except UserInputError as error:
            raise recipe.error(("instances", "detector"), first_line(error)) from None
        say(f"{path}: {counts['photos']} photos detected now, {counts['resumed']} before, {counts['boxes']} new boxes")
        data["instances"]["boxes" if name == "train" else "validation_boxes"] = str(path)
    return recipe.replace(data)


def _stage_is_complete(stage_dir, epochs):
    from keras_colorize.training.run import read_state

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
    from keras_colorize.training.run import default_run_dir, fit_run, read_state, say

    if stage is not None and stage not in STAGES:
        raise UserInputError(f"unknown stage {stage!r} (expected one of: {', '.join(STAGES)})")
    check_data_paths(recipe)
    _check_boxes_paths(recipe)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe)
    if recipe["instances"].get("detector"):
        recipe = detected_boxes_recipe(recipe, run_dir)
    for name in [stage] if stage else STAGES:
        stage_dir = run_dir / name
        stage_epochs = stage_recipe(recipe, name)["train"]["epochs"]
        if stage is None and resume and _stage_is_complete(stage_dir, stage_epochs):
            say(f"stage {name}: already trained ({stage_dir}); skipped")
            continue
        plan = _stage_plan(recipe, name, run_dir)
        say(f"stage {name} ({STAGES.index(name) + 1} of {len(STAGES)})")
        fit_run(plan, stage_dir, resume=resume and read_state(stage_dir) is not None, verbose=verbose)
    return run_dir


class InstanceKind(RegressionKind):
    """Instance-aware colorization (an `instances` section): three regression stages.

    `build_model` builds the first stage's full-image Colorizer; `train` runs the stages.
    """

    name = "instance"
    sections = {
        "instances": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "boxes": OPTIONAL_PATH,
                "detector": OPTIONAL_PATH,
                "validation_boxes": OPTIONAL_PATH,
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
    }
    section_defaults = {
        "instances": {
            "detector": None,
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
    }
    requirement = "needs an instances section (instance-aware training: instances.boxes)"
    refusal = "instance-aware training (instances) trains with a regression loss, not a trainer"

    def claims(self, data):
        return "instances" in data

    def check(self, recipe):
        section = recipe["instances"]
        if section.get("boxes") and section.get("detector"):
            raise recipe.error(
                ("instances", "detector"),
                "set either instances.boxes (a box file) or instances.detector (a detector preset), not both",
            )
        if not section.get("boxes") and not section.get("detector"):
            raise recipe.error(
                ("instances", "boxes"), "required key is missing (or instances.detector: a keras-hub detector preset)"
            )
        if section.get("detector") and section.get("validation_boxes"):
            raise recipe.error(
                ("instances", "validation_boxes"), "instances.detector finds the validation boxes too; remove it"
            )

    def check_classes(self, recipe):
        from keras_colorize import models
        from keras_colorize.models.unet import UNet

        super().check_classes(recipe)
        name = recipe["model"]["name"]
        if not issubclass(models.get_model_class(name), UNet):
            unets = [n for n in models.list_models("generator") if issubclass(models.get_model_class(n), UNet)]
            raise recipe.error(("model", "name"), f"instance-aware training needs a U-Net ({', '.join(unets)}), not {name}")

    def plan(self, recipe):
        raise TypeError("instance-aware training has one RunPlan per stage; train it with run_stages")

    def train(self, recipe, run_dir=None, resume=False, verbose="auto", stage=None):
        return run_stages(recipe, run_dir=run_dir, stage=stage, resume=resume, verbose=verbose)
