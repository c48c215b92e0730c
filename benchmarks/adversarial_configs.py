"""Train the adversarial recipes on a small photo set and compare them on held-out photos.

Each recipe (built-in name or file) is trained with `run_training` in its own run
directory under `--output`, with the data folders and any `--set` overrides given
here; its last checkpoint is then evaluated on the held-out folder at the recipe's
image size (centre crops), next to the gray baseline (ab = 0). Prints a Markdown
table (PSNR, SSIM, colourfulness and its gap to the truth, CIEDE2000, class accuracy
where the generator has a class branch) and writes `comparison.json`.

The folders hold class sub-folders (`<root>/<class>/<photo>`), which the class
recipes need; `--classes N` sets `model.num_classes` of generators with a class branch.
`--photos DIR` builds them instead from a photo folder with a `MANIFEST.csv` (columns
`file` and `debian_or_pypi_source`): a seeded 10 % hold-out (`split_files(DIR, 0.1,
seed=0)`), each photo linked into the sub-folder of its source.

Usage:
    KERAS_BACKEND=jax python -m benchmarks.adversarial_configs --photos ../shared/data/photos \\
        --recipes gan_l1 gan_l1_class wgan_gp_l2_class --output runs/comparison [--set KEY=VALUE ...]
    KERAS_BACKEND=jax python -m benchmarks.adversarial_configs \\
        --train photos/train --heldout photos/heldout --classes 7 --recipes pix2pix
"""

import argparse
import csv
import json
import time
from pathlib import Path


def link_class_folders(photos, output, fraction=0.1, seed=0):
    """Link the photos of `photos` into `output/{train,heldout}/<source>/`.

    Returns:
        (train folder, held-out folder, number of classes in the training folder).
    """
    from keras_colorize.data import split_files

    photos = Path(photos)
    with open(photos / "MANIFEST.csv", newline="", encoding="utf-8") as handle:
        source_of = {row["file"]: row["debian_or_pypi_source"] for row in csv.DictReader(handle)}
    train, heldout = split_files(str(photos), fraction, seed=seed)
    for name, files in (("train", train), ("heldout", heldout)):
        for file in map(Path, files):
            link = output / name / source_of[file.name] / file.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(file.resolve())
    classes = sum(1 for folder in (output / "train").iterdir() if folder.is_dir())
    return output / "train", output / "heldout", classes


def _class_overrides(recipe, classes):
    """The generator's class count set to the data's (generators with a class branch only)."""
    return [f"model.num_classes={classes}"] if "num_classes" in recipe["model"] else []


def _last_logged(run_dir, key):
    """The value of `key` in the last row of the run's history.csv, or None."""
    from keras_colorize.training.callbacks import read_history

    values = read_history(run_dir / "history.csv").get(key)
    return values[-1] if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", help="photo folder with MANIFEST.csv (builds --train/--heldout/--classes)")
    parser.add_argument("--train", help="training photos (class sub-folders for the class recipes)")
    parser.add_argument("--heldout", help="held-out photos (same class sub-folders)")
    parser.add_argument("--classes", type=int, help="number of class sub-folders")
    parser.add_argument("--recipes", nargs="+", default=["gan_l1", "gan_l1_class", "wgan_gp_l2_class"])
    parser.add_argument("--output", default="runs/adversarial_comparison", help="folder of the run directories")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override")
    args = parser.parse_args(argv)

    import keras

    from keras_colorize.loading import load_colorizer
    from keras_colorize.data import ImageFolder
    from keras_colorize.evaluation import evaluate_colorizer
    from keras_colorize.recipes import load_recipe
    from keras_colorize.training.runner import run_training

    output = Path(args.output)
    if args.photos:
        args.train, args.heldout, args.classes = link_class_folders(args.photos, output / "data")
    elif not (args.train and args.heldout and args.classes):
        parser.error("give --photos, or --train, --heldout and --classes")
    rows = {}
    gray = None
    for name in args.recipes:
        recipe = load_recipe(name)
        overrides = [
            f"data.train={args.train}",
            f"data.validation={args.heldout}",
            "data.validation_fraction=0",
            "train.tensorboard=false",
            *_class_overrides(recipe, args.classes),
            *args.overrides,
        ]
        recipe = load_recipe(name, overrides=overrides)
        started = time.perf_counter()
        run_dir = run_training(recipe, run_dir=output / recipe["name"], verbose=2)
        seconds = time.perf_counter() - started
        colorizer = load_colorizer(run_dir / "checkpoints" / "last.keras")
        size = recipe["colorizer"]["image_size"]
        heldout = ImageFolder(args.heldout, image_size=size, batch_size=16, training=False, name="heldout")
        result = evaluate_colorizer(colorizer, heldout)
        rows[recipe["name"]] = dict(
            result["model"],
            train_seconds=round(seconds, 1),
            epochs=recipe["train"]["epochs"],
            class_accuracy=_last_logged(run_dir, "val_class_accuracy"),
        )
        gray = result["gray_baseline"]
    rows["gray baseline"] = gray
    columns = ["psnr", "ssim", "colorfulness", "colorfulness_gap", "ciede2000"]
    print(f"\n| model | {' | '.join(columns)} | held-out class accuracy | train time (s) |")
    print(f"|---|{'---|' * len(columns)}---|---|")
    for name, metrics in rows.items():
        values = " | ".join(f"{metrics[c]:.3f}" for c in columns)
        accuracy = metrics.get("class_accuracy")
        accuracy = "" if accuracy is None else f"{accuracy:.3f}"
        print(f"| {name} | {values} | {accuracy} | {metrics.get('train_seconds', '')} |")
    (output / "comparison.json").write_text(
        json.dumps({"backend": keras.backend.backend(), "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
