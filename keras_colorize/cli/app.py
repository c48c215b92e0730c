"""The `keras-colorize` command line: fit, evaluate, colorize, detect, convert, export, models, recipes, ...

The Keras backend is chosen first (`--backend` on the group or on a command, else the
`KERAS_BACKEND` environment variable), so this module imports nothing that imports Keras
at module level. A user mistake prints one line, `error: <message>`, on stderr and exits
with status 2; a run that diverges exits with status 1.

Examples:
    keras-colorize recipes
    keras-colorize --backend jax fit quickstart --set train.epochs=2
    keras-colorize evaluate runs/quickstart/checkpoints/best.keras --data photos/
    keras-colorize colorize runs/quickstart/checkpoints/best.keras old_photos/ -o colorized/
    keras-colorize convert instruct-pix2pix/ presets/ip2p
    keras-colorize colorize --model presets/ip2p old_photos/ -o colorized/
"""

import contextlib
import os
import sys
import warnings
from pathlib import Path

import click

from keras_colorize import __version__
from keras_colorize.cli.common import (
    BACKENDS,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    backend_option,
    check_model_argument,
    import_keras_quietly,
    overwrite_option,
    refuse_existing,
    select_backend,
    size_option,
)
from keras_colorize.cli.detect import detect, detector_option
from keras_colorize.cli.export import export
from keras_colorize.cli.web import web_app
from keras_colorize.cli.weights import weights
from keras_colorize.errors import UserInputError
from keras_colorize.recipes.kinds.instance import STAGES
from keras_colorize.video.io import DEFAULT_FRAME_BATCH
from keras_colorize.video.stabilization import DEFAULT_STRENGTH

# Output formats of `colorize`: input suffixes written back in their own format.
# Anything else (GIF, which holds only 256 colours) is written as PNG.
_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


# ----------------------------------------------------------------------------- errors


@contextlib.contextmanager
def _plain_warnings():
    """Show user-facing warnings as `warning: <message>` lines on stderr."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and category.__module__.startswith("keras_colorize"):
            click.echo(f"warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


class _Group(click.Group):
    """A click group that turns known errors into one-line messages and exit codes."""

    def invoke(self, ctx):
        try:
            with _plain_warnings():
                return super().invoke(ctx)
        except UserInputError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as error:
            from keras_colorize.training.run import TrainingDivergedError

            if isinstance(error, TrainingDivergedError):
                click.echo(f"error: {error}", err=True)
                ctx.exit(EXIT_DIVERGED)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend (default: KERAS_BACKEND, else tensorflow). Chosen before Keras is imported.",
)
@click.version_option(__version__, prog_name="keras-colorize")
def cli(backend):
    """Automatic image colorization with Keras 3 on TensorFlow, JAX and PyTorch.

    Relative paths (in recipes too) are relative to the current working directory.
    """
    select_backend(backend)


# ----------------------------------------------------------------------------- fit


@cli.command(short_help="Train a colorizer from a recipe (a file or a built-in name).")
@click.argument("recipe")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.epochs=3 (value parsed as YAML; repeatable).",
)
@click.option("--resume", is_flag=True, help="Continue the run in the run directory from checkpoints/last.keras.")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run directory (default: train.run_dir, else runs/<recipe name>).",
)
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    default=None,
    help="Instance-aware recipes: run this stage only (default: full, instance and fusion in order).",
)
@click.option(
    "--distribution",
    type=click.Choice(["data_parallel"]),
    default=None,
    help="Train on all local devices, each batch split over them (sets train.distribution; JAX, TensorFlow).",
)
@click.option(
    "--mixed-precision",
    "mixed_precision",
    type=click.Choice(["float32", "mixed_bfloat16", "mixed_float16"]),
    default=None,
    metavar="POLICY",
    help="Keras dtype policy: float32, mixed_bfloat16 or mixed_float16 (sets train.mixed_precision).",
)
@backend_option
def fit(recipe, overrides, resume, run_dir, stage, distribution, mixed_precision, backend):
    """Train the colorizer described by RECIPE (a YAML file or a built-in name).

    Writes the run directory: recipe.yaml, environment.json, checkpoints/last.keras and
    best.keras, state.json, history.csv, loss_curve.png and samples/epoch_XXX.png. An
    existing run is never overwritten: pass --resume to continue it.

    A recipe with an `instances` section (instance-aware colorization) trains three
    stages, each in its own run directory under the run directory: full/, instance/
    and fusion/; each stage starts from the best.keras of the stages before it.

    \b
    Examples:
      keras-colorize fit quickstart
      keras-colorize fit unet_v1 --set data.train=photos/ --set train.epochs=20
      keras-colorize fit unet_v1 --set data.train=photos/ --resume
      keras-colorize fit instance_fusion --set data.train=photos/ --set instances.boxes=boxes.json
      keras-colorize fit instance_fusion --set data.train=photos/ --set instances.boxes=boxes.json --stage fusion
      keras-colorize fit unet_v1 --set data.train=photos/ --distribution data_parallel --mixed-precision mixed_bfloat16
    """
    select_backend(backend)
    import_keras_quietly()
    from keras_colorize.recipes import load_recipe
    from keras_colorize.training.runner import run_training

    overrides = list(overrides)
    if distribution is not None:
        overrides.append(f"train.distribution={distribution}")
    if mixed_precision is not None:
        overrides.append(f"train.mixed_precision={mixed_precision}")
    loaded = load_recipe(recipe, overrides=overrides)
    try:
        run_training(loaded, run_dir=run_dir, resume=resume, stage=stage)
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: the checkpoints of completed epochs are kept; continue with --resume", err=True
        )
        sys.exit(EXIT_INTERRUPTED)


# ----------------------------------------------------------------------------- evaluate


def _evaluation_source(data, run_recipe, checkpoint):
    """The photos `evaluate --data` names: a folder, the sample photos, or the run's held-out files."""
    from keras_colorize.data import holdout_files, sample_photo_paths

    if data == "samples":
        return sample_photo_paths()
    if data != "holdout":
        return data
    fraction = run_recipe.get_path("data.holdout_fraction", 0.0) if run_recipe is not None else 0.0
    if not fraction:
        raise UserInputError(
            f"--data holdout: {checkpoint} has no recipe with data.holdout_fraction (a run directory's "
            f"recipe.yaml or a preset's metadata); give a folder instead"
        )
    return holdout_files(run_recipe.get_path("data.train"), fraction, seed=run_recipe.get_path("train.seed", 0))


@cli.command(short_help="Compare checkpoints with each other, the truth and the gray baseline.")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--data",
    default=None,
    help="Folder of colour photos, 'samples' (the built-in sample photos), or 'holdout' (the photos the first "
    "model's recipe set aside with data.holdout_fraction); default: evaluate.data of the first run's recipe.",
)
@size_option("the first model's size", extra=" (the photos' centre crops)")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Batch size (default: the recipe's, else 16)."
)
@click.option(
    "--metrics",
    "metric_names",
    multiple=True,
    metavar="NAMES",
    help="Columns, comma-separated: psnr, ssim, mae, lpips, fid, kid, colorfulness, colorfulness_gap, "
    "ciede2000, ab_mse (default: all available; KID below 2048 images, FID otherwise).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("evaluation"),
    show_default=True,
    help="Folder for metrics.json, per_image.csv, comparison.png and report.html.",
)
@overwrite_option("Replace existing result files.")
@click.option(
    "--lpips-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Converted LPIPS weights file (default: the LPIPS cache; LPIPS is left out when absent).",
)
@click.option(
    "--fid-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Inception weights file for FID/KID (without it they are left out; named with --metrics "
    "they run on random weights, plumbing only).",
)
@backend_option
def evaluate(
    checkpoints, data, size, batch_size, metric_names, output, overwrite, lpips_weights, fid_weights, backend
):
    """Evaluate CHECKPOINTS and the gray baseline on the same photos.

    CHECKPOINTS are .keras Colorizers or GAN/WGAN-GP trainers, colorizer presets,
    exported SavedModel folders or .onnx files, or InstructPix2Pix presets (sampled
    with the default settings and seed 0 at --size). Every model colorizes the same
    centre crops (at --size, else the first model's size; the exported and diffusion
    models see the gray crops as whole photos) and is compared with the truth in sRGB in [0, 1]: psnr, ssim, mae (0-255),
    lpips, fid or kid, colorfulness and its gap, ciede2000, and ab_mse in model units.
    Prints the protocol and a table (one row per model, then the gray baseline, ab = 0);
    writes metrics.json (summary), per_image.csv (one row per image and model),
    comparison.png (gray input, each model, truth) and report.html (self-contained,
    opens in a browser). Existing files are kept unless --overwrite.

    \b
    Examples:
      keras-colorize evaluate runs/quickstart/checkpoints/best.keras --data photos/
      keras-colorize evaluate runs/a/checkpoints/best.keras runs/b/checkpoints/best.keras \\
          --data photos/ --size 256 --lpips-weights lpips_alex.npz -o compare/
    """
    select_backend(backend)
    for checkpoint in checkpoints:
        check_model_argument(checkpoint, exported=True)
    if lpips_weights is not None and not lpips_weights.is_file():
        raise UserInputError(f"--lpips-weights {lpips_weights}: file not found")
    if fid_weights is not None and not fid_weights.is_file():
        raise UserInputError(f"--fid-weights {fid_weights}: file not found")
    import_keras_quietly()
    from keras_colorize.loading import load_photo_colorizer
    from keras_colorize.data import ImageFolder
    from keras_colorize.evaluation import (
        MetricPlan,
        checkpoint_labels,
        checkpoint_record,
        format_table,
        model_run_size,
        parse_metric_names,
        protocol_lines,
        report_paths,
        write_evaluation_report,
    )
    from keras_colorize.recipes import recipe_of_checkpoint

    requested = parse_metric_names(metric_names)
    paths = report_paths(output)
    refuse_existing(paths.values(), overwrite)
    run_recipe = recipe_of_checkpoint(checkpoints[0])
    if data is None and run_recipe is not None:
        data = run_recipe.get_path("evaluate.data")
    source = _evaluation_source(data, run_recipe, checkpoints[0])
    if data is None:
        raise UserInputError("--data is required (no evaluate.data in the run's recipe.yaml)")
    if batch_size is None:
        batch_size = run_recipe.get_path("evaluate.batch_size", 16) if run_recipe is not None else 16

    labels = checkpoint_labels(checkpoints)
    colorizers = {label: load_photo_colorizer(path, size=size) for label, path in zip(labels, checkpoints)}
    trained = getattr(colorizers[labels[0]], "image_size", None)
    if size is None and trained is None:
        raise UserInputError(f"{checkpoints[0]}: its size is not recorded; give --size")
    size = size or trained[0]
    for label, colorizer in colorizers.items():
        model_run_size(colorizer, size, label)
    # Bad metric options fail before the data set is scanned; the plan proper needs its size.
    MetricPlan(requested, None, image_size=size, lpips_weights=lpips_weights, fid_weights=fid_weights)
    dataset = ImageFolder(
        source, image_size=size, batch_size=batch_size, training=False, drop_grayscale=True, name="evaluation"
    )
    click.echo(dataset.summary)
    plan = MetricPlan(
        requested, len(dataset.files), image_size=size, lpips_weights=lpips_weights, fid_weights=fid_weights
    )
    models = {label: checkpoint_record(path, colorizers[label]) for label, path in zip(labels, checkpoints)}
    summary = write_evaluation_report(colorizers, dataset, output, plan=plan, models=models, data=data, verbose=1)
    click.echo("")
    for line in protocol_lines(summary):
        click.echo(line)
    click.echo(f"{summary['num_images']} images at {size}x{size}:")
    click.echo(format_table(summary))
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


# ----------------------------------------------------------------------------- colorize


def _is_video(path):
    from keras_colorize.data.files import VIDEO_EXTENSIONS

    return path.suffix.lower() in VIDEO_EXTENSIONS


def _output_path(relative, output):
    suffix = relative.suffix.lower()
    if suffix not in _SAVE_FORMATS and not _is_video(relative):
        relative = relative.with_suffix(".png")
    return output / relative


def plan_colorize(inputs, output):
    """Map input photos and videos to output files for `colorize`.

    Folders are searched recursively (images and videos) and keep their sub-folder
    layout under `output`; files go directly into `output`. The file name is kept;
    formats Pillow cannot write back faithfully (GIF) become PNG.

    Args:
        inputs: sequence of str or Path. Files and folders.
        output: str or Path. The output folder.

    Returns:
        A list of `(input_path, output_path)` pairs.

    Raises:
        UserInputError: an input is missing, holds no images, two inputs map to the
            same output, or an output would replace an input.
    """
    from keras_colorize.data import list_images
    from keras_colorize.data.files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    output = Path(output)
    output_resolved = output.resolve()
    pairs = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            folder = path.resolve()
            nested_output = folder in output_resolved.parents  # -o is a sub-folder of this input
            for file in list_images(path, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
                if nested_output and output_resolved in file.resolve().parents:
                    continue  # an earlier result inside the input folder
                pairs.append((file, _output_path(file.relative_to(path), output)))
        elif path.is_file():
            pairs.append((path, _output_path(Path(path.name), output)))
        else:
            raise UserInputError(f"{item}: no such file or folder")
    if not pairs:
        raise UserInputError("no input images or videos found")
    inputs_resolved = {p.resolve() for p, _ in pairs}
    seen = {}
    for source, target in pairs:
        resolved = target.resolve()
        if resolved in inputs_resolved:
            raise UserInputError(f"{target}: output would replace an input photo; choose another -o")
        if resolved in seen:
            raise UserInputError(f"{seen[resolved]} and {source} would both be written to {target}")
        seen[resolved] = source
    return pairs


_DIFFUSION_OPTIONS = ("prompt", "guidance", "image_guidance", "steps", "seed", "sampler", "size")


@cli.command(short_help="Colorize photos of any size and films: the built-in model, a checkpoint or a preset.")
@click.argument("paths", nargs=-1, metavar="[CHECKPOINT] INPUT...", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (sub-folders of input folders are kept).",
)
@overwrite_option("Replace existing output files (inputs are never replaced).")
@click.option(
    "--saved-model",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use an exported SavedModel folder (keras-colorize export) instead of CHECKPOINT.",
)
@click.option(
    "--boxes",
    type=click.Path(path_type=Path),
    default=None,
    help="Instance boxes of the photos (COCO-style JSON, or a folder of one JSON/.npz per photo), "
    "for an instance-aware CHECKPOINT (fusion stage).",
)
@detector_option(
    "Find the instance boxes of each photo with this keras-hub object detector (a preset handle or folder), "
    "for an instance-aware CHECKPOINT, instead of --boxes."
)
@click.option(
    "--model",
    "preset",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="PRESET",
    help="Colorize with a preset instead of CHECKPOINT: a colorizer preset (built-in name or folder) or an "
    "InstructPix2Pix preset folder (keras-colorize convert).",
)
@click.option("--prompt", default=None, help='--model: the instruction (default: "colorize the image").')
@click.option(
    "--guidance", type=click.FloatRange(min=0.0), default=None, help="--model: text guidance scale (default: 7)."
)
@click.option(
    "--image-guidance",
    "image_guidance",
    type=click.FloatRange(min=0.0),
    default=None,
    help="--model: image guidance scale (default: 1.5).",
)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="--model: sampling steps (default: 20).")
@click.option(
    "--seed", type=int, default=None, help="--model: seed of the sampling noise, the same for every photo and frame (default: random; 0 with videos)."
)
@click.option(
    "--sampler",
    type=click.Choice(["euler_ancestral", "ddim"]),
    default=None,
    help="--model: sampler (default: euler_ancestral).",
)
@size_option("256", extra=" (--model only; rounded down to the model's size multiple)")
@click.option(
    "--stabilize/--no-stabilize",
    default=True,
    show_default=True,
    help="Videos: carry colour along the motion from frame to frame (less flicker; reset at scene cuts).",
)
@click.option(
    "--stabilize-strength",
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    default=DEFAULT_STRENGTH,
    show_default=True,
    help="Videos: weight of the previous frame's colour where the motion is reliable, in [0, 1).",
)
@click.option(
    "--frame-batch",
    type=click.IntRange(min=1),
    default=DEFAULT_FRAME_BATCH,
    show_default=True,
    help="Videos: frames colorized per model call (memory grows with it).",
)
@backend_option
def colorize(paths, output, overwrite, saved_model, boxes, detector, preset, backend, stabilize, stabilize_strength,
             frame_batch, **sampling):
    """Colorize photos of any size and films with the built-in model, CHECKPOINT or a --model PRESET.

    Without CHECKPOINT (when the first argument is neither a .keras file nor a
    preset), the built-in colorizer (backbone_unet_vgg16, a U-Net on an ImageNet
    VGG16, see `keras-colorize models`) colorizes. CHECKPOINT is a .keras Colorizer,
    a GAN/WGAN-GP trainer, a colorizer preset (a built-in name or a folder
    written by `keras-colorize export --format preset`), or an exported SavedModel
    folder or .onnx file (`keras-colorize export`; ONNX needs onnxruntime).

    An instance-aware checkpoint (the fusion stage's) colorizes each photo with its
    instance boxes: found by --detector (a keras-hub object detector, in the same
    pass), or read from --boxes (matched by path relative to an input folder, else by
    file name, see `keras-colorize detect`); photos without boxes, or without either
    option, take the full-image path.

    With --saved-model DIR, CHECKPOINT is left out: the exported SavedModel colorizes
    (through TensorFlow), so a deployment can be checked with the same command.

    With --model PRESET, CHECKPOINT is left out too: a colorizer preset works as
    CHECKPOINT does; an InstructPix2Pix preset (see
    `keras-colorize convert`) colorizes each photo by diffusion sampling at --size,
    conditioned on the gray photo and --prompt; its colours are recombined with the
    photo's full-resolution lightness. --prompt, --guidance, --image-guidance,
    --steps, --seed, --sampler and --size apply to --model only.

    INPUTS are files or folders (searched recursively). Each result keeps the input's
    file name, size and sub-folder; JPEG, PNG, BMP, WebP and TIFF inputs keep their
    format, GIF inputs are written as PNG. Gray and colour photos both work (colour is
    replaced). Unreadable files are skipped with a warning.

    Videos (MP4, MOV, MKV, WebM, AVI) come out in the same container with the same
    frame rate, size, frame count and audio; frames are colorized in batches of
    --frame-batch at full resolution and stabilised over time (--no-stabilize for
    independent frames, --stabilize-strength to set how much colour is carried
    along the motion). Videos take the full-image path of an instance-aware model;
    with --model and no --seed every frame uses seed 0.

    \b
    Examples:
      keras-colorize colorize old_photos/ -o colorized/
      keras-colorize colorize runs/quickstart/checkpoints/best.keras old_photos/ -o colorized/
      keras-colorize colorize --saved-model exported/quickstart old_photos/ -o colorized/
      keras-colorize colorize colorizer.onnx old_photos/ -o colorized/
      keras-colorize colorize runs/instance_fusion/fusion/checkpoints/best.keras old_photos/ \\
          --boxes old_photos_boxes.json -o colorized/
      keras-colorize colorize runs/instance_fusion/fusion/checkpoints/best.keras old_photos/ \\
          --detector retinanet_resnet50_fpn_coco -o colorized/
      keras-colorize colorize --model presets/ip2p old_photos/ -o colorized/ --steps 20 --seed 0
      keras-colorize colorize old_film.mp4 -o colorized/
      keras-colorize colorize old_film.mp4 -o colorized/ --stabilize-strength 0.9
    """
    from keras_colorize.export.artefacts import is_saved_model_folder
    from keras_colorize.presets import DEFAULT_PRESET, is_preset

    select_backend(backend)
    given = [f"--{name.replace('_', '-')}" for name in _DIFFUSION_OPTIONS if sampling[name] is not None]
    if preset is not None and is_preset(preset):
        paths, preset = (preset, *paths), None  # a colorizer preset, taken as CHECKPOINT
    if preset is not None:
        if saved_model is not None:
            raise UserInputError("--model and --saved-model cannot be combined (choose one model)")
        if boxes is not None or detector is not None:
            option = "--boxes" if boxes is not None else "--detector"
            raise UserInputError(f"{option} needs an instance-aware CHECKPOINT; it does not apply to --model")
        if not paths:
            raise UserInputError("no INPUTS given (photos or folders to colorize with --model)")
        from keras_colorize.models.instruct_pix2pix.convert.preset import read_preset_config

        read_preset_config(preset)
        checkpoint, inputs = None, paths
    else:
        if given:
            raise UserInputError(f"{given[0]} applies to --model (an InstructPix2Pix preset) only")
        if boxes is not None and detector is not None:
            raise UserInputError("--boxes and --detector cannot be combined (boxes from a file, or detected)")
        if not paths:
            raise UserInputError("no INPUTS given (photos or folders to colorize)")
        if saved_model is not None:
            checkpoint, inputs = None, paths  # every argument is an input
        elif paths[0].suffix in (".keras", ".onnx") or is_preset(paths[0]) or is_saved_model_folder(paths[0]):
            checkpoint, inputs = paths[0], paths[1:]
            if not inputs:
                raise UserInputError("no INPUTS given (photos or folders to colorize after CHECKPOINT)")
            check_model_argument(checkpoint, exported=True)
        else:
            checkpoint, inputs = DEFAULT_PRESET, paths  # the built-in colorizer
    import_keras_quietly()
    import keras
    from PIL import Image

    from keras_colorize.atomic_files import atomic_file
    from keras_colorize.data import UnreadableImageError, load_image
    from keras_colorize.loading import load_photo_colorizer

    pairs = plan_colorize(inputs, output)
    if not overwrite:
        existing = [target for _, target in pairs if target.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise UserInputError(f"{existing[0]}: already exists{more}; pass --overwrite to replace outputs")
    photos = [(source, target) for source, target in pairs if not _is_video(source)]
    videos = [(source, target) for source, target in pairs if _is_video(source)]
    boxes_of = None
    if preset is not None:
        if videos and sampling["seed"] is None:
            sampling["seed"] = 0  # the same noise in every frame: steadier colour
        colorizer = _diffusion_colorizer(preset, sampling)
    else:
        if saved_model is not None:
            from keras_colorize.export import SavedModelColorizer

            colorizer = SavedModelColorizer(saved_model)
        else:
            colorizer = load_photo_colorizer(checkpoint)
        boxes_of = _instance_boxes_for(
            colorizer, boxes, detector, inputs, checkpoint if saved_model is None else saved_model
        )

    progress = keras.utils.Progbar(len(photos), unit_name="image") if photos else None
    done = skipped = with_instances = 0
    for index, (source, target) in enumerate(photos):
        try:
            image = load_image(source)
        except UnreadableImageError as error:
            click.echo(f"\nwarning: skipped {error}", err=True)
            skipped += 1
        else:
            if boxes_of is None:
                result = colorizer.colorize(image)
            else:
                photo_boxes = boxes_of(source, image)
                with_instances += bool(photo_boxes)
                result = colorizer.colorize(image, boxes=photo_boxes)
            target.parent.mkdir(parents=True, exist_ok=True)
            image_format = _SAVE_FORMATS.get(target.suffix.lower(), "PNG")
            with atomic_file(target) as tmp:
                Image.fromarray(result).save(tmp, format=image_format, **_SAVE_OPTIONS.get(image_format, {}))
            done += 1
        progress.update(index + 1)
    films = 0
    for source, target in videos:
        films += _colorize_film(colorizer, source, target, stabilize, stabilize_strength, frame_batch)
    skipped += len(videos) - films
    summary = f"colorized {done} image{'s' if done != 1 else ''}"
    if videos:
        summary += f" and {films} video{'s' if films != 1 else ''}"
    summary += f" into {output}"
    if boxes_of is not None:
        summary += f" ({with_instances} with instance boxes)"
    if skipped:
        summary += f"; skipped {skipped} unreadable"
    click.echo(summary)


def _colorize_film(colorizer, source, target, stabilize, strength, frame_batch):
    """Colorize one video file; 1 when written, 0 when skipped as unreadable (with a warning)."""
    from keras_colorize.video import UnreadableVideoError, colorize_video, stabilizer_for

    stabilizer = stabilizer_for(stabilize, strength)
    click.echo(f"{source}:")
    try:
        result = colorize_video(colorizer, source, target, stabilizer=stabilizer, batch_size=frame_batch, progress=True)
    except UnreadableVideoError as error:
        click.echo(f"\nwarning: skipped {error}", err=True)
        return 0
    cuts = f", {result.scene_cuts} scene cut{'s' if result.scene_cuts != 1 else ''}" if stabilizer is not None else ""
    click.echo(f"\n{target}: {result.frames} frames at {result.frames_per_second:.1f} frames/s{cuts}")
    return 1


def _diffusion_colorizer(preset, sampling):
    """A `DiffusionColorizer` (photo -> colorized uint8 photo) sampling with an InstructPix2Pix preset."""
    from keras_colorize.models.instruct_pix2pix.pipeline import DiffusionColorizer

    return DiffusionColorizer(preset, **sampling)


def _instance_boxes_for(colorizer, boxes, detector, inputs, model_path):
    """A function `(photo path, photo) -> its instance boxes`, from the --boxes file
    (matched by path relative to an input folder) or the --detector; None without
    either. Checked against the colorizer."""
    if boxes is None and detector is None:
        return None
    from keras_colorize.data import read_boxes
    from keras_colorize.detection import PhotoDetector
    from keras_colorize.models.fusion import FusionColorizer

    if not isinstance(colorizer, FusionColorizer):
        option = "--boxes" if boxes is not None else "--detector"
        raise UserInputError(
            f"{model_path}: {option} needs an instance-aware checkpoint (the fusion stage's best.keras), "
            f"not a {type(colorizer).__name__}"
        )
    if detector is not None:
        found = PhotoDetector(detector, batch_size=1)  # one photo at a time, as it is colorized
        return lambda source, image: found.boxes(image)
    read = read_boxes(boxes)
    return lambda source, image: read.for_image(source, root=_input_root(source, inputs))


def _input_root(source, inputs):
    """The input folder that holds `source` (its box entries may be relative to it), or None."""
    for given in inputs:
        folder = Path(given)
        if folder.is_dir():
            try:
                Path(source).relative_to(folder)
            except ValueError:
                continue
            return folder
    return None


# ----------------------------------------------------------------------------- convert


@cli.command(short_help="Convert a diffusers or KerasCV Stable Diffusion checkpoint into an InstructPix2Pix preset.")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from",
    "layout",
    type=click.Choice(["diffusers", "keras-cv"]),
    default=None,
    help="Layout of SOURCE (default: detected: unet/config.json means diffusers, kcv_*.h5 files KerasCV).",
)
@overwrite_option("Replace an existing, non-empty OUTPUT folder.")
@backend_option
def convert(source, output, layout, overwrite, backend):
    """Convert the checkpoint folder SOURCE into the InstructPix2Pix preset folder OUTPUT.

    SOURCE is a diffusers checkpoint (unet/, vae/, text_encoder/ with config.json and
    .safetensors weights; tokenizer/ optional) or a folder of KerasCV's Stable
    Diffusion v1 files (kcv_diffusion_model.h5, vae_encoder.h5, kcv_decoder.h5,
    kcv_encoder.h5). A text-to-image U-Net (4 input channels) gets InstructPix2Pix's 8,
    the new conditioning channels zero: fine-tune it before colorizing.

    OUTPUT gets config.json and one .weights.h5 per network; it loads on every
    backend (`keras-colorize colorize --model OUTPUT`, `load_preset`).

    \b
    Examples:
      keras-colorize convert instruct-pix2pix/ presets/ip2p
      keras-colorize convert keras_cv_weights/ presets/sd_v1 --from keras-cv
    """
    select_backend(backend)
    from keras_colorize.models.instruct_pix2pix.convert.checkpoints import detect_layout

    if not source.is_dir():
        raise UserInputError(f"{source}: checkpoint folder not found")
    if output.exists() and not output.is_dir():
        raise UserInputError(f"{output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise UserInputError(f"{output}: already exists and is not empty; pass --overwrite to replace it")
    if output.resolve() == source.resolve() or source.resolve() in output.resolve().parents:
        raise UserInputError(f"{output}: the preset cannot be written inside the checkpoint folder {source}")
    layout = layout or detect_layout(source)
    import_keras_quietly()
    from keras_colorize.models.instruct_pix2pix.convert.checkpoints import components_from_checkpoint
    from keras_colorize.models.instruct_pix2pix.convert.preset import NETWORKS, save_preset

    components = components_from_checkpoint(source, layout)
    save_preset(output, components, overwrite=overwrite, metadata={"source": str(source), "layout": layout})
    counts = ", ".join(f"{name} {getattr(components, name).count_params():,}" for name in NETWORKS)
    click.echo(f"converted the {layout} checkpoint {source} into the preset {output} (parameters: {counts})")


# ----------------------------------------------------------------------------- listings


def _default_param_count(cls):
    """Parameters of a zoo class at its default configuration."""
    import keras

    if keras.backend.backend() == "jax":
        # Build abstractly: the shapes are all a count needs, and JAX then skips
        # compiling and running one random initializer per weight.
        import jax

        counted = {}

        def count():
            counted["params"] = cls().count_params()
            return 0

        jax.eval_shape(count)
        return counted["params"]
    return cls().count_params()


def _summary_line(cls):
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


@cli.command(short_help="List the model zoo with parameter counts.")
@backend_option
def models(backend):
    """List the model zoo (name, role, parameters at the default configuration, description) and the built-in presets."""
    select_backend(backend)
    import_keras_quietly()
    import keras

    from keras_colorize.models import get_model_class, list_models

    click.echo(f"keras-colorize models (Keras {keras.__version__}, backend {keras.backend.backend()})")
    rows = []
    for name in list_models():
        cls = get_model_class(name)
        try:
            params = f"{_default_param_count(cls):,}"
        except Exception:  # a class that needs arguments has no default size
            params = "-"
        rows.append((name, cls.zoo_role, params, _summary_line(cls)))
    name_width = max([len("name")] + [len(r[0]) for r in rows])
    param_width = max([len("parameters")] + [len(r[2]) for r in rows])
    click.echo(f"{'name'.ljust(name_width)}  {'role':9}  {'parameters'.rjust(param_width)}  description")
    for name, role, params, description in rows:
        click.echo(f"{name.ljust(name_width)}  {role:9}  {params.rjust(param_width)}  {description}")
    from keras_colorize.presets import DEFAULT_PRESET, list_presets, read_preset, resolve_preset

    click.echo("\nbuilt-in presets (use the name wherever a checkpoint is taken):")
    for name in list_presets():
        metadata = read_preset(resolve_preset(name))[1]
        default = " (the default of colorize)" if name == DEFAULT_PRESET else ""
        click.echo(f"  {name}{default}: {metadata.get('description', '')}")


@cli.command(short_help="List the built-in recipes.")
def recipes():
    """List the built-in recipes (use the name with `keras-colorize fit NAME`)."""
    from keras_colorize.recipes import builtin_recipe_dir, list_builtin_recipes

    found = list_builtin_recipes()
    if not found:
        click.echo("no built-in recipes found")
        return
    width = max(len(name) for name in found)
    for name, description in found.items():
        click.echo(f"{name.ljust(width)}  {description}")
    click.echo(f"(in {builtin_recipe_dir()}; copy one to edit it)")


@cli.command(short_help="Write the built-in sample photos into a folder.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def samples(directory):
    """Write the built-in sample photos into DIRECTORY (to try `colorize` or `evaluate`)."""
    from keras_colorize.data import sample_photos

    paths = sample_photos(directory)
    click.echo(f"{len(paths)} sample photos in {directory}: {', '.join(p.name for p in paths)}")


cli.add_command(detect)
cli.add_command(export)
cli.add_command(weights)
cli.add_command(web_app)


def main(argv=None):
    """Entry point of the `keras-colorize` script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.main(args=argv, prog_name="keras-colorize")


if __name__ == "__main__":
    main()
