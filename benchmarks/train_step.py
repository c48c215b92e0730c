"""Adversarial training step throughput: the zoo's trainers through `fit()` on every
backend, against the plain-PyTorch reference, in alternating fresh processes.

The default configuration is the one to report: the full-size UNetV1 generator and
the PatchGAN discriminator in `GANTrainer` (BCE + 100 x L1), 128x128 photos,
batch 8, float32. The runs alternate (reference, tensorflow, reference, jax,
reference, torch, then again `--repeats` times) so that the machine's load
drifts over both sides alike; the summary gives the median images/s of each and
the ratios keras-colorize / reference per backend.

Each process times `--steps` steps after a compiled first step and `--warmup`
more; `compile_s` is the first step's time minus a steady step's (tracing and
XLA compilation on TensorFlow and JAX, warm-up allocations elsewhere).

Usage (one JSON line per measurement, then a summary line):

    python -m benchmarks.train_step
    python -m benchmarks.train_step --repeats 2 --backends tensorflow,jax
    python -m benchmarks.train_step --trainer wgan_gp
    python -m benchmarks.train_step --class-branch --image-size 256 --batch-size 2
    python -m benchmarks.train_step --generator-widths 16,16,32,32 --image-size 64  # a small smoke run

`--class-branch` trains the ChromaGANGenerator (its classification branch and the
class term, lambda_class 0.003, integer labels) on the keras side only: the
reference has no counterpart for it.
"""

import argparse
import sys
import time

from benchmarks.common import BACKENDS, emit, machine, median, parse_widths, peak_rss_mib, photo_batch, run_json_lines


def build_trainer(trainer, image_size, widths, class_branch):
    """The zoo's trainer for a benchmark configuration (compiled, default optimizers)."""
    from keras_colorize.models import ChromaGANGenerator, PatchGANDiscriminator, UNetV1
    from keras_colorize.training import GANTrainer, WGANGPTrainer

    if class_branch:
        generator = ChromaGANGenerator(image_size=image_size)
    elif widths:
        generator = UNetV1(encoder_filters=widths, decoder_filters=tuple(reversed(widths[:-1])))
    else:
        generator = UNetV1()
    lambda_class = 0.003 if class_branch else 0.0
    if trainer == "gan":
        model = GANTrainer(generator, PatchGANDiscriminator(), lambda_class=lambda_class, image_size=image_size)
    else:
        critic = PatchGANDiscriminator(normalization=None, name="critic")
        model = WGANGPTrainer(generator, critic, lambda_class=lambda_class, image_size=image_size, seed=0)
    model.compile()
    return model, generator


def measure_keras(trainer, image_size, batch_size, steps, warmup, widths=None, class_branch=False):
    """Images/s of a zoo trainer's `fit()` step on the current backend; one record."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model, generator = build_trainer(trainer, image_size, widths, class_branch)
    images = photo_batch(image_size, batch_size)
    batch = (images, np.arange(batch_size, dtype="int32") % 205) if class_branch else images
    total = 1 + warmup + steps

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return total

        def __getitem__(self, index):
            return batch

    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, index, logs=None):
            if logs:
                float(keras.ops.convert_to_numpy(next(iter(logs.values()))))  # wait for the step to finish
            self.times.append(time.perf_counter())

    timer = StepTimer()
    history = model.fit(Batches(), epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    times = timer.times
    step_s = (times[-1] - times[1 + warmup]) / steps
    first = times[1] - times[0]
    return {
        "benchmark": "train_step",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "trainer": trainer,
        "generator": type(generator).__name__,
        "image_size": image_size,
        "batch_size": batch_size,
        "generator_parameters": generator.count_params(),
        "steps": steps,
        "images_per_s": round(batch_size / step_s, 3),
        "step_s": round(step_s, 3),
        "compile_s": round(max(first - step_s, 0.0), 2),
        "first_step_s": round(first, 2),
        "peak_rss_mib": round(peak_rss_mib()),
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "final_losses": {k: round(float(v[-1]), 4) for k, v in history.history.items()},
        **machine(),
    }


def summarize(records, backends, with_reference):
    """The summary line: median images/s per side and the keras-colorize / reference ratios."""
    reference_runs = [r for r in records if r["implementation"] == "reference-pytorch"]
    reference = median([r["images_per_s"] for r in reference_runs])
    summary = {"benchmark": "train_step_summary", "reference_images_per_s": reference and round(reference, 3), "backends": {}}
    for backend in backends:
        runs = [r for r in records if r["implementation"] == "keras-colorize" and r["backend"] == backend]
        if not runs:
            continue
        images_per_s = median([r["images_per_s"] for r in runs])
        entry = {
            "images_per_s": round(images_per_s, 3),
            "compile_s": round(median([r["compile_s"] for r in runs]), 2),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in runs]),
            "runs": len(runs),
        }
        if with_reference and reference:
            entry["ratio_to_reference"] = round(images_per_s / reference, 3)
            # Each run against the reference run launched just before it.
            paired = [r["images_per_s"] / r["_previous_reference"] for r in runs if r.get("_previous_reference")]
            entry["paired_ratio_median"] = round(median(paired), 3) if paired else None
        summary["backends"][backend] = entry
    if not with_reference:
        summary["note"] = "no reference for this configuration (keras-colorize only)"
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainer", choices=("gan", "wgan_gp"), default="gan")
    parser.add_argument("--class-branch", action="store_true", help="ChromaGANGenerator with the class term (no reference)")
    parser.add_argument("--image-size", "--size", dest="image_size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--generator-widths", default=None, help="UNetV1 encoder filters, e.g. 16,16,32,32")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3; 5 with wgan_gp: one generator step)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed steps after the first (default 1; 4 with wgan_gp: both step variants compiled)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--no-reference", action="store_true", help="keras-colorize runs only")
    parser.add_argument("--worker", choices=("keras", "reference"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.trainer == "wgan_gp" else 3)
    if args.warmup is None:
        args.warmup = 4 if args.trainer == "wgan_gp" else 1
    widths = parse_widths(args.generator_widths)

    if args.worker == "keras":
        emit(measure_keras(args.trainer, args.image_size, args.batch_size, steps, args.warmup, widths, args.class_branch))
        return
    if args.worker == "reference":
        from benchmarks.reference import measure_train_step

        emit(measure_train_step(args.trainer, args.image_size, args.batch_size, steps, args.warmup, widths))
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)} (use {', '.join(BACKENDS)})")
    with_reference = not (args.no_reference or args.class_branch)
    common = ["--trainer", args.trainer, "--image-size", args.image_size, "--batch-size", args.batch_size,
              "--steps", steps, "--warmup", args.warmup]
    if args.generator_widths:
        common += ["--generator-widths", args.generator_widths]
    if args.class_branch:
        common += ["--class-branch"]
    records = []
    for repeat in range(args.repeats):
        for backend in backends:
            previous = None
            if with_reference:
                (record,) = run_json_lines("train_step", common + ["--worker", "reference"], backend="torch")
                record["repeat"] = repeat
                records.append(record)
                emit(record)
                previous = record["images_per_s"]
            (record,) = run_json_lines("train_step", common + ["--worker", "keras"], backend=backend)
            record["repeat"] = repeat
            emit(record)
            record["_previous_reference"] = previous
            records.append(record)
    emit(summarize(records, backends, with_reference))


if __name__ == "__main__":
    sys.exit(main())
