"""The `keras-colorize export` command."""

from pathlib import Path

import click

from keras_colorize.errors import UserInputError
from keras_colorize.export.core import FORMATS, check_output

BACKENDS = ("tensorflow", "jax", "torch")


@click.command(short_help="Export a checkpoint as a SavedModel, an ONNX file or a .keras file.")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "export_format",
    type=click.Choice(FORMATS),
    default="saved_model",
    show_default=True,
    help="saved_model: a folder for TensorFlow Serving; onnx: one .onnx file; keras: a plain Colorizer .keras file.",
)
@click.option(
    "--size", type=click.IntRange(min=1), default=None, help="Generator input size (default: the checkpoint's)."
)
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend for this command (default: KERAS_BACKEND, else tensorflow).",
)
def export(checkpoint, out, export_format, size, force, backend):
    """Export CHECKPOINT (a .keras Colorizer) to OUT.

    The SavedModel's serving_default signature takes one uint8 photo of any size,
    RGB (H, W, 3) or gray (H, W, 1), and returns the colorized uint8 RGB photo of
    the same size ("colorized"); colorize_batch takes a batch (N, H, W, C) of one
    size. L*a*b* conversion, resizing and the full-resolution recombination happen
    inside the graph. Generators with a classification branch also return
    "class_logits". The ONNX file holds the serving_default graph. SavedModel and
    ONNX are written by a TensorFlow-backend process: from another backend, one is
    started for the export. OUT is written next to its place and then renamed, so
    a failed export leaves nothing behind.

    \b
    Examples:
      keras-colorize export runs/quickstart/checkpoints/best.keras exported/quickstart
      keras-colorize export best.keras colorizer.onnx --format onnx
      keras-colorize colorize --saved-model exported/quickstart old_photos/ -o colorized/
    """
    from keras_colorize.cli import import_keras_quietly, select_backend

    select_backend(backend)
    if not checkpoint.is_file():
        raise UserInputError(f"{checkpoint}: checkpoint not found")
    if export_format == "keras" and out.suffix != ".keras":
        raise UserInputError(f"{out}: a .keras export needs a file name ending in .keras")
    check_output(out, force)
    import_keras_quietly()
    from keras_colorize.colorizer import load_colorizer
    from keras_colorize.export.core import current_backend, export_colorizer

    colorizer = load_colorizer(checkpoint)
    info = export_colorizer(colorizer, out, export_format, image_size=size, overwrite=force)
    click.echo(info.summary())
    if export_format != "keras" and current_backend() != "tensorflow":
        click.echo(f"(written by a TensorFlow-backend subprocess; this command ran on {current_backend()})")
