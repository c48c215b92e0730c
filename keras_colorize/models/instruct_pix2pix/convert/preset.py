"""InstructPix2Pix presets: one folder holding every network of a model, loaded explicitly.

A preset folder holds `config.json` (the format name and version, each network's class
and `get_config()`, the tokenizer's settings) and one Keras weights file per network
(`unet.weights.h5`, `vae_encoder.weights.h5`, `vae_decoder.weights.h5`,
`text_encoder.weights.h5`); a tokenizer with its own vocabulary also keeps a copy of it
(`vocabulary.txt.gz`). A preset loads on any backend, whichever wrote it.

Examples:
    >>> from keras_colorize.models.instruct_pix2pix.convert.preset import (
    ...     load_preset, random_components, save_preset)
    >>> save_preset("tiny_preset", random_components(seed=0))  # doctest: +SKIP
    >>> components = load_preset("tiny_preset")  # doctest: +SKIP
"""

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.models.instruct_pix2pix.components import NETWORKS, network_classes

PRESET_FORMAT = "keras_colorize.instruct_pix2pix"
"""The `format` entry of a preset's config.json."""

PRESET_VERSION = 1
"""The `format_version` a preset is written with; newer ones are refused."""

VOCABULARY_FILE = "vocabulary.txt.gz"
"""A tokenizer's own vocabulary inside a preset (absent for the packaged one)."""


def packaged_vocabulary():
    """The CLIP BPE merges that ship with the package.

    Returns:
        Path. `assets/bpe_simple_vocab_16e6.txt.gz` of the instruct_pix2pix package.
    """
    return Path(__file__).resolve().parent.parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"


def _same_file(a, b):
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).read_bytes() == Path(b).read_bytes()
    except OSError:
        return False


def _tokenizer_settings(tokenizer):
    """The tokenizer's entry of config.json, and its vocabulary file when not the packaged one."""
    vocabulary = getattr(tokenizer, "vocabulary", None)
    own = vocabulary is not None and not _same_file(vocabulary, packaged_vocabulary())
    settings = {
        "class_name": type(tokenizer).__name__,
        "sequence_length": int(tokenizer.sequence_length),
        "vocabulary": VOCABULARY_FILE if own else None,
    }
    return settings, (Path(vocabulary) if own else None)


def save_preset(path, components, overwrite=False, metadata=None):
    """Write a model's networks and tokenizer settings into a preset folder.

    The preset is written into a temporary sibling folder, then renamed, so `path`
    holds a whole preset or nothing (an old preset stays until the new one is complete).

    Args:
        path: str or Path. The preset folder to create.
        components: DiffusionComponents. The networks and the tokenizer.
        overwrite: bool. Replace an existing non-empty folder. Defaults to False.
        metadata: dict or None. Extra JSON-serialisable entries kept under
            "metadata" in config.json (e.g. where the weights came from).
            Defaults to None.

    Returns:
        Path. The preset folder.

    Raises:
        UserInputError: `path` exists, is not empty and `overwrite` is False, or is a file.
    """
    import keras

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserInputError(f"{path}: already exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        config = {
            "format": PRESET_FORMAT,
            "format_version": PRESET_VERSION,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "networks": {},
        }
        for name in NETWORKS:
            network = getattr(components, name)
            weights = f"{name}.weights.h5"
            network.save_weights(staging / weights)
            config["networks"][name] = {
                "class_name": type(network).__name__,
                "config": network.get_config(),
                "weights": weights,
            }
        config["tokenizer"], vocabulary = _tokenizer_settings(components.tokenizer)
        if vocabulary is not None:
            _copy_gzipped(vocabulary, staging / VOCABULARY_FILE)
        if metadata:
            config["metadata"] = dict(metadata)
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes the folder private (0700)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old."))
            os.replace(path, old / path.name)
            os.replace(staging, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _copy_gzipped(source, target):
    """Copy a vocabulary file, gzip-compressing it unless it already is."""
    data = Path(source).read_bytes()
    if data[:2] != b"\x1f\x8b":
        data = gzip.compress(data, mtime=0)
    Path(target).write_bytes(data)


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def read_preset_config(path):
    """The checked config.json of a preset folder.

    Args:
        path: str or Path. The preset folder.

    Returns:
        dict. The parsed config.json.

    Raises:
        UserInputError: the folder or its config.json is missing, unreadable, of
            another format or of a newer version.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserInputError(f"{path}: preset folder not found")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UserInputError(f"{config_path}: not found (not an InstructPix2Pix preset folder)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{config_path}: cannot read ({first_line(error)})") from None
    if not isinstance(config, dict) or config.get("format") != PRESET_FORMAT:
        raise UserInputError(f"{config_path}: not an InstructPix2Pix preset (format is not {PRESET_FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > PRESET_VERSION:
        raise UserInputError(
            f"{config_path}: format_version {version!r} is not supported (this version reads up to {PRESET_VERSION})"
        )
    for name in NETWORKS:
        entry = config.get("networks", {}).get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise UserInputError(f"{config_path}: networks.{name} is missing")
    if not isinstance(config.get("tokenizer"), dict):
        raise UserInputError(f"{config_path}: tokenizer is missing")
    return config


def load_preset(path, dtype=None):
    """Load the networks and the tokenizer of a preset folder.

    Args:
        path: str or Path. A folder written by `save_preset` (or `keras-colorize convert`).
        dtype: str or None. Keras dtype policy of every network, e.g. "float32",
            "bfloat16" or "mixed_bfloat16". Defaults to None (as saved).

    Returns:
        DiffusionComponents.

    Raises:
        UserInputError: a file is missing or corrupt, or the preset does not match
            its networks (one line naming the file).
    """
    from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents
    from keras_colorize.models.instruct_pix2pix.text import CLIPTokenizer

    path = Path(path)
    config = read_preset_config(path)
    classes = network_classes()
    networks = {}
    for name in NETWORKS:
        entry = config["networks"][name]
        cls = classes[name]
        if entry.get("class_name", cls.__name__) != cls.__name__:
            raise UserInputError(
                f"{path / 'config.json'}: networks.{name} is a {entry.get('class_name')}, expected {cls.__name__}"
            )
        arguments = dict(entry["config"])
        if dtype is not None:
            arguments["dtype"] = dtype
        try:
            network = cls.from_config(arguments)
        except (TypeError, ValueError) as error:
            raise UserInputError(f"{path / 'config.json'}: networks.{name}: {first_line(error)}") from None
        weights = path / entry.get("weights", f"{name}.weights.h5")
        if not weights.is_file():
            raise UserInputError(f"{weights}: not found (the preset is incomplete)")
        try:
            network.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many types for a bad file
            raise UserInputError(f"{weights}: cannot load weights ({first_line(error)})") from None
        networks[name] = network
    settings = config["tokenizer"]
    vocabulary = settings.get("vocabulary")
    if vocabulary is not None:
        vocabulary = path / vocabulary
        if not vocabulary.is_file():
            raise UserInputError(f"{vocabulary}: not found (the preset's tokenizer vocabulary)")
    try:
        tokenizer = CLIPTokenizer(vocabulary=vocabulary, sequence_length=int(settings.get("sequence_length", 77)))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{path / 'config.json'}: tokenizer: {first_line(error)}") from None
    return DiffusionComponents(tokenizer=tokenizer, **networks)


def random_components(seed=0, tiny=True, dtype=None):
    """Components with seeded random weights, for tests, benchmarks and recipes.

    Each network is built from its module's TINY_* configuration (or the Stable
    Diffusion v1 size with `tiny=False`) after `keras.utils.set_random_seed(seed)`,
    so the same seed gives the same weights on the same backend. The tokenizer is
    the packaged CLIP tokenizer.

    Args:
        seed: int. Seed of the weight initializers (resets Keras's global seed).
            Defaults to 0.
        tiny: bool. The tiny configurations (a few hundred thousand weights; runs
            in tests) rather than Stable Diffusion v1's. Defaults to True.
        dtype: str or None. Keras dtype policy of every network. Defaults to None.

    Returns:
        DiffusionComponents.
    """
    import keras

    from keras_colorize.models.instruct_pix2pix import text, unet, vae
    from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents

    extra = {} if dtype is None else {"dtype": dtype}
    keras.utils.set_random_seed(seed)
    pick = (lambda config: dict(config, **extra)) if tiny else (lambda config: dict(extra))
    return DiffusionComponents(
        unet=unet.InstructPix2PixUNet(**pick(unet.TINY_UNET)),
        vae_encoder=vae.VAEEncoder(**pick(vae.TINY_VAE)),
        vae_decoder=vae.VAEDecoder(**pick(vae.TINY_VAE)),
        text_encoder=text.CLIPTextEncoder(**pick(text.TINY_TEXT_ENCODER)),
        tokenizer=text.CLIPTokenizer(),
    )
