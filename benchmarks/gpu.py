"""GPU throughput in one command: training and inference on every backend, float32 and
mixed_bfloat16, with the achieved fraction of the GPU's dense bfloat16 peak and peak memory.

For each backend and precision, one fresh process measures the `GANTrainer` step
(full-size UNetV1 + PatchGAN, BCE + 100 x L1, `fit()`) and the generator's
inference forward (`predict_on_batch`) at `--image-size` (256) and `--batch-size`
(16), reusing `benchmarks.train_step.measure_keras` and
`benchmarks.inference.measure_forward`: six processes (three backends, two
precisions), each about a minute on a data-centre GPU, eight minutes in all at most.

Achieved fraction of peak: the model's floating-point operations per image,
counted once by XLA's cost analysis of the generator's and the discriminator's
forward passes (JAX on the host CPU: nothing runs there, the program is only
analysed), divided by the measured time per image and by the GPU's dense
bfloat16 peak (`--peak-tflops`, else looked up from the device name). A training
step counts 3 generator forwards (forward and backward) and 8 discriminator
forwards (the fake and real pairs forward and backward, and the generator
step's pass through it, forward and input gradient): the usual "model FLOPs"
of a step, not the kernels' own count.

Peak memory: the device allocator's peak over the process, training and then
inference (TensorFlow `get_memory_info`, JAX `memory_stats`, PyTorch
`max_memory_allocated`), in MiB.

Usage (one JSON line per measurement, then a summary line):

    python -m benchmarks.gpu
    python -m benchmarks.gpu --backends jax,torch --peak-tflops 989
    python -m benchmarks.gpu --smoke    # a tiny configuration on any machine (checks the script)
"""

import argparse
import sys

from benchmarks.common import BACKENDS, emit, parse_widths, run_json_lines

PRECISIONS = ("float32", "mixed_bfloat16")
SMOKE_WIDTHS = "16,16,32,32"

# Dense (not sparse) bfloat16 tensor-core peaks in TFLOP/s, from the vendors' data sheets.
# An H100 SXM reports itself as "NVIDIA H100 80GB HBM3"; the PCIe and NVL cards say so.
DENSE_BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIE": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
}

TRAIN_GENERATOR_PASSES = 3
TRAIN_DISCRIMINATOR_PASSES = 8


def peak_tflops_for(device_name):
    """The dense bfloat16 peak of a device by its name (longest matching key), or None."""
    name = device_name.upper()
    matches = [key for key in DENSE_BF16_PEAK_TFLOPS if key in name]
    return DENSE_BF16_PEAK_TFLOPS[max(matches, key=len)] if matches else None


def forward_flops(image_size, widths=None):
    """Floating-point operations of one image through the generator and the discriminator.

    XLA's cost analysis of the stateless forward passes at batch 1 (JAX, host CPU).

    Returns:
        dict: {"generator": flops, "discriminator": flops}.
    """
    import jax
    import keras

    from benchmarks.inference import _generator
    from keras_colorize.models import PatchGANDiscriminator

    counts = {}
    with jax.default_device(jax.devices("cpu")[0]):
        for name, model, channels in (
            ("generator", _generator(widths), 1),
            ("discriminator", PatchGANDiscriminator(), 3),
        ):
            x = jax.ShapeDtypeStruct((1, image_size, image_size, channels), "float32")
            model.build((None, image_size, image_size, channels))
            params = [v.value for v in model.trainable_variables]
            state = [v.value for v in model.non_trainable_variables]

            def forward(params, state, x, model=model):
                return model.stateless_call(params, state, x, training=False)[0]

            analysis = jax.jit(forward).lower(params, state, x).cost_analysis()
            analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
            counts[name] = float(analysis["flops"])
            keras.backend.clear_session()
    return counts


def device_info():
    """(device name, peak allocated MiB) of the current backend's first accelerator, or ("cpu", None)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return "cpu", None
        stats = device.memory_stats() or {}
        return device.device_kind, stats.get("peak_bytes_in_use", 0) / 2**20
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            return "cpu", None
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return details.get("device_name", "GPU"), tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    return torch.cuda.get_device_name(0), torch.cuda.max_memory_allocated(0) / 2**20


def measure(precision, image_size, batch_size, steps, warmup, widths):
    """The worker: train-step and inference records at one precision on the current backend."""
    import keras

    from benchmarks.inference import measure_forward
    from benchmarks.train_step import measure_keras

    keras.config.set_dtype_policy(precision)
    records = [
        measure_keras("gan", image_size, batch_size, steps, warmup, widths),
        measure_forward(image_size, batch_size, steps, warmup, widths),
    ]
    device, peak_mib = device_info()
    for record in records:
        record.update(
            benchmark=f"gpu_{record['benchmark']}",
            precision=precision,
            device=device,
            peak_device_mib=None if peak_mib is None else round(peak_mib),
        )
    return records


def achieved(record, flops, peak_tflops):
    """Model TFLOP/s of a record and its fraction of the dense bfloat16 peak."""
    if record["benchmark"] == "gpu_train_step":
        per_image = TRAIN_GENERATOR_PASSES * flops["generator"] + TRAIN_DISCRIMINATOR_PASSES * flops["discriminator"]
    else:
        per_image = flops["generator"]
    tflops = per_image * record["images_per_s"] / 1e12
    return round(tflops, 3), (round(tflops / peak_tflops, 4) if peak_tflops else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bfloat16 peak (default: by device name)")
    parser.add_argument("--generator-widths", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="tiny models at 64x64, batch 2, 2 steps (any machine)")
    parser.add_argument("--worker", choices=("measure", "flops"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size, args.batch_size, args.steps, args.warmup = 64, 2, 2, 1
        args.generator_widths = args.generator_widths or SMOKE_WIDTHS
    widths = parse_widths(args.generator_widths)

    if args.worker == "flops":
        emit({"benchmark": "gpu_flops", **forward_flops(args.image_size, widths)})
        return
    if args.worker == "measure":
        for record in measure(args.precision, args.image_size, args.batch_size, args.steps, args.warmup, widths):
            emit(record)
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = sorted(set(backends) - set(BACKENDS)) + sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        parser.error(f"unknown backend(s) or precision(s): {', '.join(unknown)}")
    common = ["--image-size", args.image_size, "--batch-size", args.batch_size, "--steps", args.steps,
              "--warmup", args.warmup]
    if args.generator_widths:
        common += ["--generator-widths", args.generator_widths]
    (flops,) = run_json_lines("gpu", common + ["--worker", "flops"], backend="jax", env={"JAX_PLATFORMS": "cpu"})
    flops.pop("benchmark")
    records = []
    for backend in backends:
        for precision in precisions:
            for record in run_json_lines("gpu", common + ["--worker", "measure", "--precision", precision], backend=backend):
                peak = args.peak_tflops or peak_tflops_for(record["device"])
                record["model_tflops"], record["fraction_of_bf16_peak"] = achieved(record, flops, peak)
                records.append(record)
                emit(record)
    summary = {"benchmark": "gpu_summary", "flops_per_image_forward": flops, "rows": []}
    for record in records:
        summary["rows"].append(
            {key: record[key] for key in ("backend", "precision", "benchmark", "images_per_s", "model_tflops",
                                          "fraction_of_bf16_peak", "peak_device_mib", "device")}
        )
    emit(summary)


if __name__ == "__main__":
    sys.exit(main())
