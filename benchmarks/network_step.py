"""Where the adversarial step's time goes: each of its networks trained alone, per backend,
against the same network in the plain-PyTorch reference, in alternating fresh processes.

One step is a forward in training mode (BatchNorm batch statistics, dropout), the mean
squared error against zeros, the backward pass and an Adam update (2e-4, beta_1 0.5):
Keras's `train_on_batch` on the zoo's network against eager PyTorch on the reference's.
The networks are the ones `benchmarks.train_step` trains: the full-size UNetV1
generator on model-space L, the PatchGAN discriminator and the WGAN-GP critic (without
normalisation) on L and ab, at 128x128, batch 8, float32.

Usage (one JSON line per measurement, then a summary line):

    python -m benchmarks.network_step
    python -m benchmarks.network_step --networks generator --repeats 5
"""

import argparse
import sys

from benchmarks.common import BACKENDS, emit, machine, median, run_json_lines, time_steps

NETWORKS = ("generator", "discriminator", "critic")


def _input_shape(network, image_size, batch_size):
    channels = 1 if network == "generator" else 3
    return (batch_size, image_size, image_size, channels)


def measure_keras(network, image_size, batch_size, steps, warmup):
    """Milliseconds per `train_on_batch` of one zoo network on the current backend; one record."""
    import keras
    import numpy as np

    from keras_colorize.models import PatchGANDiscriminator, UNetV1
    from keras_colorize.training.optimizers import Adam

    keras.utils.set_random_seed(0)
    if network == "generator":
        model = UNetV1()
    else:
        model = PatchGANDiscriminator(normalization="batch" if network == "discriminator" else None)
    inputs = np.random.default_rng(0).uniform(-1.0, 1.0, _input_shape(network, image_size, batch_size)).astype("float32")
    targets = np.zeros(tuple(model.compute_output_shape(inputs.shape)), dtype="float32")
    model.compile(optimizer=Adam(learning_rate=2e-4, beta_1=0.5), loss="mse")
    # train_on_batch returns the loss as a float: the step has finished.
    first, step_s, _ = time_steps(lambda: model.train_on_batch(inputs, targets), steps, warmup)
    return {
        "benchmark": "network_step",
        "implementation": "keras-colorize",
        "backend": keras.backend.backend(),
        "network": network,
        "parameters": model.count_params(),
        "image_size": image_size,
        "batch_size": batch_size,
        "step_ms": round(step_s * 1000.0, 1),
        "compile_s": round(max(first - step_s, 0.0), 2),
        **machine(),
    }


def measure_reference(network, image_size, batch_size, steps, warmup):
    """Milliseconds per eager PyTorch step of the reference's network; one record."""
    import torch
    import torch.nn.functional as F

    from benchmarks.reference import PatchGANReference, UNetV1Reference, _adam, count_parameters

    torch.manual_seed(0)
    if network == "generator":
        module = UNetV1Reference()
    else:
        module = PatchGANReference(normalization="batch" if network == "discriminator" else None)
    module.train()
    optimizer = _adam(module)
    n, h, w, c = _input_shape(network, image_size, batch_size)
    inputs = torch.rand(n, c, h, w) * 2.0 - 1.0

    def step():
        outputs = module(inputs)
        loss = F.mse_loss(outputs, torch.zeros_like(outputs))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    first, step_s, _ = time_steps(step, steps, warmup)
    return {
        "benchmark": "network_step",
        "implementation": "reference-pytorch",
        "backend": "torch-eager",
        "network": network,
        "parameters": count_parameters(module),
        "image_size": image_size,
        "batch_size": batch_size,
        "step_ms": round(step_s * 1000.0, 1),
        "compile_s": round(max(first - step_s, 0.0), 2),
        "threads": torch.get_num_threads(),
        **machine(),
    }


def summarize(records, networks, backends):
    """Median milliseconds per network and side, and the reference / keras-colorize speed ratios."""
    summary = {"benchmark": "network_step_summary", "networks": {}}
    for network in networks:
        runs = [r for r in records if r["network"] == network]
        reference = median([r["step_ms"] for r in runs if r["implementation"] == "reference-pytorch"])
        entry = {"reference_ms": reference}
        for backend in backends:
            ms = median([r["step_ms"] for r in runs if r["implementation"] == "keras-colorize" and r["backend"] == backend])
            if ms:
                entry[backend] = {"ms": ms, "speed_ratio_to_reference": round(reference / ms, 3) if reference else None}
        summary["networks"][network] = entry
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--worker", choices=("keras", "reference"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    networks = [n.strip() for n in args.networks.split(",") if n.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(networks) - set(NETWORKS)) + sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown network(s) or backend(s): {', '.join(unknown)}")
    sizes = (args.image_size, args.batch_size, args.steps, args.warmup)
    if args.worker:
        measure = measure_keras if args.worker == "keras" else measure_reference
        for network in networks:
            emit(measure(network, *sizes))
        return

    common = ["--networks", ",".join(networks), "--image-size", args.image_size, "--batch-size", args.batch_size,
              "--steps", args.steps, "--warmup", args.warmup]
    records = []
    for repeat in range(args.repeats):
        for backend in backends:
            for worker, worker_backend in (("reference", "torch"), ("keras", backend)):
                for record in run_json_lines("network_step", common + ["--worker", worker], backend=worker_backend):
                    record["repeat"] = repeat
                    records.append(record)
                    emit(record)
    emit(summarize(records, networks, backends))


if __name__ == "__main__":
    sys.exit(main())
