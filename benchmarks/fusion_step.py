"""Step time and peak memory of the fusion stage's training step on this machine.

Builds a `FusionColorizer` from two full-size networks of the zoo (frozen) and times
`fit` steps on real photos with `--instances` instance crops per image. Each backend
runs in its own process; one JSON line per measurement:

    python -m benchmarks.fusion_step --backend tensorflow --model UNetV2 --image-size 128 --batch-size 8
    python -m benchmarks.fusion_step --all-backends

Peak memory is the process's maximum resident set size (`ru_maxrss`), reported in
total and above the process's size just before the first step (after the model is
built), so that the framework's own footprint can be told apart.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def _rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _photo_batches(image_size, instance_size, batch_size, instances, seed=0):
    """Contract batches built from the wheel photos: each image gets `instances` boxes."""
    import numpy as np

    from keras_colorize.data import crop_instances, pack_instances, sample_photo_paths
    from keras_colorize.data.files import center_crop, load_image, resize_short_side

    rng = np.random.default_rng(seed)
    images, crops, boxes = [], [], []
    paths = sample_photo_paths()
    for index in range(batch_size):
        photo = center_crop(resize_short_side(load_image(paths[index % len(paths)]), image_size), image_size)
        corners = []
        for _ in range(instances):
            width, height = rng.integers(image_size // 4, image_size // 2 + 1, size=2)
            left, top = rng.integers(0, image_size - width + 1), rng.integers(0, image_size - height + 1)
            corners.append((left, top, left + width, top + height))
        corners = np.asarray(corners, "float32")
        images.append(photo.astype("float32") / 255.0)
        crops.append(crop_instances(photo, corners, instance_size))
        boxes.append(corners[:, [1, 0, 3, 2]] / image_size)
    batch = pack_instances(crops, boxes, instances)
    batch["images"] = np.stack(images)
    return batch


def measure(model_name, image_size, instance_size, batch_size, instances, steps):
    import keras
    import numpy as np

    from keras_colorize.models import get_model
    from keras_colorize.models.fusion import FusionColorizer, SimpleWeightModel, clone_generator

    keras.utils.set_random_seed(0)
    full = get_model(model_name)
    fusion = SimpleWeightModel(full, clone_generator(full))
    colorizer = FusionColorizer(fusion, image_size=image_size, instance_size=instance_size, max_instances=instances)
    colorizer.compile(optimizer="adam", loss="huber", metrics=[])
    batch = _photo_batches(image_size, instance_size, batch_size, instances)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, index):
            return batch

    before = _rss_mib()
    start = time.perf_counter()
    colorizer.fit(Batches(), epochs=1, steps_per_epoch=1, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    colorizer.fit(Batches(), epochs=1, verbose=0)
    per_step = (time.perf_counter() - start) / steps
    peak = _rss_mib()
    return {
        "benchmark": "fusion_step",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "model": model_name,
        "image_size": image_size,
        "instance_size": instance_size,
        "batch_size": batch_size,
        "instances": instances,
        "trainable_parameters": int(sum(np.prod(w.shape) for w in colorizer.trainable_weights)),
        "frozen_parameters": int(sum(np.prod(w.shape) for w in colorizer.non_trainable_weights)),
        "first_step_s": round(first, 2),
        "step_s": round(per_step, 3),
        "images_per_s": round(batch_size / per_step, 2),
        "peak_rss_mib": round(peak),
        "peak_above_built_model_mib": round(peak - before),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, default=None)
    parser.add_argument("--all-backends", action="store_true", help="one process per backend, in turn")
    parser.add_argument("--model", default="UNetV2", help="zoo U-Net of both networks (default UNetV2)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--instance-size", type=int, default=None, help="default: --image-size")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.all_backends:
        forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--all-backends"]
        for backend in BACKENDS:
            subprocess.run([sys.executable, "-m", "benchmarks.fusion_step", "--backend", backend, *forwarded], check=True)
        return
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    result = measure(
        args.model, args.image_size, args.instance_size or args.image_size, args.batch_size, args.instances, args.steps
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
