"""Memory of one InstructPix2Pix fine-tuning step, per memory option, from XLA's buffer assignment.

The JAX backend compiles the fine-tuner's whole training step (VAE encoding, text states, U-Net
forward and backward, AdamW update) for the given batch and image size and reads XLA's memory
analysis of the compiled program: the bytes of its arguments (weights, optimizer state, batch),
of its outputs, of its temporaries (activations kept for the backward pass, gradients), and the
aliased bytes (donated state updated in place). Peak = arguments + outputs + temporaries -
aliased. Nothing runs, so the Stable Diffusion size can be measured on a machine without the
memory to train it; the figures are XLA:CPU's buffer assignment, which on a GPU differs by the
convolution algorithms' workspaces (cuDNN) and fusion choices.

    python -m benchmarks.finetune_memory --size sd --image-size 256 --batch-size 4

One JSON line per option: option, parameters, trainable parameters, the memory figures in GiB,
compile time.
"""

import argparse
import math
import os
import time

from benchmarks.common import emit, run_json_lines

OPTIONS = {
    "float32": dict(),
    "mixed_bfloat16": dict(dtype="mixed_bfloat16"),
    "remat": dict(remat=True),
    "lora_rank_4": dict(lora_rank=4),
    "ema": dict(use_ema=True),
    "lora_rank_4+mixed_bfloat16+remat": dict(lora_rank=4, dtype="mixed_bfloat16", remat=True),
    "joint_loss": dict(loss="joint"),
}

GIB = 1024.0**3


def measure(option, size, image_size, batch_size):
    import jax
    import keras

    from keras_colorize.models.instruct_pix2pix.convert.preset import random_components
    from keras_colorize.models.instruct_pix2pix.finetuner import InstructPix2PixFineTuner, default_optimizer

    settings = OPTIONS[option]
    keras.config.set_dtype_policy(settings.get("dtype", "float32"))
    components = random_components(seed=0, tiny=size == "tiny")
    tuner = InstructPix2PixFineTuner(
        components,
        seed=0,
        lora_rank=settings.get("lora_rank"),
        remat=settings.get("remat"),
        loss=settings.get("loss", "noise"),
    )
    tuner.compile(optimizer=default_optimizer(use_ema=settings.get("use_ema", False)))
    tuner.optimizer.build(tuner.trainable_variables)
    state = (
        [v.value for v in tuner.trainable_variables],
        [v.value for v in tuner.non_trainable_variables],
        [v.value for v in tuner.optimizer.variables],
        [v.value for v in tuner.metrics_variables],
    )
    batch = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), "float32")
    start = time.perf_counter()
    compiled = jax.jit(tuner.train_step, donate_argnums=0).lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    analysis = compiled.memory_analysis()
    arguments = analysis.argument_size_in_bytes
    outputs = analysis.output_size_in_bytes
    temporaries = analysis.temp_size_in_bytes
    aliased = analysis.alias_size_in_bytes
    emit(
        {
            "benchmark": "finetune_memory",
            "option": option,
            "size": size,
            "image_size": image_size,
            "batch_size": batch_size,
            "unet_parameters": int(tuner.unet.count_params()),
            "trainable_parameters": int(sum(math.prod(v.shape) for v in tuner.trainable_variables)),
            "arguments_gib": round(arguments / GIB, 3),
            "outputs_gib": round(outputs / GIB, 3),
            "temporaries_gib": round(temporaries / GIB, 3),
            "aliased_gib": round(aliased / GIB, 3),
            "peak_gib": round((arguments + outputs + temporaries - aliased) / GIB, 3),
            "compile_seconds": round(compile_seconds, 1),
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "sd"), default="tiny")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--options", nargs="*", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--in-process", action="store_true", help="measure here (one option) instead of in children")
    args = parser.parse_args(argv)
    sizes = ["--size", args.size, "--image-size", args.image_size, "--batch-size", args.batch_size]
    if not args.in_process:
        # One fresh process per option: the Stable Diffusion networks are built anew each time.
        for option in args.options:
            for record in run_json_lines("finetune_memory", [*sizes, "--options", option, "--in-process"], "jax"):
                emit(record)
        return
    if os.environ.get("KERAS_BACKEND") != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax: the figures come from XLA's compiled memory analysis")
    import jax

    # The classic generator draws the same distributions and initialises 860M weights much faster.
    jax.config.update("jax_threefry_partitionable", False)
    for option in args.options:
        measure(option, args.size, args.image_size, args.batch_size)


if __name__ == "__main__":
    main()
