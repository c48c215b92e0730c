"""Loading what keras-colorize saves: checkpoints, presets and exported colorizers.

It knows every saved form (`.keras` checkpoints of Colorizers, trainers and
fine-tuners; colorizer and InstructPix2Pix presets; SavedModel folders and ONNX
files) and sits above the networks, trainers and exporters it loads; the recipes,
the runner, the evaluation and the command line use it.
"""

import json
import zipfile
from pathlib import Path

import keras

from keras_colorize import metrics, models  # noqa: F401  (registers the zoo and the metrics)
from keras_colorize.colorizer import Colorizer
from keras_colorize.errors import UserInputError, first_line
from keras_colorize.export.artefacts import is_saved_model_folder
from keras_colorize.export.onnx import OnnxColorizer
from keras_colorize.export.saved_model import SavedModelColorizer
from keras_colorize.presets import is_preset, is_preset_folder
from keras_colorize.serialization import import_config_modules
from keras_colorize.training.gan import AdversarialTrainer


def load_checkpoint(path):
    """Load any keras-colorize `.keras` checkpoint (a Colorizer, a trainer or a fine-tuner), compiled.

    Args:
        path: str or Path. The `.keras` file.

    Returns:
        The saved `keras.Model`, with its optimizer state.

    Raises:
        UserInputError: the file is missing, is not a complete `.keras` archive, or
            holds a class keras-colorize does not know (one line). Other errors
            (a fault in the loading code itself) propagate unchanged.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found")
    # The modules the checkpoint names register its other classes (the trainers, the
    # InstructPix2Pix fine-tuner) without importing every part of the package.
    import_config_modules(_archive_config(path))
    try:
        return keras.saving.load_model(path)
    except (zipfile.BadZipFile, OSError, EOFError) as error:  # a damaged archive or weights file
        raise UserInputError(f"{path}: cannot load checkpoint ({first_line(error)})") from None
    except TypeError as error:
        if "Could not locate" in str(error) or "could not be deserialized" in str(error):
            raise UserInputError(f"{path}: cannot load checkpoint ({first_line(error)})") from None
        raise


def _archive_config(path):
    """The config of a `.keras` zip; a one-line error unless it holds a config and weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise UserInputError(f"{path}: incomplete .keras checkpoint (no {', '.join(sorted(missing))})")
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserInputError(f"{path}: not a .keras checkpoint ({first_line(error)})") from None


def load_colorizer(path):
    """Load a Colorizer: a `.keras` checkpoint (or a trainer's generator) or a preset.

    Args:
        path: str or Path. A `.keras` file holding a `Colorizer`, a `GANTrainer` or a
            `WGANGPTrainer` (whose generator becomes a Colorizer at the trainer's
            image size); or a preset, built-in (by name) or a folder
            (`Colorizer.from_preset`).

    Returns:
        A `Colorizer`.

    Raises:
        UserInputError: the file is missing or holds neither a Colorizer nor a trainer.
    """
    if is_preset(path):
        return Colorizer.from_preset(path)
    path = Path(path)
    model = load_checkpoint(path)

    if isinstance(model, AdversarialTrainer):
        return model.colorizer()
    if not isinstance(model, Colorizer):
        raise UserInputError(f"{path}: holds a {type(model).__name__}, not a Colorizer or an adversarial trainer")
    return model


def is_ip2p_preset_folder(path):
    """Whether `path` is an InstructPix2Pix preset folder (`keras-colorize convert`)."""
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file() and not is_preset_folder(path)


def load_photo_colorizer(path, size=None, seed=0):
    """Any saved colorizer, as an object whose `colorize(image)` returns the colorized photo.

    Args:
        path: str or Path. A `.keras` checkpoint or a colorizer preset (a
            `Colorizer`, see `load_colorizer`), an exported SavedModel folder
            (`SavedModelColorizer`), an `.onnx` file (`OnnxColorizer`), or an
            InstructPix2Pix preset folder (`DiffusionColorizer`).
        size: int or None. InstructPix2Pix only: the model size in pixels.
            Defaults to None (256).
        seed: int or None. InstructPix2Pix only: the sampling seed. Defaults to 0.

    Returns:
        An object with `colorize(image) -> uint8 sRGB (H, W, 3)`.

    Raises:
        UserInputError: the path is missing or holds none of these.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxColorizer(path)
    if is_saved_model_folder(path):
        return SavedModelColorizer(path)
    if is_ip2p_preset_folder(path):
        from keras_colorize.models.instruct_pix2pix.pipeline import DiffusionColorizer

        return DiffusionColorizer(path, size=size, seed=seed)
    return load_colorizer(path)
