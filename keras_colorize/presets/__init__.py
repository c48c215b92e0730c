"""Colorizer presets: keras-hub-style folders, and the built-in ones that ship in this package.

A preset folder holds

- `config.json`: the Colorizer (its generator included) as Keras serializes it;
- `model.weights.h5`: the generator's variables, one dataset per variable path
  (`variable.path`, e.g. "decoder_P3_conv1/kernel"), stored in `weights_dtype`
  (float16 for the built-in presets); variables that equal the pretrained encoder
  weights named in the metadata are left out and read from those instead;
- `metadata.json`: `format` ("keras-colorize-preset"), `format_version`, the
  versions that wrote it, `parameter_count`, `weights_dtype`, `encoder_weights`
  (the pretrained encoder weights the missing variables come from, e.g.
  "imagenet"; null when every variable is stored) and what the model was trained
  on, with which recipe, and its measured figures.

`Colorizer.from_preset` and `Colorizer.save_to_preset` read and write them; the
command line takes a preset wherever it takes a checkpoint.
"""

import json
from pathlib import Path

import numpy as np

from keras_colorize.errors import UserInputError

BUILTIN_PRESETS_DIR = Path(__file__).resolve().parent
"""The folder of the built-in presets (package data)."""

DEFAULT_PRESET = "backbone_unet_vgg16"
"""The built-in colorizer used when no model is named."""

PRESET_FORMAT = "keras-colorize-preset"
PRESET_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
PRESET_FILES = (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)


def list_presets():
    """Names of the built-in presets, sorted.

    Examples:
        >>> from keras_colorize.presets import DEFAULT_PRESET, list_presets
        >>> DEFAULT_PRESET in list_presets()
        True
    """
    return sorted(p.name for p in BUILTIN_PRESETS_DIR.iterdir() if (p / METADATA_FILE).is_file())


def is_preset_folder(path):
    """Whether `path` is a folder holding a colorizer preset's metadata.json."""
    path = Path(path)
    if not (path / METADATA_FILE).is_file():
        return False
    try:
        return json.loads((path / METADATA_FILE).read_text(encoding="utf-8")).get("format") == PRESET_FORMAT
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False


def is_preset(handle):
    """Whether `handle` names a built-in preset or a colorizer preset folder."""
    return str(handle) in list_presets() or is_preset_folder(handle)


def resolve_preset(handle):
    """The folder of a preset: a built-in name or a preset folder.

    Args:
        handle: str or Path. A name from `list_presets()` or a folder path (a
            folder of that name in the working directory wins over a built-in).

    Returns:
        pathlib.Path: the folder.

    Raises:
        UserInputError: neither a built-in preset nor a preset folder.
    """
    path = Path(handle)
    if is_preset_folder(path):
        return path
    if str(handle) in list_presets():
        return BUILTIN_PRESETS_DIR / str(handle)
    raise UserInputError(
        f"{handle}: not a preset (built-in presets: {', '.join(list_presets())}; a preset folder holds "
        f"{', '.join(PRESET_FILES)})"
    )


def read_preset(folder):
    """The (config, metadata) dicts of a preset folder, checked.

    Raises:
        UserInputError: a file is missing or unreadable, or the format is newer.
    """
    folder = Path(folder)
    parsed = {}
    for name in (CONFIG_FILE, METADATA_FILE):
        path = folder / name
        try:
            parsed[name] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserInputError(f"{path}: not found (a preset folder holds {', '.join(PRESET_FILES)})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserInputError(f"{path}: cannot read ({str(error).splitlines()[0]})") from None
    metadata = parsed[METADATA_FILE]
    version = metadata.get("format_version")
    if metadata.get("format") != PRESET_FORMAT or not isinstance(version, int) or version > PRESET_VERSION:
        raise UserInputError(
            f"{folder / METADATA_FILE}: not a keras-colorize preset of format version <= {PRESET_VERSION}"
        )
    if not (folder / WEIGHTS_FILE).is_file():
        raise UserInputError(f"{folder / WEIGHTS_FILE}: not found")
    return parsed[CONFIG_FILE], metadata


def write_weights(path, arrays, dtype):
    """Write variables as HDF5 datasets named by variable path, cast to `dtype`.

    Args:
        path: str or Path. The `.h5` file.
        arrays: dict str -> array. Variable path -> value.
        dtype: str. Storage dtype ("float16" or "float32").
    """
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=np.asarray(value).astype(dtype))


def read_weights(path):
    """The arrays of a preset weight file: dict variable path -> NumPy array."""
    import h5py

    arrays = {}
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(
                lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
    except OSError as error:
        raise UserInputError(f"{path}: cannot read ({str(error).splitlines()[0]})") from None
    return arrays
