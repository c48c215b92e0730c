"""InstructPix2Pix checkpoints and presets: diffusers folders, KerasCV files, the preset
format, and the `convert` / `colorize --model` commands.

The references are diffusers' `UNet2DConditionModel` and `AutoencoderKL` and
transformers' `CLIPTextModel` with the tiny configurations of the package (random
weights, every bias and normalisation parameter perturbed so that a swapped or
missing tensor shows), saved with `save_pretrained(safe_serialization=True)`.
KerasCV's fixed-size files are covered at the Stable Diffusion size (slow).

The helpers that build the tiny reference modules are shared with
tests/test_ip2p_pipeline.py.
"""

import gzip
import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import LATENT_SCALE
from tests.test_case import assert_one_line_error, invoke_cli, to_numpy

torch = pytest.importorskip("torch", reason="the reference implementations need PyTorch")
diffusers = pytest.importorskip("diffusers", reason="the reference U-Net and VAE are diffusers'")
transformers = pytest.importorskip("transformers", reason="the reference CLIP text model is transformers'")
pytest.importorskip("safetensors", reason="diffusers checkpoints are read with safetensors")

from keras_colorize.models.instruct_pix2pix.convert.checkpoints import (  # noqa: E402
    WidenedUNetWarning,
    components_from_diffusers,
    components_from_keras_cv,
    detect_layout,
)
from keras_colorize.models.instruct_pix2pix.convert.preset import (  # noqa: E402
    load_preset,
    packaged_vocabulary,
    random_components,
    save_preset,
)

# The package's tiny configurations (unet.TINY_UNET, vae.TINY_VAE, text.TINY_TEXT_ENCODER) in
# the references' terms.
TINY_DIFFUSERS_UNET = dict(
    in_channels=8,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    attention_head_dim=2,  # diffusers' SD v1 name for the number of heads
    cross_attention_dim=32,
    norm_num_groups=32,
    sample_size=16,
)
TINY_DIFFUSERS_VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=32,
    scaling_factor=LATENT_SCALE,
)
TINY_CLIP_TEXT = dict(
    vocab_size=49408,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
)


# ----------------------------------------------------------------------------- references


def _perturb(module, seed):
    """Random weights everywhere: biases and normalisation parameters get noise too."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.ndim == 1:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def reference_unet(seed=0, in_channels=8):
    """A tiny diffusers UNet2DConditionModel with random weights (eval mode)."""
    torch.manual_seed(seed)
    return _perturb(diffusers.UNet2DConditionModel(**dict(TINY_DIFFUSERS_UNET, in_channels=in_channels)), seed)


def reference_vae(seed=1):
    """A tiny diffusers AutoencoderKL with random weights (eval mode)."""
    torch.manual_seed(seed)
    return _perturb(diffusers.AutoencoderKL(**TINY_DIFFUSERS_VAE), seed)


def reference_text_encoder(seed=2):
    """A tiny transformers CLIPTextModel with random weights (eval mode)."""
    torch.manual_seed(seed)
    return _perturb(transformers.CLIPTextModel(transformers.CLIPTextConfig(**TINY_CLIP_TEXT)), seed)


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table (written here from its definition)."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return [chr(c) for c in characters]


def reference_tokenizer():
    """A transformers CLIPTokenizer built from the packaged BPE merges (CLIP's vocabulary)."""
    with gzip.open(packaged_vocabulary(), "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    return transformers.CLIPTokenizer(
        vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=77, pad_token="<|endoftext|>"
    )


def write_diffusers_checkpoint(folder, in_channels=8, tokenizer=True):
    """Save tiny random reference modules as a diffusers checkpoint folder; return them."""
    modules = {
        "unet": reference_unet(in_channels=in_channels),
        "vae": reference_vae(),
        "text_encoder": reference_text_encoder(),
    }
    for name, module in modules.items():
        module.save_pretrained(folder / name, safe_serialization=True)
    if tokenizer:
        modules["tokenizer"] = reference_tokenizer()
        modules["tokenizer"].save_pretrained(folder / "tokenizer")
    return modules


def nchw(array):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(array, "float32"), (0, 3, 1, 2))))


def nhwc(tensor):
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


def photo_batch(photos_64, size=32):
    """Two real photos at `size`: sRGB in [0, 1], float32, (2, size, size, 3)."""
    return np.clip(to_numpy(keras.ops.image.resize(photos_64[:2], (size, size), antialias=True)), 0, 1)


def assert_matches_references(components, modules, photos):
    """Every network of `components` gives the reference modules' outputs (float32, 1e-4)."""
    rng = np.random.default_rng(0)
    prompts = ["colorize the image", "make it a sunny day with blue sky"]
    ids = components.tokenizer(prompts)
    run = lambda network, inputs: np.asarray(network.predict_on_batch(inputs))  # noqa: E731 (compiled)
    reference_ids = modules["tokenizer"](prompts, padding="max_length", max_length=77, return_tensors="np")
    np.testing.assert_array_equal(ids, reference_ids["input_ids"])
    with torch.no_grad():
        states = modules["text_encoder"](torch.from_numpy(ids.astype("int64"))).last_hidden_state.numpy()
    np.testing.assert_allclose(run(components.text_encoder, ids), states, atol=1e-4)

    scaled = photos * 2.0 - 1.0
    vae = modules["vae"]
    with torch.no_grad():
        moments = nhwc(vae.quant_conv(vae.encoder(nchw(scaled))))
    np.testing.assert_allclose(run(components.vae_encoder, scaled), moments, atol=1e-4)
    latents = rng.standard_normal((2, 16, 16, 4)).astype("float32")
    with torch.no_grad():
        decoded = nhwc(vae.decode(nchw(latents)).sample)
    np.testing.assert_allclose(run(components.vae_decoder, latents), decoded, atol=1e-4)

    sample = rng.standard_normal((2, 16, 16, 8)).astype("float32")
    timesteps = np.asarray([999.0, 321.5], "float32")
    unet = modules["unet"]
    reference_input = nchw(sample[..., : unet.config.in_channels])
    with torch.no_grad():
        noise = nhwc(unet(reference_input, torch.from_numpy(timesteps), encoder_hidden_states=torch.from_numpy(states)).sample)
    assert np.std(noise) > 1e-2
    np.testing.assert_allclose(run(components.unet, [sample, timesteps, states]), noise, atol=1e-4)


# ----------------------------------------------------------------------------- diffusers


def test_diffusers_checkpoint_converts_to_a_preset_with_the_same_outputs(tmp_path, photos_64):
    modules = write_diffusers_checkpoint(tmp_path / "checkpoint")
    assert detect_layout(tmp_path / "checkpoint") == "diffusers"
    components = components_from_diffusers(tmp_path / "checkpoint")
    assert components.tokenizer.vocabulary is None  # the packaged vocabulary, recognised
    assert components.unet.get_config()["input_channels"] == 8
    save_preset(tmp_path / "preset", components)
    loaded = load_preset(tmp_path / "preset")
    assert_matches_references(loaded, modules, photo_batch(photos_64))


def test_a_text_to_image_unet_is_widened_to_eight_channels(tmp_path, photos_64):
    modules = write_diffusers_checkpoint(tmp_path / "checkpoint", in_channels=4, tokenizer=False)
    modules["tokenizer"] = reference_tokenizer()
    with pytest.warns(WidenedUNetWarning, match="widened to 8 channels"):
        components = components_from_diffusers(tmp_path / "checkpoint")
    # The conditioning channels are zero-weighted: the output is the 4-channel U-Net's on the first 4.
    assert_matches_references(components, modules, photo_batch(photos_64))


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_diffusers_mistakes_are_one_line_errors(tmp_path):
    folder = tmp_path / "checkpoint"
    write_diffusers_checkpoint(folder, tokenizer=False)

    def fails(*fragments, directory=folder):
        with pytest.raises(UserInputError) as info:
            components_from_diffusers(directory)
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, message

    fails("nowhere", directory=tmp_path / "nowhere")
    config = folder / "unet" / "config.json"
    original = config.read_text()
    _edit_json(config, in_channels=9)
    fails("in_channels=9")
    config.write_text(original)
    _edit_json(config, attention_head_dim=[2, 4])  # Stable Diffusion 2's per-level heads
    fails("per-level attention_head_dim")
    config.write_text(original)

    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(weights))
    save_file({k: v for k, v in tensors.items() if k != "decoder.conv_out.bias"}, str(weights))
    fails("decoder.conv_out.bias")
    weights.write_bytes(b"not a safetensors file")
    fails(str(weights))
    weights.unlink()
    fails("vae", "safetensors")
    (folder / "vae" / "config.json").unlink()
    fails(str(folder / "vae" / "config.json"))


def test_tokenizer_folders_published_and_foreign(tmp_path):
    folder = tmp_path / "checkpoint"
    write_diffusers_checkpoint(folder)  # tokenizer.json (transformers' fast-tokenizer save)
    assert components_from_diffusers(folder).tokenizer.vocabulary is None
    # The published Stable Diffusion layout: vocab.json + merges.txt.
    tokenizer_folder = folder / "tokenizer"
    model = json.loads((tokenizer_folder / "tokenizer.json").read_text())["model"]
    (tokenizer_folder / "tokenizer.json").unlink()
    (tokenizer_folder / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (tokenizer_folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    assert components_from_diffusers(folder).tokenizer.vocabulary is None
    # Other merges are used as they are (and must agree with vocab.json).
    (tokenizer_folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges[:500]) + "\n")
    with pytest.raises(UserInputError, match="vocabulary does not match"):
        components_from_diffusers(folder)
    (tokenizer_folder / "vocab.json").unlink()
    tokenizer = components_from_diffusers(folder).tokenizer
    assert tokenizer.vocabulary == str(tokenizer_folder / "merges.txt") and tokenizer.vocabulary_size == 512 + 500 + 2
    _edit_json(tokenizer_folder / "tokenizer_config.json", pad_token="!")  # Stable Diffusion 2's padding
    with pytest.raises(UserInputError, match="pads with '!'"):
        components_from_diffusers(folder)


# ----------------------------------------------------------------------------- presets


def test_preset_round_trip_refuses_to_overwrite_and_reports_bad_files(tmp_path):
    components = random_components(seed=3)
    path = save_preset(tmp_path / "preset", components, metadata={"note": "random"})
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "keras_colorize.instruct_pix2pix" and config["format_version"] == 1
    assert config["metadata"] == {"note": "random"}
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "text_encoder.weights.h5", "unet.weights.h5", "vae_decoder.weights.h5", "vae_encoder.weights.h5"
    ]
    loaded = load_preset(path)
    for name in ("unet", "vae_encoder", "vae_decoder", "text_encoder"):
        original, restored = getattr(components, name), getattr(loaded, name)
        assert restored.get_config() == original.get_config()
        for a, b in zip(original.weights, restored.weights, strict=True):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert loaded.tokenizer.get_config() == components.tokenizer.get_config()

    with pytest.raises(UserInputError, match="already exists"):
        save_preset(path, components)
    assert json.loads((path / "config.json").read_text())["metadata"] == {"note": "random"}
    save_preset(path, components, overwrite=True)
    assert "metadata" not in json.loads((path / "config.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset"]  # no staging folders left

    half = load_preset(path, dtype="bfloat16")
    for name in ("unet", "vae_encoder", "vae_decoder", "text_encoder"):
        dtypes = {keras.backend.standardize_dtype(w.dtype) for w in getattr(half, name).weights}
        assert dtypes == {"bfloat16"}, (name, dtypes)
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(half.unet.weights[-1], "float32")), to_numpy(loaded.unet.weights[-1]), rtol=1e-2
    )

    def fails(fragment, target=path):
        with pytest.raises(UserInputError, match=None) as info:
            load_preset(target)
        assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)

    fails("preset folder not found", tmp_path / "nowhere")
    weights = path / "vae_decoder.weights.h5"
    weights.write_bytes(weights.read_bytes()[:200])
    fails(str(weights))
    weights.unlink()
    fails(str(weights))
    (path / "config.json").write_text("{not json")
    fails("config.json")
    (path / "config.json").write_text(json.dumps({"format": "something else"}))
    fails("not an InstructPix2Pix preset")


def test_a_tokenizer_with_its_own_vocabulary_travels_with_the_preset(tmp_path):
    from keras_colorize.models.instruct_pix2pix.text import CLIPTokenizer

    merges = tmp_path / "merges.txt"
    with gzip.open(packaged_vocabulary(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    merges.write_text("\n".join(lines[:1001]) + "\n", encoding="utf-8")  # a smaller vocabulary
    components = random_components(seed=0)
    components.tokenizer = CLIPTokenizer(vocabulary=merges, sequence_length=77)
    save_preset(tmp_path / "preset", components)
    merges.unlink()
    loaded = load_preset(tmp_path / "preset")
    assert (tmp_path / "preset" / "vocabulary.txt.gz").is_file()
    assert loaded.tokenizer.vocabulary_size == components.tokenizer.vocabulary_size < 49408
    np.testing.assert_array_equal(loaded.tokenizer("a red car"), components.tokenizer("a red car"))


# ----------------------------------------------------------------------------- KerasCV


def test_keras_cv_folder_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(UserInputError, match="unknown checkpoint layout"):
        detect_layout(tmp_path)
    (tmp_path / "kcv_diffusion_model.h5").write_bytes(b"")
    assert detect_layout(tmp_path) == "keras-cv"
    with pytest.raises(UserInputError, match="vae_encoder.h5: not found"):
        components_from_keras_cv(tmp_path)


def _save_legacy_h5(model, path):
    """Write `model`'s weights as the legacy Keras-2 HDF5 file KerasCV downloads."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def _keras_cv_timestep_embedding(timesteps, dim=320, max_period=10000):
    half = dim // 2
    frequencies = np.exp(-np.log(max_period) * np.arange(half, dtype="float32") / half)
    arguments = np.asarray(timesteps, "float32")[:, None] * frequencies[None]
    return np.concatenate([np.cos(arguments), np.sin(arguments)], axis=-1).astype("float32")


@pytest.mark.slow
def test_keras_cv_files_convert_at_the_stable_diffusion_size(tmp_path, photos_64):
    """KerasCV's four networks (random weights, SD v1 sizes) -> components -> the same outputs.

    One KerasCV network at a time is built, saved and run, to bound the memory (about 8 GB).
    """
    sd = pytest.importorskip("keras_cv.src.models.stable_diffusion", reason="needs keras-cv")
    from keras_colorize.models.instruct_pix2pix.convert.checkpoints import KERAS_CV_FILES
    from keras_colorize.models.instruct_pix2pix.text import CLIPTokenizer

    rng = np.random.default_rng(0)
    tokens = CLIPTokenizer()(["colorize the image"])
    images = photos_64[:1] * 2.0 - 1.0
    latents = rng.standard_normal((1, 8, 8, 4)).astype("float32")
    conditioning = rng.standard_normal((1, 8, 8, 4)).astype("float32")
    context = rng.standard_normal((1, 77, 768)).astype("float32")
    timesteps = np.asarray([500.0], "float32")
    keras.utils.set_random_seed(0)
    expected = {}
    builders = {
        "text_encoder": (lambda: sd.text_encoder.TextEncoder(77, download_weights=False), lambda m: m([tokens, np.arange(77)[None]])),
        "vae_encoder": (lambda: sd.image_encoder.ImageEncoder(download_weights=False), lambda m: m(images)),
        "vae_decoder": (lambda: sd.decoder.Decoder(64, 64, download_weights=False), lambda m: m(latents)),
        "unet": (
            lambda: sd.diffusion_model.DiffusionModel(64, 64, 77, download_weights=False),
            lambda m: m([latents, _keras_cv_timestep_embedding(timesteps), context]),
        ),
    }
    for name, (build, run) in builders.items():
        model = build()
        _save_legacy_h5(model, tmp_path / KERAS_CV_FILES[name])
        expected[name] = to_numpy(run(model))
        del model
    components = components_from_keras_cv(tmp_path)

    def ours(network, inputs):
        return np.asarray(network.predict_on_batch(inputs))

    np.testing.assert_allclose(ours(components.text_encoder, tokens), expected["text_encoder"], atol=1e-4)
    # KerasCV's image encoder keeps the scaled mean; its decoder takes scaled latents. The
    # SD-size VAE stacks some 30 convolutions and group normalizations: float32 sums in
    # another order (KerasCV's layers against ours, on PyTorch's kernels) differ by up to
    # 2.4e-4 on values of order 0.3, so the VAE's outputs are compared within 1e-3.
    moments = ours(components.vae_encoder, images)
    np.testing.assert_allclose(moments[..., :4] * LATENT_SCALE, expected["vae_encoder"], atol=1e-3)
    np.testing.assert_allclose(ours(components.vae_decoder, latents / LATENT_SCALE), expected["vae_decoder"], atol=1e-3)
    unet_input = np.concatenate([latents, conditioning], axis=-1)  # the new channels are zero-weighted
    np.testing.assert_allclose(ours(components.unet, [unet_input, timesteps, context]), expected["unet"], atol=1e-3)


# ----------------------------------------------------------------------------- command line


def test_convert_and_colorize_with_a_preset_from_the_command_line(tmp_path, photo_paths):
    checkpoint = tmp_path / "checkpoint"
    write_diffusers_checkpoint(checkpoint)
    preset = tmp_path / "preset"
    result = invoke_cli("convert", checkpoint, preset)
    assert result.exit_code == 0, result.output
    assert "converted the diffusers checkpoint" in result.stdout and (preset / "unet.weights.h5").is_file()
    assert_one_line_error(invoke_cli("convert", checkpoint, preset), "already exists", "--overwrite")
    assert invoke_cli("convert", checkpoint, preset, "--overwrite", "--from", "diffusers").exit_code == 0
    assert_one_line_error(invoke_cli("convert", tmp_path / "nowhere", tmp_path / "p2"), "nowhere")
    assert_one_line_error(invoke_cli("convert", preset, tmp_path / "p2"), "unknown checkpoint layout")
    assert_one_line_error(invoke_cli("convert", checkpoint, tmp_path / "p3", "--from", "keras-cv"), "kcv_diffusion_model.h5")

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(photo_paths[1]).convert("RGB").resize((75, 53)).save(photos / "chelsea.jpg", quality=95)
    Image.open(photo_paths[0]).convert("L").resize((40, 64)).save(photos / "gray.png")
    out = tmp_path / "out"
    args = ["--model", preset, photos, "-o", out, "--steps", "2", "--size", "32", "--seed", "5"]
    result = invoke_cli("colorize", *args)
    assert result.exit_code == 0, result.output
    assert "colorized 2 images" in result.stdout
    with Image.open(out / "chelsea.jpg") as image:
        assert image.size == (75, 53) and image.mode == "RGB"
    with Image.open(out / "gray.png") as image:
        assert image.size == (40, 64) and image.mode == "RGB"
        first = np.asarray(image)
    result = invoke_cli("colorize", *args, "--overwrite", "--sampler", "ddim", "--prompt", "make it colourful")
    assert result.exit_code == 0, result.output
    with Image.open(out / "gray.png") as image:
        assert np.abs(np.asarray(image, "float32") - first).max() > 0  # another sampler and prompt

    assert_one_line_error(invoke_cli("colorize", *args), "already exists")
    assert_one_line_error(invoke_cli("colorize", *args, "--overwrite", "--boxes", tmp_path), "--boxes")
    assert_one_line_error(invoke_cli("colorize", "--model", tmp_path / "nowhere", photos, "-o", out), "nowhere")
    assert_one_line_error(invoke_cli("colorize", "--model", preset, "-o", out), "no INPUTS")
    assert_one_line_error(invoke_cli("colorize", preset / "config.json", photos, "-o", out, "--steps", "2"), "--steps")
    assert_one_line_error(invoke_cli("colorize", "--model", preset, "--saved-model", preset, photos, "-o", out), "--saved-model")
    assert_one_line_error(invoke_cli("colorize", "-o", out), "no INPUTS given")

    # `evaluate` scores the preset like any colorizer (default sampling, seed 0, at --size).
    report = tmp_path / "report"
    result = invoke_cli("evaluate", preset, "--data", photos, "--size", "32", "--metrics", "psnr,ab_mse", "-o", report)
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["num_images"] == 1  # the gray photo is left out
    assert summary["models"]["model"]["mode"] == "photo"
    assert summary["models"]["model"]["generator"] == "DiffusionColorizer"
    assert summary["metrics"]["model"]["ab_mse"] != summary["metrics"]["gray_baseline"]["ab_mse"]
