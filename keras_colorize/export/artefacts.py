"""What an exported artefact holds besides its graph, and the photos it takes.

The SavedModel's and the ONNX file's keras-colorize metadata (where it is kept, how it
is read back) and the uint8 image an exported model takes. Imported by the writers
and the clients of both formats.
"""

import json
from pathlib import Path

import numpy as np

from keras_colorize.errors import UserInputError

# Where a SavedModel keeps its keras-colorize metadata (TF Serving ignores assets.extra/).
METADATA_FILE = Path("assets.extra") / "keras_colorize.json"
ONNX_OPSET = 17
# Keys of the ONNX model's metadata_props.
ONNX_METADATA_KEY = "keras_colorize"


def is_saved_model_folder(path):
    """Whether `path` is a SavedModel folder (it holds `saved_model.pb`)."""
    return (Path(path) / "saved_model.pb").is_file()


def read_metadata(path):
    """The keras-colorize metadata of an exported SavedModel folder or ONNX file, or {}.

    Args:
        path: str or Path. A SavedModel folder or an `.onnx` file.

    Returns:
        dict: `producer`, `format`, `image_size` and `num_classes` as written by
        `export_colorizer` (a SavedModel also lists its `signatures`); {} when
        there is none.
    """
    path = Path(path)
    if path.is_dir():
        file = path / METADATA_FILE
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            return json.loads(prop.value)
    return {}


def to_uint8_image(image):
    """A photo as the uint8 (H, W, C) array an exported model takes.

    Args:
        image: uint8 (0-255), uint16 (0-65535) or float (0-1) sRGB of shape
            (H, W, 3) or (H, W, 4) (alpha ignored), or gray of shape (H, W) or
            (H, W, 1).

    Returns:
        NumPy uint8 in [0, 255], shape (H, W, 1) or (H, W, 3).

    Raises:
        UserInputError: the shape is not an image's.
    """
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise UserInputError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return np.rint(array.astype("float64") / 257.0).astype("uint8")
    return np.rint(np.clip(array.astype("float64"), 0.0, 1.0) * 255.0).astype("uint8")
