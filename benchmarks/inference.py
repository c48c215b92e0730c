"""Inference throughput and memory: the generator's forward pass at the model size
(every backend against the plain-PyTorch reference, alternating fresh processes)
and whole-photo colorization (`Colorizer.colorize`) of 1, 6 and 24 megapixel photos.

Generator forward: the full-size UNetV1 (random weights; speed does not depend
on them) in inference mode on a batch of model-space L at `--image-size`, through
`predict_on_batch` (what `Colorizer.colorize` calls) on each backend, and through
`torch.no_grad()` eval-mode calls in the reference.

Whole photo: one fresh process per backend and size. The photo (a shared photo
resized to the target megapixels, saved as JPEG quality 95) is decoded with
`keras_colorize.data.load_image`, colorized at full resolution, and encoded as
JPEG quality 95 in memory, as the `colorize` command does. After a warm-up on a
small photo (compilation), the peak resident set size is reset; `peak_increase_mib`
is the peak above the warmed-up process while the photo is decoded, colorized
and encoded.

Usage (one JSON line per measurement, then summary lines):

    python -m benchmarks.inference
    python -m benchmarks.inference --skip-photos --repeats 3
    python -m benchmarks.inference --skip-forward --megapixels 1,6,24 --photos /path/to/photos
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    BACKENDS,
    DEFAULT_PHOTOS,
    current_rss_mib,
    emit,
    machine,
    median,
    parse_widths,
    peak_rss_mib,
    photo_batch,
    reset_peak_rss,
    run_json_lines,
    time_steps,
)


def _generator(widths):
    from keras_colorize.models import UNetV1

    if widths:
        return UNetV1(encoder_filters=widths, decoder_filters=tuple(reversed(widths[:-1])))
    return UNetV1()


def measure_forward(image_size, batch_size, steps, warmup, widths=None):
    """Images/s of the zoo generator's `predict_on_batch` on the current backend; one record."""
    import keras

    from keras_colorize.color import rgb_to_model_inputs

    keras.utils.set_random_seed(0)
    generator = _generator(widths)
    l_norm = keras.ops.convert_to_numpy(rgb_to_model_inputs(photo_batch(image_size, batch_size), "channels_last")[0])
    first, step_s, _ = time_steps(lambda: generator.predict_on_batch(l_norm), steps, warmup)
    return {
        "benchmark": "generator_forward",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "image_size": image_size,
        "batch_size": batch_size,
        "steps": steps,
        "images_per_s": round(batch_size / step_s, 3),
        "step_s": round(step_s, 4),
        "compile_s": round(max(first - step_s, 0.0), 2),
        "peak_rss_mib": round(peak_rss_mib()),
        **machine(),
    }


def measure_photo(path, image_size, widths=None):
    """Decode, colorize at full resolution and encode one photo; time and peak memory."""
    import keras
    import numpy as np
    from PIL import Image

    from keras_colorize import Colorizer
    from keras_colorize.data import load_image

    keras.utils.set_random_seed(0)
    colorizer = Colorizer(_generator(widths), image_size=image_size)
    colorizer.colorize(np.full((image_size + 8, image_size + 24, 3), 128, "uint8"))  # compile
    rss_before = current_rss_mib()
    reset_worked = reset_peak_rss()
    start = time.perf_counter()
    image = load_image(path)
    decoded = time.perf_counter()
    result = colorizer.colorize(image)
    colorized = time.perf_counter()
    buffer = io.BytesIO()
    Image.fromarray(result).save(buffer, format="JPEG", quality=95)
    encoded = time.perf_counter()
    peak = peak_rss_mib()
    height, width = image.shape[:2]
    megapixels = height * width / 1e6
    return {
        "benchmark": "colorize_photo",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "image_size": image_size,
        "photo": f"{width}x{height}",
        "megapixels": round(megapixels, 2),
        "decode_s": round(decoded - start, 3),
        "colorize_s": round(colorized - decoded, 3),
        "encode_s": round(encoded - colorized, 3),
        "total_s": round(encoded - start, 3),
        "megapixels_per_s": round(megapixels / (encoded - start), 3),
        "rss_before_mib": round(rss_before),
        "peak_rss_mib": round(peak),
        "peak_increase_mib": round(peak - rss_before) if reset_worked else None,
        "peak_reset": reset_worked,
        **machine(),
    }


def make_photos(photos_dir, megapixels, folder):
    """JPEG photos of the given megapixels, resized (bicubic) from the largest photo in `photos_dir`.

    Returns:
        list of (megapixels, path).
    """
    from PIL import Image

    from keras_colorize.data import list_images

    files = list_images(photos_dir)
    source = max(files, key=lambda p: (lambda im: im.width * im.height)(Image.open(p)))
    image = Image.open(source).convert("RGB")
    aspect = image.width / image.height
    made = []
    for target in megapixels:
        height = round((target * 1e6 / aspect) ** 0.5)
        width = round(height * aspect)
        path = Path(folder) / f"photo_{target:g}mp.jpg"
        image.resize((width, height), Image.Resampling.BICUBIC).save(path, format="JPEG", quality=95)
        made.append((target, path))
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", "--size", dest="image_size", type=int, default=256,
                        help="the generator's input size (model size)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--generator-widths", default=None, help="UNetV1 encoder filters, e.g. 16,16,32,32")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of photos to resize")
    parser.add_argument("--megapixels", default="1,6,24")
    parser.add_argument("--skip-forward", action="store_true")
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument("--worker", choices=("forward", "reference", "photo"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--photo", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    widths = parse_widths(args.generator_widths)

    if args.worker == "forward":
        emit(measure_forward(args.image_size, args.batch_size, args.steps, args.warmup, widths))
        return
    if args.worker == "reference":
        from benchmarks.reference import measure_forward as reference_forward

        emit(reference_forward(args.image_size, args.batch_size, args.steps, args.warmup, widths))
        return
    if args.worker == "photo":
        emit(measure_photo(args.photo, args.image_size, widths))
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)} (use {', '.join(BACKENDS)})")
    common = ["--image-size", args.image_size]
    if args.generator_widths:
        common += ["--generator-widths", args.generator_widths]

    if not args.skip_forward:
        forward = common + ["--batch-size", args.batch_size, "--steps", args.steps, "--warmup", args.warmup]
        records = []
        for repeat in range(args.repeats):
            for backend in backends:
                (reference,) = run_json_lines("inference", forward + ["--worker", "reference"], backend="torch")
                (record,) = run_json_lines("inference", forward + ["--worker", "forward"], backend=backend)
                for item in (reference, record):
                    item["repeat"] = repeat
                    emit(item)
                record["_paired"] = record["images_per_s"] / reference["images_per_s"]
                records += [reference, record]
        reference_ips = median([r["images_per_s"] for r in records if r["implementation"] == "reference-pytorch"])
        summary = {"benchmark": "generator_forward_summary", "reference_images_per_s": round(reference_ips, 3),
                   "backends": {}}
        for backend in backends:
            runs = [r for r in records if r["implementation"] == "keras-colorize" and r["backend"] == backend]
            ips = median([r["images_per_s"] for r in runs])
            summary["backends"][backend] = {
                "images_per_s": round(ips, 3),
                "compile_s": median([r["compile_s"] for r in runs]),
                "ratio_to_reference": round(ips / reference_ips, 3),
                "paired_ratio_median": round(median([r["_paired"] for r in runs]), 3),
                "runs": len(runs),
            }
        emit(summary)

    if not args.skip_photos:
        megapixels = [float(m) for m in args.megapixels.split(",")]
        with tempfile.TemporaryDirectory() as folder:
            photos = make_photos(args.photos, megapixels, folder)
            results = []
            for backend in backends:
                for _, path in photos:
                    (record,) = run_json_lines("inference", common + ["--worker", "photo", "--photo", path], backend=backend)
                    emit(record)
                    results.append(record)
        largest = max(r["megapixels"] for r in results)
        emit({
            "benchmark": "colorize_photo_summary",
            "largest_megapixels": largest,
            "peak_increase_mib": {r["backend"]: r["peak_increase_mib"] for r in results if r["megapixels"] == largest},
            "peak_rss_mib": {r["backend"]: r["peak_rss_mib"] for r in results if r["megapixels"] == largest},
            "target_mib": 2048,
        })


if __name__ == "__main__":
    sys.exit(main())
