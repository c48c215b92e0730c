"""Object detection for instance-aware colorization: keras-hub detectors and box files.

The instance-aware colorizer colorizes the objects of a photo separately, in the boxes
an object detector finds. `PhotoDetector` runs a keras-hub `ObjectDetector` (the
RetinaNet and D-FINE presets trained on COCO, or any detector saved with
`save_to_preset`) on photos of any size and returns boxes in the photo's pixels;
`detect_box_file` writes the boxes of many photos into the COCO-style box file that
`keras_colorize.data.read_boxes`, `keras-colorize colorize --boxes` and the
`instances.boxes` recipe key read, resuming where an earlier run stopped.

Each photo is scaled to fit the detector's input size (the preset's image converter
size, else `DEFAULT_DETECTOR_SIZE`), centred on black padding, detected, and its boxes
are mapped back to the photo's pixels and clipped to it. Which detected boxes become
instances is decided later (`keras_colorize.data.select_instances`: score >= 0.99,
enough texture, at most 8), so box files keep every box from `DETECTION_SCORE` up.

References:
    Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020 (a COCO
    detector finds the instances).
"""

import dataclasses
import difflib
import json
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from keras_colorize.data.boxes import Box
from keras_colorize.errors import UserInputError, first_line
from keras_colorize.hub import import_keras_hub

DETECTION_SCORE = 0.5
"""Boxes scoring below this are left out of a box file (scores are in [0, 1])."""

DEFAULT_DETECTOR_SIZE = 800
"""Input side of a detector whose preset sets no image size (the COCO RetinaNet size)."""

SAVE_INTERVAL_SECONDS = 30.0
"""A box file being written is saved at least this often, so an interrupted run resumes."""

# COCO ids without a category in the 2017 detection set; the 80 contiguous classes of
# detectors such as D-FINE are the other ids in order.
_COCO_UNUSED_IDS = frozenset({0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91})
_DETECTOR = "keras-hub object detectors"


class DetectorError(UserInputError):
    """A detector preset or a box file cannot be used; the message says why (one line)."""


def load_detector(preset):
    """A keras-hub `ObjectDetector` from a preset handle or folder.

    Args:
        preset: str, Path or `keras_hub.models.ObjectDetector`. A keras-hub preset
            handle (e.g. "retinanet_resnet50_fpn_coco", downloaded by keras-hub on
            first use) or a folder written by `save_to_preset`; a detector is
            returned as it is.

    Returns:
        A `keras_hub.models.ObjectDetector` with its preprocessor.

    Raises:
        DetectorError: keras-hub is missing, or the preset cannot be loaded.
    """
    keras_hub = import_keras_hub(_DETECTOR)
    if isinstance(preset, keras_hub.models.ObjectDetector):
        return preset
    text = str(preset)
    path = Path(text).expanduser()
    folder_like = path.is_absolute() or text.startswith(".") or text.endswith("/") or len(path.parts) > 1
    if not path.exists() and folder_like:
        raise DetectorError(f"{text}: detector preset folder not found")
    try:
        detector = keras_hub.models.ObjectDetector.from_preset(str(path) if path.exists() else text)
    except (ValueError, KeyError, TypeError, OSError, ImportError) as error:
        raise DetectorError(f"cannot load the detector preset {text!r}: {first_line(error)}") from None
    if getattr(detector, "preprocessor", None) is None:
        raise DetectorError(f"{text}: the detector preset has no preprocessor (save it with one)")
    return detector


def detector_class_names(detector):
    """The category name of each class index of a detector.

    91 classes are COCO ids (RetinaNet's COCO presets), 80 the contiguous COCO
    classes (D-FINE's); other detectors get "class_<index>".

    Returns:
        A list of str, one per class index.
    """
    from keras_hub.utils import coco_id_to_name

    count = int(getattr(detector, "num_classes", 0) or 0)
    if count == 91:
        return [coco_id_to_name(index) for index in range(91)]
    if count == 80:
        return [coco_id_to_name(index) for index in range(92) if index not in _COCO_UNUSED_IDS]
    return [f"class_{index}" for index in range(count)]


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detected object: its box in the photo's pixels and its category.

    Args:
        box: Box. x, y, width and height in pixels of the photo; `box.score` is the
            detection score in [0, 1].
        category_id: int. The detector's class index.
        category: str. The class name (COCO names for COCO detectors).
    """

    box: Box
    category_id: int
    category: str

    def annotation(self):
        """The box-file annotation: pixel `bbox` [x, y, width, height], `score`, category."""
        box = self.box
        return {
            "bbox": [round(box.x, 2), round(box.y, 2), round(box.width, 2), round(box.height, 2)],
            "score": round(box.score, 5),
            "category_id": self.category_id,
            "category": self.category,
        }


def letterbox(image, size):
    """Scale a photo to fit `size` and centre it on black padding.

    Args:
        image: uint8 array (H, W, 3), sRGB.
        size: (height, width) of the detector's input.

    Returns:
        A tuple `(canvas, scale, top, left)`: float32 (height, width, 3) in [0, 255];
        a photo pixel (x, y) is at (x * scale + left, y * scale + top) on the canvas.
    """
    height, width = image.shape[:2]
    target_height, target_width = size
    scale = min(target_height / height, target_width / width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.BILINEAR))
    top, left = (target_height - new_height) // 2, (target_width - new_width) // 2
    canvas = np.zeros((target_height, target_width, 3), np.float32)
    canvas[top : top + new_height, left : left + new_width] = resized
    return canvas, scale, top, left


class PhotoDetector:
    """Detect objects in photos of any size with a keras-hub object detector.

    Args:
        detector: str, Path or `keras_hub.models.ObjectDetector`. A preset handle or
            folder (see `load_detector`), or a detector.
        min_score: float in [0, 1]. Boxes scoring below it are dropped; a RetinaNet
            decoder with a higher confidence threshold is given this one. Defaults to
            `DETECTION_SCORE`.
        classes: iterable of str or None. Category names to keep (case-insensitive),
            e.g. ("person", "dog"). Defaults to None (every category).
        batch_size: int. Photos per detector call. Defaults to 4.

    Attributes:
        class_names: list of str. The category of each class index.
        image_size: (height, width) of the detector's input.

    Examples:
        >>> from keras_colorize.detection import PhotoDetector
        >>> detector = PhotoDetector("retinanet_resnet50_fpn_coco")  # doctest: +SKIP
        >>> [d.category for d in detector.detect([photo])[0]]  # doctest: +SKIP
        ['person', 'dog']
    """

    def __init__(self, detector, min_score=DETECTION_SCORE, classes=None, batch_size=4):
        if not 0.0 <= float(min_score) <= 1.0:
            raise DetectorError(f"min_score must be in [0, 1], got {min_score}")
        if int(batch_size) < 1:
            raise DetectorError(f"batch_size must be >= 1, got {batch_size}")
        self.detector = load_detector(detector)
        self.min_score = float(min_score)
        self.batch_size = int(batch_size)
        self.class_names = detector_class_names(self.detector)
        self.class_ids = self._class_ids(classes)
        converter = getattr(self.detector.preprocessor, "image_converter", None)
        size = getattr(converter, "image_size", None)
        self.image_size = tuple(int(s) for s in size) if size else (DEFAULT_DETECTOR_SIZE, DEFAULT_DETECTOR_SIZE)
        self._lower_threshold()

    def _class_ids(self, classes):
        if classes is None:
            return None
        lookup = {name.lower(): index for index, name in enumerate(self.class_names)}
        wanted = set()
        for name in classes:
            key = str(name).strip().lower()
            if key not in lookup:
                hint = difflib.get_close_matches(key, list(lookup), n=1)
                did_you_mean = f"did you mean '{hint[0]}'? " if hint else ""
                raise DetectorError(f"unknown class {name!r} ({did_you_mean}the detector has {len(lookup)} classes)")
            wanted.add(lookup[key])
        return frozenset(wanted)

    def _lower_threshold(self):
        """Give a NonMaxSuppression decoder `min_score` as its threshold when it is higher."""
        import keras_hub

        decoder = getattr(self.detector, "prediction_decoder", None)
        if not isinstance(decoder, keras_hub.layers.NonMaxSuppression):
            return
        if decoder.confidence_threshold <= self.min_score:
            return
        self.detector.prediction_decoder = keras_hub.layers.NonMaxSuppression(
            bounding_box_format=self.detector.bounding_box_format,
            from_logits=decoder.from_logits,
            iou_threshold=decoder.iou_threshold,
            confidence_threshold=self.min_score,
            max_detections=decoder.max_detections,
        )

    def detect(self, images):
        """Detect the objects of photos.

        Args:
            images: list of uint8 arrays (H, W, 3), sRGB, of any sizes.

        Returns:
            A list (one per photo) of `Detection` lists, highest score first.
        """
        results = []
        for start in range(0, len(images), self.batch_size):
            results.extend(self._detect_batch(images[start : start + self.batch_size]))
        return results

    def boxes(self, image):
        """The detected boxes of one photo (uint8 (H, W, 3)), a list of `Box`."""
        return [detection.box for detection in self.detect([image])[0]]

    def _detect_batch(self, images):
        import keras

        placed = [letterbox(image, self.image_size) for image in images]
        batch = np.zeros((self.batch_size, *self.image_size, 3), np.float32)  # one shape: one compiled call
        batch[: len(placed)] = [canvas for canvas, _, _, _ in placed]
        outputs = self.detector.predict(batch, verbose=0)
        height, width = self.image_size
        corners = keras.ops.convert_to_numpy(
            keras.utils.bounding_boxes.convert_format(
                np.asarray(outputs["boxes"], np.float32),
                source=self.detector.bounding_box_format,
                target="xyxy",
                height=height,
                width=width,
            )
        )
        results = []
        for index, (image, (_, scale, top, left)) in enumerate(zip(images, placed)):
            count = int(outputs["num_detections"][index])
            results.append(
                self._photo_detections(
                    image.shape[:2],
                    corners[index, :count],
                    np.asarray(outputs["confidence"][index, :count], np.float64),
                    np.asarray(outputs["labels"][index, :count]),
                    scale,
                    top,
                    left,
                )
            )
        return results

    def _photo_detections(self, shape, corners, scores, labels, scale, top, left):
        height, width = shape
        detections = []
        for (x0, y0, x1, y1), score, label in zip(corners, scores, labels):
            label = int(label)
            if score < self.min_score or label < 0 or (self.class_ids is not None and label not in self.class_ids):
                continue
            x0, x1 = np.clip([(x0 - left) / scale, (x1 - left) / scale], 0, width)
            y0, y1 = np.clip([(y0 - top) / scale, (y1 - top) / scale], 0, height)
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue  # outside the photo
            name = self.class_names[label] if label < len(self.class_names) else f"class_{label}"
            box = Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0), score=float(score))
            detections.append(Detection(box, label, name))
        detections.sort(key=lambda detection: -detection.box.score)
        return detections


# ----------------------------------------------------------------------------- box files


def _read_box_file(path):
    """The images and annotations of an existing box file, checked to be one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DetectorError(
            f"{path}: exists and is not a readable box file ({first_line(error)}); pass --overwrite to replace it"
        ) from None
    if not (isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list)):
        raise DetectorError(f"{path}: exists and is not a COCO-style box file; pass --overwrite to replace it")
    return data


def completed_box_file(output, photos, preset, min_score, classes=None):
    """The counts of `detect_box_file` when `output` already holds every photo, detected
    with these settings (nothing to detect, so no detector need be loaded); else None.

    Args:
        output: str or Path. The box file.
        photos: list of `(path, key)`, as `detect_box_file` takes.
        preset: str. The detector preset.
        min_score: float. The score threshold.
        classes: iterable of str or None. The category names kept. Defaults to None.

    Returns:
        A dict of counts (`photos` 0, `resumed`, `skipped` 0, `boxes` 0) or None.
    """
    output = Path(output)
    try:
        data = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("info"), dict)):
        return None

    def names(values):
        return None if values is None else sorted(str(value).lower() for value in values)

    info = data["info"]
    same = (
        info.get("detector") == str(preset)
        and info.get("min_score") == float(min_score)
        and names(info.get("classes")) == names(classes)
    )
    done = {str(image.get("file_name")) for image in data["images"] if isinstance(image, dict)}
    if not same or any(key not in done for _, key in photos):
        return None
    return {"photos": 0, "resumed": len(photos), "skipped": 0, "boxes": 0}


def _box_file_settings(detector, preset):
    return {
        "detector": str(preset),
        "min_score": detector.min_score,
        "classes": None if detector.class_ids is None else sorted(detector.class_names[i] for i in detector.class_ids),
        "image_size": list(detector.image_size),
    }


def detect_box_file(
    detector, photos, output, preset=None, overwrite=False, progress=True, restart_hint="pass --overwrite to detect again"
):
    """Detect the objects of photos into a COCO-style box file, resuming an earlier run.

    Photos already in `output` (by file name key) are skipped, so an interrupted run
    continues where it stopped; the file is replaced atomically at least every
    `SAVE_INTERVAL_SECONDS` and at the end, and always lists every photo done
    (photos without boxes too), also when the run is interrupted. Unreadable photos are
    skipped and counted.

    Args:
        detector: PhotoDetector. The detector and its settings.
        photos: list of `(path, key)`: each photo file and the `file_name` it is
            recorded under (its path relative to the input folder, "/"-separated).
        output: str or Path. The box file (JSON).
        preset: str or None. The detector preset, recorded in the file and compared
            on resume. Defaults to None.
        overwrite: bool. Start a new file instead of resuming an existing one.
            Defaults to False.
        progress: bool. Show a progress bar. Defaults to True.
        restart_hint: str. How to start again, in the message of a file written with
            other settings. Defaults to the `detect` command's `--overwrite`.

    Returns:
        A dict of counts: `photos` (detected now), `resumed` (already in the file),
        `skipped` (unreadable), `boxes` (written now).

    Raises:
        DetectorError: `output` exists but is not a box file, or was written with
            other detector settings (without `overwrite`).
    """
    import keras

    from keras_colorize.atomic_files import atomic_file
    from keras_colorize.data import SkippedImageWarning, UnreadableImageError, load_image

    output = Path(output)
    settings = _box_file_settings(detector, preset)
    data = {"info": {"description": "keras-colorize detect", **settings}, "images": [], "annotations": []}
    if output.exists() and not overwrite:
        if output.is_dir():
            raise DetectorError(f"{output}: is a folder; the box file must be a file")
        data = _read_box_file(output)
        recorded = data.get("info") or {}
        for key in ("detector", "min_score", "classes"):
            if key in recorded and recorded[key] != settings[key]:
                raise DetectorError(f"{output}: written with {key} {recorded[key]!r}, not {settings[key]!r}; {restart_hint}")
    data["categories"] = [{"id": index, "name": name} for index, name in enumerate(detector.class_names)]
    done = {str(image.get("file_name")) for image in data["images"] if isinstance(image, dict)}
    next_image = 1 + max((int(i["id"]) for i in data["images"] if isinstance(i.get("id"), int)), default=0)
    next_box = 1 + max((int(a["id"]) for a in data["annotations"] if isinstance(a.get("id"), int)), default=0)
    todo = [(path, key) for path, key in photos if key not in done]
    counts = {"photos": 0, "resumed": len(photos) - len(todo), "skipped": 0, "boxes": 0}

    def save():
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(output) as tmp:
            tmp.write_text(json.dumps(data), encoding="utf-8")

    bar = keras.utils.Progbar(len(todo), unit_name="photo") if progress and todo else None
    last_save = time.monotonic()
    try:
        for start in range(0, len(todo), detector.batch_size):
            chunk, images = [], []
            for path, key in todo[start : start + detector.batch_size]:
                try:
                    images.append(load_image(path))
                except UnreadableImageError as error:
                    warnings.warn(f"skipped {error}", SkippedImageWarning, stacklevel=2)
                    counts["skipped"] += 1
                    continue
                chunk.append(key)
            for key, image, detections in zip(chunk, images, detector.detect(images) if images else []):
                height, width = image.shape[:2]
                data["images"].append({"id": next_image, "file_name": key, "width": width, "height": height})
                for detection in detections:
                    data["annotations"].append({"id": next_box, "image_id": next_image, **detection.annotation()})
                    next_box += 1
                next_image += 1
                counts["photos"] += 1
                counts["boxes"] += len(detections)
            if bar is not None:
                bar.update(min(start + detector.batch_size, len(todo)))
            if time.monotonic() - last_save >= SAVE_INTERVAL_SECONDS:
                save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        save()  # keep the photos done; a new run resumes after them
        raise
    if todo or not output.exists():
        save()
    return counts


def photo_keys(inputs):
    """The photos of files and folders, each with its box-file key.

    Args:
        inputs: sequence of str or Path. Photo files and folders (searched recursively).

    Returns:
        A list of `(path, key)`: a folder's photos keyed by their path relative to it
        ("/"-separated), a file by its name.

    Raises:
        UserInputError: an input is missing or a folder holds no photos.
    """
    from keras_colorize.data import list_images

    pairs = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            pairs.extend((file, file.relative_to(path).as_posix()) for file in list_images(path))
        elif path.is_file():
            pairs.append((path, path.name))
        else:
            raise UserInputError(f"{path}: no such file or folder")
    keys = {}
    for file, key in pairs:
        if key in keys and keys[key] != file:
            raise UserInputError(f"{keys[key]} and {file} would both be recorded as {key!r}; detect them separately")
        keys[key] = file
    return pairs
