"""InstructPix2Pix sampling throughput and memory: `InstructPix2PixPipeline.generate` on
each backend against diffusers' `StableDiffusionInstructPix2PixPipeline` (PyTorch, eager),
alternating fresh processes.

Both pipelines hold the same architecture (the package's tiny configuration by default,
Stable Diffusion v1's with `--config sd`; random weights, which speed does not depend on)
and run the same work: Euler-ancestral sampling, `--steps` steps (20) with dual
classifier-free guidance (the U-Net on the batch [text + image, image only, neither]),
VAE encoding of the conditioning photos and decoding of the result, on a batch of
photos at `--size` (64). Each worker samples once to compile/warm up, then `--repeats`
times; `images_per_s` is the batch over the median time of one `generate` call,
`peak_rss_mib` the process's peak resident memory.

Usage (one JSON line per measurement, then a summary line):

    python -m benchmarks.sampler
    python -m benchmarks.sampler --size 128 --batch-size 2 --runs 3
    python -m benchmarks.sampler --config sd --size 256 --steps 20 --backends jax
"""

import argparse
import statistics
import sys
import time

from benchmarks.common import BACKENDS, emit, machine, median, peak_rss_mib, photo_batch, run_json_lines

PROMPT = "colorize the image"


def _diffusers_configs(config):
    """diffusers/transformers configurations equal to the package's tiny or SD v1 components."""
    from keras_colorize.models.instruct_pix2pix.constants import LATENT_SCALE
    from keras_colorize.models.instruct_pix2pix.text import TINY_TEXT_ENCODER
    from keras_colorize.models.instruct_pix2pix.unet import TINY_UNET
    from keras_colorize.models.instruct_pix2pix.vae import TINY_VAE

    unet = dict(widths=(320, 640, 1280, 1280), layers_per_block=2, attention_levels=(True, True, True, False), heads=8,
                context_dim=768)
    vae = dict(channels=(128, 256, 512, 512), layers_per_block=2)
    text = dict(width=768, depth=12, heads=12, intermediate_size=3072)
    if config == "tiny":
        unet, vae, text = dict(unet, **TINY_UNET), dict(vae, **TINY_VAE), dict(text, **TINY_TEXT_ENCODER)
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in unet["attention_levels"]]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(unet["attention_levels"])]
    return (
        dict(in_channels=8, out_channels=4, block_out_channels=unet["widths"], layers_per_block=unet["layers_per_block"],
             down_block_types=down, up_block_types=up, attention_head_dim=unet["heads"],
             cross_attention_dim=unet["context_dim"], norm_num_groups=32),
        dict(in_channels=3, out_channels=3, block_out_channels=vae["channels"], layers_per_block=vae["layers_per_block"],
             down_block_types=["DownEncoderBlock2D"] * len(vae["channels"]),
             up_block_types=["UpDecoderBlock2D"] * len(vae["channels"]), latent_channels=4, norm_num_groups=32,
             scaling_factor=LATENT_SCALE),
        dict(vocab_size=49408, hidden_size=text["width"], intermediate_size=text["intermediate_size"],
             num_hidden_layers=text["depth"], num_attention_heads=text["heads"], max_position_embeddings=77,
             hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
    )


def _reference_tokenizer():
    """transformers' CLIPTokenizer with the packaged CLIP vocabulary."""
    import gzip

    import transformers

    from keras_colorize.models.instruct_pix2pix.text import MERGES, VOCABULARY_PATH

    with gzip.open(VOCABULARY_PATH, "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : MERGES + 1]
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))  # GPT-2's byte symbols
    others = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return transformers.CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77)


def _time_calls(function, repeats):
    start = time.perf_counter()
    function()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _record(implementation, backend, args, first, call_s):
    return {
        "benchmark": "ip2p_sampling",
        "implementation": implementation,
        "backend": backend,
        "config": args.config,
        "image_size": args.size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "sampler": "euler_ancestral",
        "images_per_s": round(args.batch_size / call_s, 4),
        "call_s": round(call_s, 4),
        "step_ms": round(1000 * call_s / args.steps, 2),
        "compile_s": round(max(first - call_s, 0.0), 2),
        "peak_rss_mib": round(peak_rss_mib()),
        **machine(),
    }


def measure_keras(args):
    """Sampling time of `InstructPix2PixPipeline.generate` on the current backend; one record."""
    import keras

    from keras_colorize.models.instruct_pix2pix.convert.preset import random_components
    from keras_colorize.models.instruct_pix2pix.pipeline import InstructPix2PixPipeline

    pipeline = InstructPix2PixPipeline(random_components(seed=0, tiny=args.config == "tiny"), "euler_ancestral")
    images = photo_batch(args.size, args.batch_size)

    def sample():
        pipeline.generate(images, prompt=PROMPT, steps=args.steps, seed=0)

    first, call_s = _time_calls(sample, args.repeats)
    return _record("keras-colorize", keras.backend.backend(), args, first, call_s)


def measure_diffusers(args):
    """Sampling time of diffusers' StableDiffusionInstructPix2PixPipeline (PyTorch eager); one record."""
    import diffusers
    import torch
    import transformers

    unet_config, vae_config, text_config = _diffusers_configs(args.config)
    torch.manual_seed(0)
    pipeline = diffusers.StableDiffusionInstructPix2PixPipeline(
        vae=diffusers.AutoencoderKL(**vae_config).eval(),
        text_encoder=transformers.CLIPTextModel(transformers.CLIPTextConfig(**text_config)).eval(),
        tokenizer=_reference_tokenizer(),
        unet=diffusers.UNet2DConditionModel(**unet_config).eval(),
        scheduler=diffusers.EulerAncestralDiscreteScheduler(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    images = photo_batch(args.size, args.batch_size)

    def sample():
        pipeline(
            prompt=[PROMPT] * args.batch_size,
            image=images,
            num_inference_steps=args.steps,
            guidance_scale=7.0,
            image_guidance_scale=1.5,
            generator=torch.Generator().manual_seed(0),
            output_type="np",
        )

    first, call_s = _time_calls(sample, args.repeats)
    return _record("diffusers", "torch", args, first, call_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "sd"), default="tiny", help="network sizes (default: tiny)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (default: 20)")
    parser.add_argument("--repeats", type=int, default=3, help="timed generate calls per process after the warm-up")
    parser.add_argument("--runs", type=int, default=2, help="alternating process pairs per backend")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--worker", choices=("keras", "diffusers"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "keras":
        emit(measure_keras(args))
        return
    if args.worker == "diffusers":
        emit(measure_diffusers(args))
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)} (use {', '.join(BACKENDS)})")
    common = ["--config", args.config, "--size", args.size, "--batch-size", args.batch_size, "--steps", args.steps,
              "--repeats", args.repeats]
    records = []
    for run in range(args.runs):
        for backend in backends:
            (reference,) = run_json_lines("sampler", common + ["--worker", "diffusers"], backend="torch")
            (record,) = run_json_lines("sampler", common + ["--worker", "keras"], backend=backend)
            for item in (reference, record):
                item["run"] = run
                emit(item)
            record["_paired"] = record["images_per_s"] / reference["images_per_s"]
            records += [reference, record]
    references = [r for r in records if r["implementation"] == "diffusers"]
    summary = {
        "benchmark": "ip2p_sampling_summary",
        "config": args.config,
        "image_size": args.size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "diffusers": {
            "images_per_s": round(median([r["images_per_s"] for r in references]), 4),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in references]),
            "runs": len(references),
        },
        "backends": {},
    }
    for backend in backends:
        runs = [r for r in records if r["implementation"] == "keras-colorize" and r["backend"] == backend]
        summary["backends"][backend] = {
            "images_per_s": round(median([r["images_per_s"] for r in runs]), 4),
            "compile_s": median([r["compile_s"] for r in runs]),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in runs]),
            "paired_ratio_to_diffusers": round(median([r["_paired"] for r in runs]), 3),
            "runs": len(runs),
        }
    emit(summary)


if __name__ == "__main__":
    sys.exit(main())
