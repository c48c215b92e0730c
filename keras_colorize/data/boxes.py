"""Instance boxes: reading detector or ground-truth boxes, and choosing the instances to colorize.

Nothing here imports Keras, so the command line can check a boxes file before
it chooses a backend.

A box source is one of:

- a COCO-style JSON file: ``{"images": [{"id", "file_name", ...}],
  "annotations": [{"image_id", "bbox": [x, y, w, h], "score": s}, ...]}``
  (``score`` is optional and 1.0 when absent, as in ground-truth annotations);
- a JSON list of detections that carry the file name:
  ``[{"file_name", "bbox": [x, y, w, h], "score": s}, ...]``;
- a folder with one file per image, named after the image's stem (sub-folders
  mirror the image folder): ``<stem>.json`` holding a list of
  ``{"bbox": [x, y, w, h], "score": s}`` or ``{"boxes": [[x, y, w, h], ...],
  "scores": [...]}``, or ``<stem>.npz`` with arrays ``bbox`` (K, 4) of corners
  (x_min, y_min, x_max, y_max) and ``scores`` (K,), the layout the original
  instance-aware colorization code saves its detector output in.

Boxes are in pixels of the original image (after its EXIF orientation), x to
the right and y down from the top-left corner of the top-left pixel.

References:
    Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020.
"""

import dataclasses
import json
import math
import os
import pathlib
import zipfile

import numpy as np
from PIL import Image

from keras_colorize.errors import UserInputError

DEFAULT_MIN_SCORE = 0.99
"""Detection score below which `select_instances` drops a box."""

DEFAULT_MIN_VARIANCE = 2000.0
"""Variance of a box's gray values (0-255 scale, ITU-R 601 luma) below which it is dropped."""

DEFAULT_MAX_INSTANCES = 8
"""Most instances `select_instances` keeps per image (the highest scores)."""

# Reasons of `select_instances`, in the order summaries list them ("clipped" boxes are kept).
SELECT_REASONS = ("malformed", "outside", "low score", "low variance", "over max_instances")

# Reasons of entries skipped while reading, in the order summaries list them.
_READ_REASONS = ("malformed", "unknown image_id")


class InstanceBoxesError(UserInputError):
    """A boxes file or folder cannot be used; the message names it and says why (one line)."""


@dataclasses.dataclass(frozen=True)
class Box:
    """One instance box in pixels of the original image.

    Args:
        x: float. Left edge, pixels from the image's left side.
        y: float. Top edge, pixels from the image's top side.
        width: float. Width in pixels.
        height: float. Height in pixels.
        score: float. Detection score (1.0 for ground truth). Defaults to 1.0.

    Examples:
        >>> from keras_colorize.data.boxes import Box
        >>> Box(10, 20, 30, 40, score=0.995).corners
        (10, 20, 40, 60)
    """

    x: float
    y: float
    width: float
    height: float
    score: float = 1.0

    @property
    def corners(self):
        """tuple: (x_min, y_min, x_max, y_max) in pixels."""
        return (self.x, self.y, self.x + self.width, self.y + self.height)


def _is_number(value):
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    return numeric and not isinstance(value, (bool, np.bool_))


def _make_box(bbox, score):
    """A Box from [x, y, w, h] and a score, or None when malformed."""
    if score is None:
        score = 1.0
    if not _is_number(score) or not math.isfinite(float(score)):
        return None
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None
    if not all(_is_number(v) and math.isfinite(float(v)) for v in bbox):
        return None
    x, y, width, height = (float(v) for v in bbox)
    if width <= 0 or height <= 0:
        return None
    return Box(x, y, width, height, float(score))


def _normalize_key(name):
    key = str(name).replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


class InstanceBoxes:
    """The boxes of a box source, looked up by image file.

    Build one with `read_boxes`. Keys are the image names the source uses:
    file names or relative paths (JSON files), or relative paths without the
    extension (a folder of per-image files).

    Args:
        entries: dict[str, list[Box]]. Boxes per key.
        name: str. The source's name in messages (its file or folder name).
        skipped: dict[str, int] or None. Entries dropped while reading, by reason
            ("malformed", "unknown image_id"). Defaults to None (none).
        by_stem: bool. Keys leave out the file extension (per-image files).
            Defaults to False.

    Attributes:
        name: str. The source named in messages.
        skipped: dict[str, int]. Entries dropped while reading, by reason.
        summary: str. One line, e.g. "boxes.json: 412 boxes for 120 images,
            3 malformed entries skipped".
        num_boxes: int. Boxes over all images.

    Examples:
        >>> from keras_colorize.data.boxes import read_boxes
        >>> boxes = read_boxes("detections.json")  # doctest: +SKIP
        >>> boxes.for_image("photos/cat.jpg", root="photos")  # doctest: +SKIP
        [Box(x=12.0, y=30.5, width=88.0, height=64.0, score=0.998)]
    """

    def __init__(self, entries, name="boxes", skipped=None, by_stem=False):
        self._entries = {_normalize_key(k): list(v) for k, v in entries.items()}
        self.name = str(name)
        self.by_stem = bool(by_stem)
        counts = dict(skipped or {})
        self.skipped = {r: int(counts[r]) for r in _READ_REASONS if counts.get(r)}
        self.skipped.update({r: int(n) for r, n in counts.items() if n and r not in self.skipped})
        self._by_name = {}
        for key in self._entries:
            self._by_name.setdefault(key.rsplit("/", 1)[-1], []).append(key)
        self.num_boxes = sum(len(v) for v in self._entries.values())
        self.summary = f"{self.name}: {self.num_boxes} boxes for {len(self._entries)} images"
        total_skipped = sum(self.skipped.values())
        if total_skipped:
            if list(self.skipped) == ["malformed"]:
                self.summary += f", {total_skipped} malformed entries skipped"
            else:
                details = ", ".join(f"{n} {r}" for r, n in self.skipped.items())
                self.summary += f", {total_skipped} entries skipped ({details})"

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, key):
        return _normalize_key(key) in self._entries

    def __repr__(self):
        return f"InstanceBoxes({self.summary!r})"

    def _key(self, path):
        key = pathlib.PurePath(path).as_posix()
        if self.by_stem:
            suffix = pathlib.PurePosixPath(key).suffix
            key = key[: len(key) - len(suffix)] if suffix else key
        return _normalize_key(key)

    def for_image(self, path, root=None):
        """The boxes of one image file.

        The image is matched by its path relative to `root` (with "/"
        separators) first, then by its path as given, then by its file name
        (its stem for a folder of per-image files).

        Args:
            path: str or os.PathLike. The image file.
            root: str, os.PathLike or None. The folder the keys are relative to.
                Defaults to None.

        Returns:
            list[Box]: the image's boxes, in the source's order; [] when the
            source has no entry for it.

        Raises:
            InstanceBoxesError: if only the file name matches, and it appears
                under two different paths in the source.
        """
        path = pathlib.PurePath(path)
        if root is not None:
            try:
                relative = path.relative_to(root)
            except ValueError:
                relative = None
            if relative is not None:
                key = self._key(relative)
                if key in self._entries:
                    return list(self._entries[key])
        key = self._key(path)
        if key in self._entries:
            return list(self._entries[key])
        matches = self._by_name.get(key.rsplit("/", 1)[-1], [])
        if len(matches) > 1:
            raise InstanceBoxesError(
                f"{self.name}: {path.name} is ambiguous, it appears as {matches[0]!r} and {matches[1]!r}; "
                "give the images' root folder so paths can be matched"
            )
        return list(self._entries[matches[0]]) if matches else []


# ----------------------------------------------------------------- reading


def _load_json(path):
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InstanceBoxesError(f"{path}: invalid JSON (not UTF-8 text: {error.reason})") from None
    except OSError as error:
        raise InstanceBoxesError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InstanceBoxesError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno} ({error.msg})"
        ) from None


def _read_coco(data, path):
    images, annotations = data.get("images"), data.get("annotations", [])
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise InstanceBoxesError(
            f"{path}: a COCO-style file needs 'images' and 'annotations' lists"
        )
    names = {}
    entries = {}
    skipped = {}
    for image in images:
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str):
            skipped["malformed"] = skipped.get("malformed", 0) + 1
            continue
        image_id = image.get("id")
        key = _normalize_key(image["file_name"])
        if isinstance(image_id, (str, int)) and not isinstance(image_id, bool):
            names[image_id] = key
        entries.setdefault(key, [])
    for annotation in annotations:
        if not isinstance(annotation, dict):
            skipped["malformed"] = skipped.get("malformed", 0) + 1
            continue
        image_id = annotation.get("image_id")
        hashable = isinstance(image_id, (str, int)) and not isinstance(image_id, bool)
        if not hashable or image_id not in names:
            skipped["unknown image_id"] = skipped.get("unknown image_id", 0) + 1
            continue
        box = _make_box(annotation.get("bbox"), annotation.get("score"))
        if box is None:
            skipped["malformed"] = skipped.get("malformed", 0) + 1
            continue
        entries[names[image_id]].append(box)
    return entries, skipped


def _read_detection_list(data, path):
    if data and not any(isinstance(d, dict) and "file_name" in d for d in data):
        hint = ""
        if any(isinstance(d, dict) and "image_id" in d for d in data):
            hint = " (entries with 'image_id' need a COCO-style file with an 'images' list)"
        raise InstanceBoxesError(
            f"{path}: a list of detections needs a 'file_name' in each entry{hint}"
        )
    entries = {}
    skipped = {}
    for item in data:
        box = None
        if isinstance(item, dict) and isinstance(item.get("file_name"), str) and item["file_name"]:
            box = _make_box(item.get("bbox"), item.get("score"))
        if box is None:
            skipped["malformed"] = skipped.get("malformed", 0) + 1
            continue
        entries.setdefault(_normalize_key(item["file_name"]), []).append(box)
    return entries, skipped


def _read_image_json(path):
    """The boxes of one per-image JSON file, and the number of malformed entries."""
    data = _load_json(path)
    boxes, malformed = [], 0
    if isinstance(data, list):
        for item in data:
            box = _make_box(item.get("bbox"), item.get("score")) if isinstance(item, dict) else None
            if box is None:
                malformed += 1
            else:
                boxes.append(box)
        return boxes, malformed
    if isinstance(data, dict) and isinstance(data.get("boxes"), list):
        scores = data.get("scores")
        if scores is None:
            scores = [None] * len(data["boxes"])
        if not isinstance(scores, list) or len(scores) != len(data["boxes"]):
            raise InstanceBoxesError(
                f"{path}: 'scores' must be a list as long as 'boxes' ({len(data['boxes'])})"
            )
        for bbox, score in zip(data["boxes"], scores):
            box = _make_box(bbox, score)
            if box is None:
                malformed += 1
            else:
                boxes.append(box)
        return boxes, malformed
    raise InstanceBoxesError(
        f"{path}: not a per-image boxes file (expected a list of {{'bbox', 'score'}} "
        "or {'boxes': [...], 'scores': [...]})"
    )


def _read_image_npz(path):
    """The boxes of one per-image .npz file (corners), and the number of malformed rows."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "bbox" not in archive.files:
                raise InstanceBoxesError(
                    f"{path}: no 'bbox' array (found {', '.join(archive.files) or 'none'})"
                )
            corners = np.asarray(archive["bbox"])
            scores = np.asarray(archive["scores"]) if "scores" in archive.files else None
    except InstanceBoxesError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InstanceBoxesError(f"{path}: cannot read as .npz ({reason})") from None
    if corners.size == 0:
        return [], 0
    if corners.ndim != 2 or corners.shape[1] != 4 or not np.issubdtype(corners.dtype, np.number):
        raise InstanceBoxesError(f"{path}: 'bbox' must be a numeric (K, 4) array, got shape {corners.shape}")
    if scores is None:
        scores = np.ones(len(corners))
    scores = scores.reshape(-1)
    if len(scores) != len(corners) or not np.issubdtype(scores.dtype, np.number):
        raise InstanceBoxesError(
            f"{path}: 'scores' must hold one number per box ({len(corners)}), got shape {scores.shape}"
        )
    boxes, malformed = [], 0
    for (x0, y0, x1, y1), score in zip(corners.astype(np.float64), scores.astype(np.float64)):
        box = _make_box([x0, y0, x1 - x0, y1 - y0], score)
        if box is None:
            malformed += 1
        else:
            boxes.append(box)
    return boxes, malformed


def _read_folder(folder):
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in (".json", ".npz")
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise InstanceBoxesError(f"{folder}: no per-image boxes files (.json or .npz) found")
    entries, malformed = {}, 0
    for path in files:
        reader = _read_image_npz if path.suffix.lower() == ".npz" else _read_image_json
        boxes, bad = reader(path)
        malformed += bad
        key = path.relative_to(folder).with_suffix("").as_posix()
        entries.setdefault(key, []).extend(boxes)
    return entries, {"malformed": malformed}


def read_boxes(source):
    """Read the instance boxes of a set of images.

    Malformed entries (a bbox that is not four finite numbers, a non-positive
    width or height, a score that is not a number, an annotation of an unknown
    image_id) are skipped and counted in `InstanceBoxes.skipped`.

    Args:
        source: str, os.PathLike or InstanceBoxes. A COCO-style JSON file, a
            JSON list of detections with file names, or a folder of per-image
            ``.json``/``.npz`` files (see the module docstring). An
            `InstanceBoxes` is returned as it is.

    Returns:
        InstanceBoxes: the boxes, looked up with `InstanceBoxes.for_image`.

    Raises:
        InstanceBoxesError: (a `UserInputError`) if the file or folder is
            missing, is not valid JSON, has none of the layouts, or the folder
            holds no ``.json``/``.npz`` file.

    Examples:
        >>> from keras_colorize.data.boxes import read_boxes
        >>> boxes = read_boxes("instances_train.json")  # doctest: +SKIP
        >>> print(boxes.summary)  # doctest: +SKIP
        instances_train.json: 412 boxes for 120 images, 3 malformed entries skipped
    """
    if isinstance(source, InstanceBoxes):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise InstanceBoxesError(
            f"boxes must be a file or folder path, got {type(source).__name__}"
        )
    path = pathlib.Path(source)
    if path.is_dir():
        entries, skipped = _read_folder(path)
        return InstanceBoxes(entries, name=path.name or str(path), skipped=skipped, by_stem=True)
    if not path.exists():
        raise InstanceBoxesError(f"{path}: boxes file or folder not found")
    if path.suffix.lower() == ".npz":
        boxes, malformed = _read_image_npz(path)
        skipped = {"malformed": malformed}
        return InstanceBoxes({path.stem: boxes}, name=path.name, skipped=skipped, by_stem=True)
    data = _load_json(path)
    if isinstance(data, dict) and "images" in data:
        entries, skipped = _read_coco(data, path)
    elif isinstance(data, list):
        entries, skipped = _read_detection_list(data, path)
    else:
        raise InstanceBoxesError(
            f"{path}: not a boxes file (expected a COCO-style object with 'images' and "
            "'annotations', or a list of detections with 'file_name', 'bbox' and 'score')"
        )
    return InstanceBoxes(entries, name=path.name, skipped=skipped)


# --------------------------------------------------------------- selection


def scale_boxes(boxes, scale_x, scale_y=None):
    """Scale boxes to a resized image.

    Args:
        boxes: iterable of Box. Boxes in pixels of the original image.
        scale_x: float. New width over original width.
        scale_y: float or None. New height over original height. Defaults to
            None (`scale_x`).

    Returns:
        list[Box]: the boxes in pixels of the resized image, scores unchanged.
    """
    scale_y = scale_x if scale_y is None else scale_y
    return [
        Box(b.x * scale_x, b.y * scale_y, b.width * scale_x, b.height * scale_y, b.score)
        for b in boxes
    ]


def _check_selection_args(min_score, min_variance, max_instances):
    if not _is_number(min_score) or not 0.0 <= float(min_score) <= 1.0:
        raise UserInputError(f"min_score must be a number in [0, 1], got {min_score!r}")
    if not _is_number(min_variance) or not 0.0 <= float(min_variance) < math.inf:
        raise UserInputError(f"min_variance must be a number >= 0, got {min_variance!r}")
    integer = isinstance(max_instances, (int, np.integer)) and not isinstance(max_instances, (bool, np.bool_))
    if not integer or max_instances < 0:
        raise UserInputError(f"max_instances must be an integer >= 0, got {max_instances!r}")


def _gray(image):
    """ITU-R 601 luma on the 0-255 scale, as Pillow's "L" conversion."""
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))


def _as_box(item):
    if isinstance(item, Box):
        return item
    try:
        return Box(*(float(v) for v in item))
    except (TypeError, ValueError):
        return None


def select_instances(
    boxes,
    image,
    min_score=DEFAULT_MIN_SCORE,
    min_variance=DEFAULT_MIN_VARIANCE,
    max_instances=DEFAULT_MAX_INSTANCES,
):
    """Choose the instances of an image to colorize separately.

    In order: boxes with non-finite values or a non-positive size are dropped
    ("malformed"); boxes entirely outside the image ("outside"); boxes scored
    below `min_score` ("low score"). The rest are clipped to the image
    (counted under "clipped", but kept); a clipped box under one pixel wide or
    high is dropped ("outside"), and so is a box whose gray values (ITU-R 601
    luma as Pillow's "L" conversion, 0-255 scale; over the whole pixels it
    touches) have a variance below `min_variance` ("low variance"): flat
    regions carry no object to colorize. The kept boxes are sorted by score,
    highest first (ties keep their order), and the first `max_instances` are
    kept ("over max_instances" for the others).

    Args:
        boxes: iterable of Box. Boxes in pixels of `image`.
        image: np.ndarray. sRGB in [0, 255], uint8, shape (H, W, 3), or gray
            uint8 (H, W), at the resolution the boxes refer to.
        min_score: float. Lowest score kept, in [0, 1]. Defaults to
            `DEFAULT_MIN_SCORE` (0.99).
        min_variance: float. Lowest gray variance kept, >= 0. Defaults to
            `DEFAULT_MIN_VARIANCE` (2000.0).
        max_instances: int. Most boxes kept, >= 0. Defaults to
            `DEFAULT_MAX_INSTANCES` (8).

    Returns:
        tuple[np.ndarray, dict[str, int]]: the kept boxes as float32 corners
        (x_min, y_min, x_max, y_max) clipped to the image, shape (K, 4), K <=
        max_instances; and the number of boxes per reason ("malformed",
        "outside", "low score", "low variance", "over max_instances",
        "clipped"), for the reasons that occurred.

    Raises:
        UserInputError: for an argument out of range or an image that is not
            uint8 (H, W, 3) or (H, W).

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.data.boxes import Box, select_instances
        >>> image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        >>> corners, counts = select_instances([Box(-8, 8, 24, 16, 0.995)], image)
        >>> corners.tolist(), counts
        ([[0.0, 8.0, 16.0, 24.0]], {'clipped': 1})
    """
    _check_selection_args(min_score, min_variance, max_instances)
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise UserInputError(
            "select_instances expects a uint8 image of shape (H, W, 3) or (H, W), "
            f"got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    counts = {}

    def drop(reason):
        counts[reason] = counts.get(reason, 0) + 1

    candidates = []
    gray = None
    for item in boxes:
        box = _as_box(item)
        if box is None or not all(
            math.isfinite(v) for v in (box.x, box.y, box.width, box.height, box.score)
        ) or box.width <= 0 or box.height <= 0:
            drop("malformed")
            continue
        x0, y0, x1, y1 = box.corners
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            drop("outside")
            continue
        if box.score < min_score:
            drop("low score")
            continue
        clipped = (max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height)))
        if clipped != (x0, y0, x1, y1):
            drop("clipped")
        cx0, cy0, cx1, cy1 = clipped
        if cx1 - cx0 < 1.0 or cy1 - cy0 < 1.0:
            drop("outside")
            continue
        if min_variance > 0:
            if gray is None:
                gray = _gray(image)
            region = gray[math.floor(cy0) : math.ceil(cy1), math.floor(cx0) : math.ceil(cx1)]
            if float(np.var(region, dtype=np.float64)) < min_variance:
                drop("low variance")
                continue
        candidates.append((box.score, clipped))
    candidates.sort(key=lambda c: -c[0])  # stable: ties keep their order
    if len(candidates) > max_instances:
        counts["over max_instances"] = len(candidates) - max_instances
        candidates = candidates[:max_instances]
    corners = np.asarray([c for _, c in candidates], dtype=np.float32).reshape(-1, 4)
    order = SELECT_REASONS + ("clipped",)
    return corners, {reason: counts[reason] for reason in order if reason in counts}
