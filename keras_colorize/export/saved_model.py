"""SavedModel export (Keras's `ExportArchive`) and colorization with an exported SavedModel."""

import json
from pathlib import Path

from keras_colorize.errors import UserInputError, first_line
from keras_colorize.export.artefacts import METADATA_FILE, is_saved_model_folder, read_metadata, to_uint8_image

SERVING_SIGNATURE = "serving_default"
BATCH_SIGNATURE = "colorize_batch"


def write_saved_model(colorizer, path, info):
    """Write the SavedModel of a colorizer (TensorFlow backend only).

    Signatures: `serving_default` (input "image": uint8 (H, W, C), C = 1 or 3)
    and `colorize_batch` (input "images": uint8 (N, H, W, C)); outputs
    "colorized", sRGB uint8 (..., H, W, 3), and "class_logits" (float32) for
    generators with a classification branch. The metadata goes to
    `assets.extra/keras_colorize.json`.

    Args:
        colorizer: keras_colorize.Colorizer, built.
        path: Path. The folder to create.
        info: ExportInfo. Its metadata is stored with the model.
    """
    import keras

    from keras_colorize.export.pipeline import ColorizationPipeline

    single = ColorizationPipeline(colorizer.generator, colorizer.image_size, single_image=True, name="colorize_image")
    batch = ColorizationPipeline(colorizer.generator, colorizer.image_size, name="colorize_batch")
    archive = keras.export.ExportArchive()
    archive.track(single)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        single.call,
        input_signature=[keras.InputSpec(shape=(None, None, None), dtype="uint8", name="image")],
    )
    archive.add_endpoint(
        BATCH_SIGNATURE,
        batch.call,
        input_signature=[keras.InputSpec(shape=(None, None, None, None), dtype="uint8", name="images")],
    )
    archive.write_out(str(path), verbose=False)
    metadata = dict(info.metadata(), signatures=[SERVING_SIGNATURE, BATCH_SIGNATURE])
    (Path(path) / METADATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (Path(path) / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


class SavedModelColorizer:
    """Colorize photos with an exported SavedModel, through TensorFlow alone.

    The same `colorize(image)` contract as `keras_colorize.Colorizer`, so a
    deployment can be checked with the same code (and `keras-colorize colorize
    --saved-model DIR`). Needs TensorFlow, whatever the Keras backend.

    Args:
        path: str or Path. A SavedModel folder written by `export_colorizer` (or
            `keras-colorize export`).

    Raises:
        UserInputError: the folder is missing or has no `serving_default`
            signature taking a uint8 "image".

    Examples:
        >>> from keras_colorize.export import SavedModelColorizer
        >>> colorizer = SavedModelColorizer("exported/colorizer")  # doctest: +SKIP
        >>> rgb = colorizer.colorize(gray_photo)  # uint8 (H, W, 3)  # doctest: +SKIP
    """

    def __init__(self, path):
        path = Path(path)
        if not path.is_dir():
            raise UserInputError(f"{path}: SavedModel folder not found")
        if not is_saved_model_folder(path):
            raise UserInputError(f"{path}: not a SavedModel folder (no saved_model.pb)")
        from keras_colorize.quiet_import import import_quietly

        tf = import_quietly("tensorflow")
        try:
            self._model = tf.saved_model.load(str(path))
        except Exception as error:  # TensorFlow raises many types for a bad folder
            raise UserInputError(f"{path}: cannot load SavedModel ({first_line(error)})") from None
        signature = self._model.signatures.get(SERVING_SIGNATURE)
        inputs = signature.structured_input_signature[1] if signature is not None else {}
        if "image" not in inputs or inputs["image"].dtype != tf.uint8:
            raise UserInputError(f"{path}: has no {SERVING_SIGNATURE} signature taking a uint8 'image'")
        self._signature = signature
        self.path = path
        metadata = read_metadata(path)
        self.image_size = tuple(metadata["image_size"]) if "image_size" in metadata else None

    def colorize(self, image):
        """Colorize one photo of any size at full resolution.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray
                of shape (H, W) or (H, W, 1). Other inputs are quantised to 8
                bits first.

        Returns:
            NumPy uint8 sRGB, shape (H, W, 3).
        """
        return self._signature(image=to_uint8_image(image))["colorized"].numpy()

    def class_logits(self, image):
        """The classification branch's logits for a photo, or None without a branch.

        Args:
            image: uint8 (0-255) or float (0-1) sRGB of shape (H, W, 3), or gray of
                shape (H, W) or (H, W, 1).

        Returns:
            NumPy float32 logits of shape (classes,), or None.
        """
        outputs = self._signature(image=to_uint8_image(image))
        return outputs["class_logits"].numpy() if "class_logits" in outputs else None
