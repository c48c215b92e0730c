"""Whole checkpoints into DiffusionComponents: a diffusers folder or KerasCV's weight files.

A diffusers checkpoint folder (as `save_pretrained(safe_serialization=True)` writes it,
or as published) holds `unet/`, `vae/` and `text_encoder/`, each with `config.json` and
`*.safetensors` weights, and optionally `tokenizer/`. The weights are read with
`safetensors.numpy` (no PyTorch needed); each network is built from its config.json.

A KerasCV folder holds the Stable Diffusion v1 weight files under the names KerasCV
downloads them as: `kcv_diffusion_model.h5`, `vae_encoder.h5`, `kcv_decoder.h5` and
`kcv_encoder.h5`. KerasCV's sizes are fixed, so the networks are the default (SD v1)
configurations.

A text-to-image U-Net (4 input channels) is accepted from either source: its input
convolution is widened to the 8 channels of InstructPix2Pix, the 4 new (conditioning
image) channels zero-initialised, as InstructPix2Pix's fine-tuning starts.

Examples:
    >>> from keras_colorize.models.instruct_pix2pix.convert.checkpoints import components_from_diffusers
    >>> from keras_colorize.models.instruct_pix2pix.convert.preset import save_preset
    >>> save_preset("presets/ip2p", components_from_diffusers("instruct-pix2pix/"))  # doctest: +SKIP
"""

import functools
import gzip
import json
import warnings
from pathlib import Path

import numpy as np

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.models.instruct_pix2pix.constants import LATENT_SCALE

KERAS_CV_FILES = {
    "unet": "kcv_diffusion_model.h5",
    "vae_encoder": "vae_encoder.h5",
    "vae_decoder": "kcv_decoder.h5",
    "text_encoder": "kcv_encoder.h5",
}
"""KerasCV's Stable Diffusion v1 weight files, by network (the names KerasCV downloads)."""

DIFFUSERS_FOLDERS = ("unet", "vae", "text_encoder")
"""The sub-folders of a diffusers checkpoint that are converted (`tokenizer/` is checked)."""

INPUT_CHANNELS = 8
"""Input channels of the InstructPix2Pix U-Net: 4 noisy latents + 4 conditioning-image latents."""


class WidenedUNetWarning(UserWarning):
    """A 4-channel (text-to-image) U-Net was widened to 8 input channels."""


# ----------------------------------------------------------------------------- detection


def detect_layout(directory):
    """The checkpoint layout of a folder: "diffusers" or "keras-cv".

    Args:
        directory: str or Path. A checkpoint folder.

    Returns:
        str. "diffusers" (it has `unet/config.json`) or "keras-cv" (it has
        `kcv_diffusion_model.h5`).

    Raises:
        UserInputError: the folder is missing or holds neither layout.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: checkpoint folder not found")
    if (directory / "unet" / "config.json").is_file() or (directory / "model_index.json").is_file():
        return "diffusers"
    if any((directory / name).is_file() for name in KERAS_CV_FILES.values()):
        return "keras-cv"
    raise UserInputError(
        f"{directory}: unknown checkpoint layout (expected a diffusers folder with unet/, vae/, text_encoder/, "
        f"or KerasCV's {', '.join(KERAS_CV_FILES.values())})"
    )


def components_from_checkpoint(directory, layout=None):
    """Components from a diffusers folder or a folder of KerasCV files.

    Args:
        directory: str or Path. The checkpoint folder.
        layout: str or None. "diffusers" or "keras-cv"; None detects it. Defaults to None.

    Returns:
        DiffusionComponents.

    Raises:
        UserInputError: see `components_from_diffusers` and `components_from_keras_cv`.
    """
    layout = layout or detect_layout(directory)
    if layout == "diffusers":
        return components_from_diffusers(directory)
    if layout in ("keras-cv", "keras_cv"):
        return components_from_keras_cv(directory)
    raise UserInputError(f"unknown checkpoint layout {layout!r} (use 'diffusers' or 'keras-cv')")


# ----------------------------------------------------------------------------- diffusers


def _read_config(folder):
    path = folder / "config.json"
    if not folder.is_dir():
        raise UserInputError(f"{folder}: folder not found (a diffusers checkpoint has unet/, vae/ and text_encoder/)")
    if not path.is_file():
        raise UserInputError(f"{path}: not found")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: cannot read ({first_line(error)})") from None
    if not isinstance(config, dict):
        raise UserInputError(f"{path}: not a JSON object")
    return config


def _weight_files(folder):
    """The safetensors files of one network folder (plain precision first, then a variant)."""
    index_files = sorted(folder.glob("*.safetensors.index.json"))
    plain_index = [p for p in index_files if p.name.count(".") == 3]  # name.safetensors.index.json
    for index in plain_index or index_files:
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserInputError(f"{index}: cannot read the shard index ({first_line(error)})") from None
        return [folder / name for name in sorted(set(weight_map.values()))]
    files = sorted(folder.glob("*.safetensors"))
    plain = [p for p in files if p.name.count(".") == 1]  # model.safetensors, not model.fp16.safetensors
    if plain:
        return plain
    variants = sorted({p.name.split(".")[-2] for p in files})
    if len(variants) == 1:
        return files
    if variants:
        raise UserInputError(f"{folder}: several weight variants ({', '.join(variants)}) and no plain safetensors file")
    if any(folder.glob("*.bin")) or any(folder.glob("*.ckpt")):
        raise UserInputError(
            f"{folder}: only PyTorch pickle weights (.bin); re-save the checkpoint with "
            "save_pretrained(..., safe_serialization=True)"
        )
    raise UserInputError(f"{folder}: no *.safetensors weights found")


def read_safetensors(folder):
    """Every tensor of a network folder's safetensors files, as float32 NumPy arrays.

    Args:
        folder: str or Path. A diffusers network folder (e.g. `unet/`).

    Returns:
        dict of str -> np.ndarray, in diffusers/transformers naming.

    Raises:
        UserInputError: no weights, or a file cannot be read.
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    state = {}
    for path in _weight_files(folder):
        if not path.is_file():
            raise UserInputError(f"{path}: not found (named in the shard index)")
        try:
            tensors = load_file(str(path))
        except Exception as error:  # safetensors raises its own types for bad or unsupported files
            raise UserInputError(f"{path}: cannot read ({first_line(error)})") from None
        for name, value in tensors.items():
            state[name] = value.astype("float32") if value.dtype.kind == "f" else value
    return state


def _check_values(path, config, expected):
    """One-line error for a config entry the layout does not support."""
    for key, allowed in expected.items():
        value = config.get(key, allowed[0])
        if value not in allowed:
            raise UserInputError(
                f"{path}: {key}={value!r} is not supported (the Stable Diffusion v1 layout needs "
                f"{' or '.join(repr(a) for a in allowed)})"
            )


def unet_arguments(config, path="unet/config.json"):
    """InstructPix2PixUNet arguments from a diffusers `UNet2DConditionModel` config.

    Args:
        config: dict. The parsed `unet/config.json`.
        path: str or Path. Named in errors. Defaults to "unet/config.json".

    Returns:
        dict of constructor arguments (`input_channels` as in the checkpoint: 4 or 8).

    Raises:
        UserInputError: a layout other than Stable Diffusion v1's.
    """
    _check_values(
        path,
        config,
        {
            "act_fn": ["silu"],
            "flip_sin_to_cos": [True],
            "freq_shift": [0],
            "class_embed_type": [None],
            "addition_embed_type": [None],
            "encoder_hid_dim": [None],
            "time_cond_proj_dim": [None],
            "time_embedding_type": ["positional"],
            "resnet_time_scale_shift": ["default"],
            "only_cross_attention": [False],
            "dual_cross_attention": [False],
            "transformer_layers_per_block": [1],
            "conv_in_kernel": [3],
            "conv_out_kernel": [3],
            "center_input_sample": [False],
            "mid_block_type": ["UNetMidBlock2DCrossAttn", None],
            "norm_eps": [1e-5],
            "downsample_padding": [1],
            "mid_block_scale_factor": [1, 1.0],
            "num_attention_heads": [None],
        },
    )
    down = list(config.get("down_block_types", []))
    up = list(config.get("up_block_types", []))
    widths = [int(w) for w in config.get("block_out_channels", [])]
    known_down = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
    if not widths or len(down) != len(widths) or len(up) != len(widths) or any(b not in known_down for b in down):
        raise UserInputError(f"{path}: unsupported block layout (down_block_types {down}, up_block_types {up})")
    attention = [known_down[b] for b in down]
    expected_up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)]
    if up != expected_up:
        raise UserInputError(f"{path}: up_block_types {up} do not mirror down_block_types {down}")
    heads = config.get("attention_head_dim", 8)
    layers_per_block = config.get("layers_per_block", 2)
    if isinstance(heads, list) and len(set(heads)) == 1:
        heads = heads[0]
    if isinstance(layers_per_block, list) and len(set(layers_per_block)) == 1:
        layers_per_block = layers_per_block[0]
    if not isinstance(heads, int) or not isinstance(layers_per_block, int):
        raise UserInputError(
            f"{path}: per-level attention_head_dim or layers_per_block is not supported (Stable Diffusion v1 uses one value)"
        )
    if config.get("out_channels", 4) != 4 or config.get("in_channels", 4) not in (4, INPUT_CHANNELS):
        raise UserInputError(
            f"{path}: in_channels={config.get('in_channels')}, out_channels={config.get('out_channels')} "
            f"(expected 8 or 4 input channels and 4 output channels)"
        )
    return dict(
        input_channels=int(config.get("in_channels", 4)),
        output_channels=4,
        widths=tuple(widths),
        layers_per_block=layers_per_block,
        attention_levels=tuple(attention),
        heads=heads,
        context_dim=int(config.get("cross_attention_dim", 768)),
        groups=int(config.get("norm_num_groups", 32)),
    )


def vae_arguments(config, path="vae/config.json"):
    """VAEEncoder/VAEDecoder arguments from a diffusers `AutoencoderKL` config.

    Args:
        config: dict. The parsed `vae/config.json`.
        path: str or Path. Named in errors. Defaults to "vae/config.json".

    Returns:
        dict of constructor arguments shared by both halves.

    Raises:
        UserInputError: a layout other than Stable Diffusion v1's.
    """
    _check_values(
        path,
        config,
        {
            "act_fn": ["silu"],
            "in_channels": [3],
            "out_channels": [3],
            "use_quant_conv": [True],
            "use_post_quant_conv": [True],
            "mid_block_add_attention": [True],
            "norm_eps": [1e-6],
        },
    )
    levels = len(config.get("block_out_channels", []))
    if (
        not levels
        or list(config.get("down_block_types", [])) != ["DownEncoderBlock2D"] * levels
        or list(config.get("up_block_types", [])) != ["UpDecoderBlock2D"] * levels
    ):
        raise UserInputError(f"{path}: unsupported block layout (only DownEncoderBlock2D / UpDecoderBlock2D)")
    scale = config.get("scaling_factor", LATENT_SCALE)
    if not np.isclose(scale, LATENT_SCALE):
        raise UserInputError(f"{path}: scaling_factor={scale} (Stable Diffusion v1's VAE uses {LATENT_SCALE})")
    return dict(
        channels=tuple(int(c) for c in config["block_out_channels"]),
        layers_per_block=int(config.get("layers_per_block", 2)),
        latent_channels=int(config.get("latent_channels", 4)),
        groups=int(config.get("norm_num_groups", 32)),
    )


def text_encoder_arguments(config, path="text_encoder/config.json"):
    """CLIPTextEncoder arguments from a transformers `CLIPTextModel` config.

    Args:
        config: dict. The parsed `text_encoder/config.json`.
        path: str or Path. Named in errors. Defaults to "text_encoder/config.json".

    Returns:
        dict of constructor arguments.

    Raises:
        UserInputError: not a CLIP text model with quick-GELU (Stable Diffusion v1's).
    """
    architectures = config.get("architectures") or ["CLIPTextModel"]
    if config.get("model_type", "clip_text_model") != "clip_text_model" or architectures[0] != "CLIPTextModel":
        raise UserInputError(
            f"{path}: a {config.get('model_type')} / {architectures[0]} is not a CLIPTextModel (Stable Diffusion v1)"
        )
    _check_values(path, config, {"hidden_act": ["quick_gelu"], "layer_norm_eps": [1e-5]})
    return dict(
        vocabulary_size=int(config.get("vocab_size", 49408)),
        sequence_length=int(config.get("max_position_embeddings", 77)),
        width=int(config.get("hidden_size", 512)),
        depth=int(config.get("num_hidden_layers", 12)),
        heads=int(config.get("num_attention_heads", 8)),
        intermediate_size=int(config.get("intermediate_size", 2048)),
    )


def _convert(function, network, state_dict, where):
    try:
        function(network, state_dict)
    except UserInputError as error:
        raise UserInputError(f"{where}: {error}") from None


def _packaged_merges():
    from keras_colorize.models.instruct_pix2pix.convert.preset import packaged_vocabulary

    with gzip.open(packaged_vocabulary(), "rt", encoding="utf-8") as handle:
        return handle.read().split("\n")[1:]


def _read_json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: cannot read ({first_line(error)})") from None


def _tokenizer_from_diffusers(folder, sequence_length):
    """The CLIPTokenizer of a diffusers `tokenizer/` folder (the packaged one when it matches).

    The folder holds `merges.txt` and `vocab.json` (a slow-tokenizer save) and/or
    `tokenizer.json` (a fast-tokenizer save); `special_tokens_map.json` and
    `tokenizer_config.json` name the padding token.
    """
    from keras_colorize.models.instruct_pix2pix.text import MERGES, CLIPTokenizer

    if not folder.is_dir():
        return CLIPTokenizer(sequence_length=sequence_length)
    merges_path, fast_path = folder / "merges.txt", folder / "tokenizer.json"
    vocab = None
    if merges_path.is_file():
        try:
            merges = [line for line in merges_path.read_text(encoding="utf-8").split("\n")[1:] if line.strip()]
        except (OSError, UnicodeDecodeError) as error:
            raise UserInputError(f"{merges_path}: cannot read ({first_line(error)})") from None
        source = merges_path
        if (folder / "vocab.json").is_file():
            vocab = _read_json(folder / "vocab.json")
    elif fast_path.is_file():
        model = _read_json(fast_path).get("model") or {}
        if model.get("type") != "BPE" or not isinstance(model.get("merges"), list):
            raise UserInputError(f"{fast_path}: not a BPE tokenizer (Stable Diffusion v1 uses CLIP's)")
        merges = [" ".join(m) if isinstance(m, list) else str(m) for m in model["merges"]]
        vocab = model.get("vocab")
        source = None
    else:
        raise UserInputError(f"{folder}: no merges.txt or tokenizer.json (the tokenizer's BPE merges)")
    packaged = _packaged_merges()[:MERGES]
    if merges[:MERGES] == packaged:
        tokenizer = CLIPTokenizer(sequence_length=sequence_length)
    elif source is not None:
        tokenizer = CLIPTokenizer(vocabulary=source, sequence_length=sequence_length)
    else:
        raise UserInputError(
            f"{fast_path}: the BPE merges differ from CLIP's; convert a tokenizer/ folder with merges.txt instead"
        )
    _check_tokenizer_files(folder, tokenizer, vocab)
    return tokenizer


def _check_tokenizer_files(folder, tokenizer, vocab):
    """The vocabulary and the padding token of a diffusers tokenizer agree with our tokenizer."""
    from keras_colorize.models.instruct_pix2pix.text import END_OF_TEXT, START_OF_TEXT

    if vocab is not None and (
        len(vocab) != tokenizer.vocabulary_size
        or vocab.get(START_OF_TEXT) != tokenizer.start_token
        or vocab.get(END_OF_TEXT) != tokenizer.end_token
    ):
        raise UserInputError(f"{folder}: the vocabulary does not match the one its BPE merges define (CLIP's layout)")
    settings = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (folder / name).is_file():
            settings.update(_read_json(folder / name))
    pad = settings.get("pad_token", END_OF_TEXT)
    pad = pad.get("content") if isinstance(pad, dict) else pad
    if pad != END_OF_TEXT:
        raise UserInputError(
            f"{folder}: the tokenizer pads with {pad!r}; only {END_OF_TEXT!r} padding (Stable Diffusion v1) is supported"
        )


def components_from_diffusers(directory):
    """Components from a diffusers checkpoint folder.

    Reads `unet/`, `vae/` and `text_encoder/` (config.json + safetensors); builds
    each network from its config.json and converts its weights. A U-Net with 4
    input channels (text-to-image Stable Diffusion) is widened to 8, the new
    channels zero (a `WidenedUNetWarning` says so). `tokenizer/`, when present,
    must be CLIP's (its merges select the packaged vocabulary, or are used as
    they are); without it the packaged tokenizer is used.

    Args:
        directory: str or Path. The checkpoint folder.

    Returns:
        DiffusionComponents, float32.

    Raises:
        UserInputError: a missing folder or file, an unreadable file, an
            unsupported layout, a U-Net with other than 8 or 4 input channels, or
            a missing or mismatched tensor (one line naming the file).
    """
    from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents
    from keras_colorize.models.instruct_pix2pix.convert.text_weights import text_encoder_from_diffusers
    from keras_colorize.models.instruct_pix2pix.convert.unet_weights import unet_from_diffusers
    from keras_colorize.models.instruct_pix2pix.convert.vae_weights import vae_from_diffusers
    from keras_colorize.models.instruct_pix2pix.text import CLIPTextEncoder
    from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet
    from keras_colorize.models.instruct_pix2pix.vae import VAEDecoder, VAEEncoder

    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: checkpoint folder not found")
    configs = {name: _read_config(directory / name) for name in DIFFUSERS_FOLDERS}

    unet_config_path = directory / "unet" / "config.json"
    unet_args = unet_arguments(configs["unet"], unet_config_path)
    unet_state = read_safetensors(directory / "unet")
    if unet_args["input_channels"] != INPUT_CHANNELS:
        warnings.warn(
            f"{directory / 'unet'}: a {unet_args['input_channels']}-channel (text-to-image) U-Net; its input "
            f"convolution is widened to {INPUT_CHANNELS} channels, the conditioning-image channels zero-initialised "
            "(fine-tune before use)",
            WidenedUNetWarning,
            stacklevel=2,
        )
        unet_args["input_channels"] = INPUT_CHANNELS
    unet = InstructPix2PixUNet(**unet_args)
    _convert(functools.partial(unet_from_diffusers, widen_input=True), unet, unet_state, directory / "unet")

    vae_args = vae_arguments(configs["vae"], directory / "vae" / "config.json")
    vae_state = read_safetensors(directory / "vae")
    vae_encoder = VAEEncoder(**vae_args)
    vae_decoder = VAEDecoder(**vae_args)
    _convert(lambda _, state: vae_from_diffusers(vae_encoder, vae_decoder, state), None, vae_state, directory / "vae")

    text_args = text_encoder_arguments(configs["text_encoder"], directory / "text_encoder" / "config.json")
    if text_args["width"] and unet_args["context_dim"] != text_args["width"]:
        raise UserInputError(
            f"{unet_config_path}: cross_attention_dim={unet_args['context_dim']} differs from the text encoder's "
            f"hidden_size={text_args['width']}"
        )
    text_encoder = CLIPTextEncoder(**text_args)
    _convert(text_encoder_from_diffusers, text_encoder, read_safetensors(directory / "text_encoder"),
             directory / "text_encoder")
    tokenizer = _tokenizer_from_diffusers(directory / "tokenizer", text_args["sequence_length"])
    return DiffusionComponents(
        unet=unet, vae_encoder=vae_encoder, vae_decoder=vae_decoder, text_encoder=text_encoder, tokenizer=tokenizer
    )


# ----------------------------------------------------------------------------- KerasCV


def components_from_keras_cv(directory):
    """Components from KerasCV's Stable Diffusion v1 weight files.

    The folder holds `kcv_diffusion_model.h5` (the 4-channel text-to-image U-Net,
    widened to 8 input channels with the new ones zero), `vae_encoder.h5`,
    `kcv_decoder.h5` and `kcv_encoder.h5` (the text encoder), the legacy HDF5
    files KerasCV downloads. The networks are the default (SD v1) configurations
    and the tokenizer is the packaged one (a `bpe_simple_vocab_16e6.txt.gz` in the
    folder must be the same file).

    Args:
        directory: str or Path. The folder of KerasCV weight files.

    Returns:
        DiffusionComponents, float32.

    Raises:
        UserInputError: a missing folder or file, or a file that does not match
            its network (one line naming the file).
    """
    from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents
    from keras_colorize.models.instruct_pix2pix.convert.preset import packaged_vocabulary
    from keras_colorize.models.instruct_pix2pix.convert.text_weights import text_encoder_from_keras_cv
    from keras_colorize.models.instruct_pix2pix.convert.unet_weights import unet_from_keras_cv
    from keras_colorize.models.instruct_pix2pix.convert.vae_weights import (
        vae_decoder_from_keras_cv,
        vae_encoder_from_keras_cv,
    )
    from keras_colorize.models.instruct_pix2pix.text import CLIPTextEncoder, CLIPTokenizer
    from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet
    from keras_colorize.models.instruct_pix2pix.vae import VAEDecoder, VAEEncoder

    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: checkpoint folder not found")
    paths = {name: directory / file for name, file in KERAS_CV_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise UserInputError(f"{path}: not found (a KerasCV folder holds {', '.join(KERAS_CV_FILES.values())})")
    bpe = directory / "bpe_simple_vocab_16e6.txt.gz"
    if bpe.is_file() and bpe.read_bytes() != packaged_vocabulary().read_bytes():
        raise UserInputError(f"{bpe}: differs from CLIP's BPE vocabulary (only the original one is supported)")
    networks = {
        "unet": (InstructPix2PixUNet(input_channels=INPUT_CHANNELS), unet_from_keras_cv),
        "vae_encoder": (VAEEncoder(), vae_encoder_from_keras_cv),
        "vae_decoder": (VAEDecoder(), vae_decoder_from_keras_cv),
        "text_encoder": (CLIPTextEncoder(), text_encoder_from_keras_cv),
    }
    for name, (network, convert) in networks.items():
        try:
            convert(network, paths[name])
        except UserInputError as error:
            message = str(error)
            raise UserInputError(message if str(paths[name]) in message else f"{paths[name]}: {message}") from None
    return DiffusionComponents(
        unet=networks["unet"][0],
        vae_encoder=networks["vae_encoder"][0],
        vae_decoder=networks["vae_decoder"][0],
        text_encoder=networks["text_encoder"][0],
        tokenizer=CLIPTokenizer(),
    )
