"""The `keras-colorize export` command: a checkpoint to a SavedModel, ONNX, .keras file or preset."""

from pathlib import Path

import click

from keras_colorize.cli.common import (
    backend_option,
    check_model_argument,
    import_keras_quietly,
    overwrite_option,
    select_backend,
    size_option,
)
from keras_colorize.errors import UserInputError, first_line
from keras_colorize.export.core import FORMATS, check_output


@click.command(short_help="Export a checkpoint as a SavedModel, an ONNX file, a .keras file or a preset.")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "export_format",
    type=click.Choice(FORMATS),
    default="saved_model",
    show_default=True,
    help="saved_model: a folder for TensorFlow Serving; onnx: one .onnx file; keras: a plain Colorizer .keras "
    "file; preset: a preset folder (config.json, model.weights.h5, metadata.json).",
)
@click.option(
    "--metadata",
    "metadata_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--format preset: a JSON or YAML mapping added to metadata.json (training data, figures).",
)
@size_option("the checkpoint's size")
@overwrite_option("Replace an existing OUT.")
@click.option("--force", is_flag=True, hidden=True, help="Old name of --overwrite (deprecated).")
@backend_option
def export(checkpoint, out, export_format, metadata_file, size, overwrite, force, backend):
    """Export CHECKPOINT (a .keras Colorizer or trainer, or a preset) to OUT.

    The SavedModel's serving_default signature takes one uint8 photo of any size,
    RGB (H, W, 3) or gray (H, W, 1), and returns the colorized uint8 RGB photo of
    the same size ("colorized"); colorize_batch takes a batch (N, H, W, C) of one
    size. L*a*b* conversion, resizing and the full-resolution recombination happen
    inside the graph. Generators with a classification branch also return
    "class_logits". The ONNX file holds the serving_default graph. A preset folder
    loads with Colorizer.from_preset and wherever the command line takes a
    checkpoint; its metadata.json records the run's recipe (when CHECKPOINT lies in
    a run directory) and the --metadata file. SavedModel and
    ONNX are written by a TensorFlow-backend process: from another backend, one is
    started for the export. OUT is written next to its place and then renamed, so
    a failed export leaves nothing behind.

    \b
    Examples:
      keras-colorize export runs/quickstart/checkpoints/best.keras exported/quickstart
      keras-colorize export best.keras colorizer.onnx --format onnx
      keras-colorize export best.keras presets/mine --format preset --metadata figures.yaml
      keras-colorize colorize --saved-model exported/quickstart old_photos/ -o colorized/
    """
    select_backend(backend)
    if force:
        click.echo("warning: --force is deprecated; use --overwrite", err=True)
        overwrite = True
    check_model_argument(checkpoint)
    if export_format == "keras" and out.suffix != ".keras":
        raise UserInputError(f"{out}: a .keras export needs a file name ending in .keras")
    if metadata_file is not None and export_format != "preset":
        raise UserInputError("--metadata applies to --format preset only")
    check_output(out, overwrite)
    metadata = _preset_metadata(checkpoint, metadata_file) if export_format == "preset" else None
    import_keras_quietly()
    from keras_colorize.loading import load_colorizer
    from keras_colorize.export.core import IN_PROCESS_FORMATS, current_backend, export_colorizer

    colorizer = load_colorizer(checkpoint)
    info = export_colorizer(colorizer, out, export_format, image_size=size, overwrite=overwrite, metadata=metadata)
    click.echo(info.summary())
    if export_format not in IN_PROCESS_FORMATS and current_backend() != "tensorflow":
        click.echo(f"(written by a TensorFlow-backend subprocess; this command ran on {current_backend()})")


def _preset_metadata(checkpoint, metadata_file):
    """The metadata of a preset export: the source, the run's recipe, and the --metadata mapping."""
    import yaml

    from keras_colorize.recipes import recipe_of_checkpoint

    metadata = {"source": str(checkpoint)}
    recipe = recipe_of_checkpoint(checkpoint)
    if recipe is not None:
        metadata["recipe"] = recipe.to_dict()
    if metadata_file is not None:
        try:
            extra = yaml.safe_load(metadata_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise UserInputError(f"--metadata {metadata_file}: cannot read ({first_line(error)})") from None
        if not isinstance(extra, dict):
            raise UserInputError(f"--metadata {metadata_file}: expected a mapping, got {type(extra).__name__}")
        metadata.update(extra)
    return metadata
