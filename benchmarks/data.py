"""Input pipeline throughput: `ImageFolder` (training=True: decode, resize, random
crop and flip) on a photo folder, cache off and on, 1 and 2 workers, against the
rate at which the training step consumes images.

Each configuration runs in a fresh process and reads every batch of two epochs
through Keras's own `PyDataset` feeding (`predict` of a model that only averages
its input, so the pipeline is the whole cost); with the cache on, the first epoch
fills it and the second only crops. A single-threaded `dataset[index]` loop is
measured too. The consumption rate comes from a `benchmarks.train_step` output
(`--train-step-json FILE`: the fastest keras-colorize backend's median), a number
(`--consumption`), or a quick keras-colorize run of the default train step on
TensorFlow.

Usage (one JSON line per measurement, then a summary line):

    python -m benchmarks.data --train-step-json train_step.jsonl
    python -m benchmarks.data --photos /path/to/photos --consumption 1.5
"""

import argparse
import json
import sys
import time

from benchmarks.common import DEFAULT_PHOTOS, emit, machine, median, peak_rss_mib, run_json_lines


def measure_pipeline(photos, image_size, resize_to, batch_size, cache, workers, mode):
    """Images/s of two epochs of an `ImageFolder` (training=True); one record."""
    import keras

    from keras_colorize.data import ImageFolder

    start = time.perf_counter()
    dataset = ImageFolder(photos, image_size, batch_size, training=True, resize_to=resize_to, cache=cache,
                          workers=workers)
    scan_s = time.perf_counter() - start
    images_per_epoch = len(dataset) * batch_size
    epochs = []
    if mode == "direct":
        for _ in range(2):
            start = time.perf_counter()
            for index in range(len(dataset)):
                dataset[index]
            epochs.append(time.perf_counter() - start)
            dataset.on_epoch_end()
    else:
        model = keras.Sequential([keras.Input((image_size, image_size, 3)), keras.layers.GlobalAveragePooling2D()])
        model.predict(dataset[0], verbose=0)  # build and compile outside the timing
        for _ in range(2):
            start = time.perf_counter()
            model.predict(dataset, verbose=0)
            epochs.append(time.perf_counter() - start)
            dataset.on_epoch_end()
    return {
        "benchmark": "data_pipeline",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "feeding": "dataset[index] loop" if mode == "direct" else "keras PyDataset (predict)",
        "image_size": image_size,
        "resize_to": resize_to,
        "batch_size": batch_size,
        "cache": cache,
        "workers": workers if mode != "direct" else 1,
        "images": len(dataset.files),
        "images_per_epoch": images_per_epoch,
        "scan_s": round(scan_s, 2),
        "epoch_1_images_per_s": round(images_per_epoch / epochs[0], 2),
        "epoch_2_images_per_s": round(images_per_epoch / epochs[1], 2),
        "images_per_s": round(images_per_epoch / epochs[1], 2),
        "peak_rss_mib": round(peak_rss_mib()),
        **machine(),
    }


def consumption_from(path):
    """The fastest keras-colorize backend's median images/s in a train_step JSON-lines file."""
    records = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    summaries = [r for r in records if r.get("benchmark") == "train_step_summary"]
    if summaries:
        backends = summaries[-1]["backends"]
        backend = max(backends, key=lambda b: backends[b]["images_per_s"])
        return backends[backend]["images_per_s"], backend, summaries[-1]
    runs = [r for r in records if r.get("benchmark") == "train_step" and r.get("implementation") == "keras-colorize"]
    if not runs:
        raise SystemExit(f"error: {path} holds no train_step measurement of keras-colorize")
    by_backend = {}
    for run in runs:
        by_backend.setdefault(run["backend"], []).append(run["images_per_s"])
    backend = max(by_backend, key=lambda b: median(by_backend[b]))
    return median(by_backend[backend]), backend, runs[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=str(DEFAULT_PHOTOS), help="folder of training photos")
    parser.add_argument("--image-size", "--size", dest="image_size", type=int, default=256)
    parser.add_argument("--resize-to", type=int, default=286, help="shorter side before the random crop (pix2pix jitter)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--backend", default="tensorflow", help="Keras backend of the feeding processes")
    parser.add_argument("--train-step-json", default=None, help="JSON lines printed by benchmarks.train_step")
    parser.add_argument("--consumption", type=float, default=None, help="train-step images/s to compare with")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        mode, cache, workers = args.worker.split(":")
        emit(measure_pipeline(args.photos, args.image_size, args.resize_to, args.batch_size, cache == "on",
                              int(workers), mode))
        return

    common = ["--photos", args.photos, "--image-size", args.image_size, "--resize-to", args.resize_to,
              "--batch-size", args.batch_size]
    records = []
    for worker in ("direct:off:1", "keras:off:1", "keras:off:2", "direct:on:1", "keras:on:1", "keras:on:2"):
        (record,) = run_json_lines("data", common + ["--worker", worker], backend=args.backend)
        emit(record)
        records.append(record)

    source = None
    if args.consumption is not None:
        consumption, source = args.consumption, "--consumption"
    elif args.train_step_json:
        consumption, backend, _ = consumption_from(args.train_step_json)
        source = f"{args.train_step_json} (fastest backend: {backend})"
    else:
        runs = run_json_lines("train_step", ["--repeats", "1", "--no-reference", "--backends", "tensorflow",
                                             "--steps", "2"])
        consumption = next(r for r in runs if r.get("benchmark") == "train_step")["images_per_s"]
        source = "quick train_step run (tensorflow, default configuration)"
    keras_runs = [r for r in records if r["feeding"].startswith("keras")]
    slowest = min(keras_runs, key=lambda r: r["images_per_s"])
    emit({
        "benchmark": "data_pipeline_summary",
        "consumption_images_per_s": consumption,
        "consumption_source": source,
        "ratios": {f"cache={'on' if r['cache'] else 'off'},workers={r['workers']}": round(r["images_per_s"] / consumption, 1)
                   for r in keras_runs},
        "slowest_ratio": round(slowest["images_per_s"] / consumption, 1),
        "target_ratio": 3.0,
    })


if __name__ == "__main__":
    sys.exit(main())
