"""The `keras-colorize detect` command: the instance boxes of photos, from a keras-hub detector."""

from pathlib import Path

import click

from keras_colorize.cli.common import backend_option, import_keras_quietly, overwrite_option, select_backend
from keras_colorize.errors import UserInputError


def detector_option(help_text):
    """The `--detector PRESET` option (a keras-hub object detector preset handle or folder)."""

    def decorate(function):
        return click.option("--detector", default=None, metavar="PRESET", help=help_text)(function)

    return decorate


def parse_classes(text):
    """`--classes person,dog` as a tuple of names, or None when not given."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise UserInputError("--classes: give category names separated by commas, e.g. person,dog")
    return names


@click.command(short_help="Detect the objects of photos into a box file for instance-aware colorization.")
@click.argument("inputs", nargs=-1, metavar="PHOTOS...", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="The box file to write (COCO-style JSON); an existing one is resumed.",
)
@detector_option("keras-hub object detector: a preset handle (e.g. retinanet_resnet50_fpn_coco) or folder.")
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Keep boxes scoring at least this (default: 0.5; colorizing keeps those >= 0.99).",
)
@click.option("--classes", default=None, help="Keep these categories only, comma-separated (e.g. person,dog).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Photos per detector call.")
@overwrite_option("Detect every photo again into a new OUTPUT instead of resuming it.")
@backend_option
def detect(inputs, output, detector, min_score, classes, batch_size, overwrite, backend):
    """Detect the objects of PHOTOS (files and folders, searched recursively) into a box file.

    The box file is the COCO-style JSON that `colorize --boxes` and the
    `instances.boxes` recipe key read: an image entry per photo (its path relative
    to the input folder) and an annotation per box: `bbox` [x, y, width, height] in
    the photo's pixels, `score`, `category_id` and `category`. An existing OUTPUT is
    resumed: photos already in it are skipped, so an interrupted run continues; the
    file is saved as it goes and replaced atomically. Unreadable photos are skipped
    with a warning.

    The detector is a keras-hub object detector preset: a handle such as
    retinanet_resnet50_fpn_coco (downloaded by keras-hub on first use) or a folder
    written by save_to_preset.

    \b
    Examples:
      keras-colorize detect photos/ -o boxes.json --detector retinanet_resnet50_fpn_coco
      keras-colorize detect photos/ -o people.json --detector my_detector/ --classes person --min-score 0.7
    """
    from keras_colorize.detection import DETECTION_SCORE, PhotoDetector, completed_box_file, detect_box_file, photo_keys

    if detector is None:
        raise UserInputError("--detector PRESET is required (a keras-hub object detector preset handle or folder)")
    if not inputs:
        raise UserInputError("no PHOTOS given (photo files or folders to detect)")
    if output.is_dir():
        raise UserInputError(f"{output}: is a folder; -o names the box file to write")
    photos = photo_keys(inputs)
    names = parse_classes(classes)
    min_score = DETECTION_SCORE if min_score is None else min_score
    counts = None if overwrite else completed_box_file(output, photos, detector, min_score, names)
    if counts is None:  # photos to detect: load the detector
        select_backend(backend)
        import_keras_quietly()
        found = PhotoDetector(detector, min_score=min_score, classes=names, batch_size=batch_size)
        counts = detect_box_file(found, photos, output, preset=detector, overwrite=overwrite)
    summary = f"detected {counts['boxes']} boxes in {counts['photos']} photos into {output}"
    if counts["resumed"]:
        summary += f" ({counts['resumed']} already in it)"
    if counts["skipped"]:
        summary += f"; skipped {counts['skipped']} unreadable"
    click.echo(summary)
