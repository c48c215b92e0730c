"""Batches for instance-aware colorization: photos with their instance crops and boxes.

`InstanceImageFolder` gives whole photos with their instances (the full-image
and fusion stages); `InstanceCropFolder` gives the instances alone (the
instance stage); `crop_instances` and `pack_instances` are the two steps both
share with inference.

A batch of `InstanceImageFolder` is the input dict of the fused model:

- ``"images"``: sRGB in [0, 1], float32, shape (B, H, W, 3);
- ``"crops"``: each kept instance's crop of the image resized to the instance
  size S, sRGB in [0, 1], float32, shape (B, N, S, S, 3), zeros for padding;
- ``"boxes"``: float32 (B, N, 4), (y_min, x_min, y_max, x_max) as fractions of
  the image height and width, zeros for padding;
- ``"mask"``: float32 (B, N), 1.0 for a real instance, 0.0 for padding;

with N = max_instances.

References:
    Su, Chu and Huang, "Instance-aware Image Colorization", CVPR 2020.
"""

import concurrent.futures
import logging
import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_colorize.data.boxes import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MIN_SCORE,
    DEFAULT_MIN_VARIANCE,
    SELECT_REASONS,
    _check_selection_args,
    read_boxes,
    scale_boxes,
    select_instances,
)
from keras_colorize.data.dataset import TRAINING_ONLY, ImageFolder, SeededEpochs, positive_int, resolve_sources
from keras_colorize.data.files import (
    GRAYSCALE_THRESHOLD,
    NoImagesError,
    load_image,
)
from keras_colorize.errors import UserInputError

logger = logging.getLogger("keras_colorize.data")

MIN_VISIBLE_FRACTION = 0.5
"""Share of an instance's area that must stay inside a random crop for it to be used."""

MIN_VISIBLE_SIDE = 4
"""Pixels an instance must keep on each side inside a random crop for it to be used."""

_EXIF_ORIENTATION_TAG = 0x0112
_KINDS = ("images", "crops")


# ------------------------------------------------------------ crop and pack


def crop_instances(image, corners, size):
    """Crop instance boxes out of an image and resize each to a square.

    Each box is cut out of the image and resized with Pillow (bilinear,
    antialiased when shrinking); only the pixels a box touches take part, and
    fractional corners are honoured. Boxes are clipped to the image first.

    Args:
        image: np.ndarray. sRGB in [0, 255], uint8, shape (H, W, 3), or gray
            uint8 (H, W) (replicated to 3 channels). A float image in [0, 1]
            of the same shapes is also accepted.
        corners: array-like. Boxes as (x_min, y_min, x_max, y_max) pixels of
            `image`, shape (K, 4).
        size: int. Side of the square crops.

    Returns:
        np.ndarray: sRGB in [0, 1], float32, shape (K, size, size, 3).

    Raises:
        UserInputError: for an image of another shape or dtype, corners that
            are not (K, 4) finite numbers, or a box with no area inside the
            image.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.data import crop_instances
        >>> image = np.zeros((48, 64, 3), np.uint8)
        >>> crop_instances(image, [[8, 4, 40, 36]], 16).shape
        (1, 16, 16, 3)
    """
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise UserInputError(
            f"crop_instances expects an image of shape (H, W, 3) or (H, W), got {image.shape}"
        )
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise UserInputError(f"crop_instances expects a uint8 or float image, got {image.dtype}")
    size = positive_int(size, "size")
    try:
        corners = np.asarray(corners, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError("crop_instances: corners must be numbers of shape (K, 4)") from None
    if corners.size == 0:
        return np.zeros((0, size, size, 3), np.float32)
    if corners.ndim != 2 or corners.shape[1] != 4 or not np.isfinite(corners).all():
        raise UserInputError(
            f"crop_instances: corners must be finite numbers of shape (K, 4), got shape {corners.shape}"
        )
    height, width = image.shape[:2]
    corners = np.clip(corners, 0.0, [width, height, width, height])
    empty = (corners[:, 2] <= corners[:, 0]) | (corners[:, 3] <= corners[:, 1])
    if empty.any():
        k = int(np.argmax(empty))
        raise UserInputError(
            f"crop_instances: box {k} {corners[k].tolist()} has no area inside the {width}x{height} image"
        )
    if image.dtype == np.uint8:
        planes = [Image.fromarray(np.ascontiguousarray(image))]
        scale = 1.0 / 255.0
    else:
        channels = [image] if image.ndim == 2 else [image[..., c] for c in range(3)]
        planes = [Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F") for c in channels]
        scale = 1.0
    crops = np.empty((len(corners), size, size, 3), np.float32)
    for k, (x0, y0, x1, y1) in enumerate(corners.tolist()):
        # Only the pixels the box touches take part: cut them out, then resample the box within.
        outer = (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
        box = (x0 - outer[0], y0 - outer[1], x1 - outer[0], y1 - outer[1])
        resized = [
            np.asarray(p.crop(outer).resize((size, size), Image.Resampling.BILINEAR, box=box)) for p in planes
        ]
        if len(resized) == 1:
            crop = resized[0] if resized[0].ndim == 3 else resized[0][..., None]
        else:
            crop = np.stack(resized, axis=-1)
        crops[k] = crop  # broadcasts a gray plane to 3 channels
    crops *= scale
    if scale == 1.0:
        np.clip(crops, 0.0, 1.0, out=crops)
    return crops


def pack_instances(crops_list, boxes_list, max_instances):
    """Pad per-image instances to a fixed count and stack them into a batch.

    Args:
        crops_list: list of np.ndarray. Per image, its instance crops: sRGB in
            [0, 1], float32, shape (K, S, S, 3) (K may be 0).
        boxes_list: list of np.ndarray. Per image, its boxes as (y_min, x_min,
            y_max, x_max) fractions of the image height/width, shape (K, 4).
        max_instances: int. N, the padded instance count (K <= N).

    Returns:
        dict: ``"crops"`` float32 (B, N, S, S, 3) (zeros for padding),
        ``"boxes"`` float32 (B, N, 4) (zeros for padding) and ``"mask"``
        float32 (B, N) (1.0 for a real instance, 0.0 for padding).

    Raises:
        UserInputError: if the lists differ in length or are empty, shapes do
            not match, or an image has more than `max_instances` instances.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.data import pack_instances
        >>> crops = [np.ones((1, 8, 8, 3), np.float32), np.zeros((0, 8, 8, 3), np.float32)]
        >>> boxes = [np.array([[0.1, 0.2, 0.5, 0.6]]), np.zeros((0, 4))]
        >>> batch = pack_instances(crops, boxes, max_instances=3)
        >>> batch["crops"].shape, batch["mask"].tolist()
        ((2, 3, 8, 8, 3), [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    """
    integer = isinstance(max_instances, (int, np.integer)) and not isinstance(max_instances, (bool, np.bool_))
    if not integer or max_instances < 0:
        raise UserInputError(f"max_instances must be an integer >= 0, got {max_instances!r}")
    crops_list, boxes_list = list(crops_list), list(boxes_list)
    if not crops_list or len(crops_list) != len(boxes_list):
        raise UserInputError(
            "pack_instances needs one crops and one boxes array per image, "
            f"got {len(crops_list)} and {len(boxes_list)}"
        )
    crops_list = [np.asarray(c, dtype=np.float32) for c in crops_list]
    boxes_list = [np.asarray(b, dtype=np.float32) for b in boxes_list]
    boxes_list = [np.zeros((0, 4), np.float32) if b.size == 0 else b for b in boxes_list]
    shapes = {c.shape[1:] for c in crops_list}
    square = all(c.ndim == 4 and c.shape[-1] == 3 and c.shape[1] == c.shape[2] for c in crops_list)
    if len(shapes) != 1 or not square:
        raise UserInputError(
            "pack_instances: crops must all have shape (K, S, S, 3) with one S, "
            f"got {[c.shape for c in crops_list]}"
        )
    size = crops_list[0].shape[1]
    batch, count = len(crops_list), int(max_instances)
    crops = np.zeros((batch, count, size, size, 3), np.float32)
    boxes = np.zeros((batch, count, 4), np.float32)
    mask = np.zeros((batch, count), np.float32)
    for row, (c, b) in enumerate(zip(crops_list, boxes_list)):
        if b.ndim != 2 or b.shape[1] != 4 or len(b) != len(c):
            raise UserInputError(
                f"pack_instances: image {row} has {len(c)} crops but boxes of shape {b.shape} "
                f"(expected ({len(c)}, 4))"
            )
        if len(c) > count:
            raise UserInputError(
                f"pack_instances: image {row} has {len(c)} instances, more than max_instances={count}"
            )
        crops[row, : len(c)] = c
        boxes[row, : len(c)] = b
        mask[row, : len(c)] = 1.0
    return {"crops": crops, "boxes": boxes, "mask": mask}


# ------------------------------------------------------ per-file selection


def _upright_size(path):
    """(width, height) of an image file once its EXIF orientation is applied."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        height, width = load_image(path).shape[:2]
        return width, height
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height


def _select_per_file(folder, boxes, min_score, min_variance, max_instances, workers):
    """Select the instances of every file of an ImageFolder on its resized image.

    Returns (corners per file index as float32 (K, 4) in resized-image pixels,
    drop counts by reason, number of boxes found for the files).
    """
    found = [boxes.for_image(path, root=folder.root) for path in folder.files]

    def select(index):
        if not found[index]:
            return np.zeros((0, 4), np.float32), {}
        image = folder.resized_image(index)
        width, height = _upright_size(folder.files[index])
        scaled = scale_boxes(found[index], image.shape[1] / width, image.shape[0] / height)
        return select_instances(scaled, image, min_score, min_variance, max_instances)

    threads = max(1, min(workers, len(found)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(select, range(len(found))))
    corners = [r[0] for r in results]
    counts = {}
    for _, c in results:
        for reason, n in c.items():
            counts[reason] = counts.get(reason, 0) + n
    total = sum(len(f) for f in found)
    return corners, counts, total


def _instance_report(kept, total, counts):
    dropped = ", ".join(f"{counts[r]} {r}" for r in SELECT_REASONS if counts.get(r))
    return f"{kept} instances kept of {total} boxes" + (f" ({dropped})" if dropped else "")


def _visible_instances(image, corners, top, left, size, instance_size, flip):
    """Instances of a crop window: crops (K, S, S, 3) and boxes (K, 4) normalized (y0, x0, y1, x1)."""
    if len(corners) == 0:
        return np.zeros((0, instance_size, instance_size, 3), np.float32), np.zeros((0, 4), np.float32)
    offset = np.array([left, top, left, top], np.float64)
    shifted = corners.astype(np.float64) - offset
    clipped = np.clip(shifted, 0.0, float(size))
    widths, heights = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    areas = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    keep = (widths * heights >= MIN_VISIBLE_FRACTION * areas) & (widths >= MIN_VISIBLE_SIDE) & (
        heights >= MIN_VISIBLE_SIDE
    )
    clipped = clipped[keep]
    crops = crop_instances(image, clipped + offset, instance_size)
    if flip:
        crops = crops[:, :, ::-1]
        clipped = np.stack([size - clipped[:, 2], clipped[:, 1], size - clipped[:, 0], clipped[:, 3]], axis=1)
    boxes = clipped[:, [1, 0, 3, 2]] / float(size)
    return crops, boxes.astype(np.float32)


# ---------------------------------------------------------------- datasets


class InstanceImageFolder(ImageFolder):
    """Photos with their instance crops and boxes, ready for a fused instance-aware model.

    Everything `ImageFolder` does (listing, skipping, caching, resizing, seeded
    random crops and flips, epochs) applies unchanged: with the same arguments
    and seed, ``batch["images"]`` equals the `ImageFolder` batch. The boxes of
    each file (looked up in `boxes` by the path relative to the folder, then by
    file name) are scaled to the resized photo, where `select_instances`
    chooses the instances once per file (score, gray variance, at most
    `max_instances`). Each batch then moves the boxes with the crop and the
    flip; an instance with less than half of its area or fewer than 4 pixels
    on a side inside the crop is left out of that batch. Each instance's crop
    is cut from the resized photo (the part inside the crop window), resized to
    `instance_size` with `crop_instances` and flipped with the photo.

    Args:
        source: str, os.PathLike or list of paths. A folder (searched
            recursively) or the image files.
        image_size: int. Side of the square images in a batch.
        boxes: InstanceBoxes, str or os.PathLike. The boxes, or a source for
            `read_boxes` (a COCO-style or detection-list JSON file, or a folder
            of per-image files).
        instance_size: int or None. Side of the instance crops. Defaults to
            None (`image_size`).
        min_score: float. Lowest detection score used. Defaults to
            `DEFAULT_MIN_SCORE` (0.99).
        min_variance: float. Lowest gray variance (0-255 scale) of a box.
            Defaults to `DEFAULT_MIN_VARIANCE` (2000.0).
        max_instances: int. Instances per image, N (the padded count).
            Defaults to `DEFAULT_MAX_INSTANCES` (8).
        only_with_instances: bool. Leave out the photos that have no instance
            (a fusion model learns nothing from them: its output is the
            full-image model's). Defaults to False.
        **kwargs: the `ImageFolder` arguments (`batch_size`, `training`,
            `resize_to`, `seed`, `cache`, `workers`, `name`, `root`, ...), but
            not ``with_labels=True``.

    Attributes:
        boxes: InstanceBoxes. The boxes read.
        instance_corners: list[np.ndarray]. Per file, the selected boxes as
            float32 (x_min, y_min, x_max, y_max) pixels of the resized photo,
            shape (K, 4).
        instance_counts: dict[str, int]. Boxes dropped by `select_instances`,
            by reason (and "clipped").
        summary: str. The `ImageFolder` summary and the instance counts, e.g.
            "train: 120 images used, 0 skipped of 120 in photos/, 230 instances
            kept of 412 boxes (150 low score, 32 low variance)".

    Returns (from ``dataset[index]``):
        dict: ``"images"`` sRGB in [0, 1], float32 (B, image_size, image_size,
        3); ``"crops"`` sRGB in [0, 1], float32 (B, N, S, S, 3);
        ``"boxes"`` float32 (B, N, 4) normalized (y_min, x_min, y_max, x_max);
        ``"mask"`` float32 (B, N).

    Raises:
        NoImagesError: if the folder is missing or no file is usable.
        UserInputError: for bad arguments or a boxes source that cannot be
            read (`InstanceBoxesError`).

    Examples:
        >>> from keras_colorize.data import InstanceImageFolder
        >>> train = InstanceImageFolder("photos/", 256, "boxes.json", batch_size=8,
        ...                             training=True)  # doctest: +SKIP
        >>> batch = train[0]  # doctest: +SKIP
        >>> batch["crops"].shape  # doctest: +SKIP
        (8, 8, 256, 256, 3)
    """

    def __init__(
        self,
        source,
        image_size,
        boxes,
        instance_size=None,
        min_score=DEFAULT_MIN_SCORE,
        min_variance=DEFAULT_MIN_VARIANCE,
        max_instances=DEFAULT_MAX_INSTANCES,
        only_with_instances=False,
        **kwargs,
    ):
        if kwargs.get("with_labels"):
            raise UserInputError(
                "InstanceImageFolder yields input dicts without labels: with_labels must be False"
            )
        _check_selection_args(min_score, min_variance, max_instances)
        instance_size = image_size if instance_size is None else instance_size
        self.instance_size = positive_int(instance_size, "instance_size")
        self.min_score = float(min_score)
        self.min_variance = float(min_variance)
        self.max_instances = int(max_instances)
        self.boxes = read_boxes(boxes)
        super().__init__(source, image_size, **kwargs)
        workers = max(self.workers, min(16, os.cpu_count() or 1))
        corners, counts, total = _select_per_file(
            self, self.boxes, self.min_score, self.min_variance, self.max_instances, workers
        )
        self.instance_corners = corners
        self.instance_counts = counts
        kept = sum(len(c) for c in corners)
        self.summary = f"{self.summary}, {_instance_report(kept, total, counts)}"
        if only_with_instances:
            self._keep_files([index for index, found in enumerate(corners) if len(found)])
        if total == 0:
            logger.warning(f"{self.summary}: no image has an entry in {self.boxes.name}")
        else:
            logger.info(self.summary)

    def _keep_files(self, kept):
        """Keep only the files at the indices `kept` (the photos that have instances)."""
        left_out = len(self.files) - len(kept)
        if not kept:
            raise NoImagesError(f"{self.summary}: no photo has an instance")
        cache = self._cache
        if cache is not None:
            self._cache = {new: cache[old] for new, old in enumerate(kept) if old in cache}
        self.files = [self.files[i] for i in kept]
        self.instance_corners = [self.instance_corners[i] for i in kept]
        self._order = None
        if left_out:
            self.summary = f"{self.summary}; {left_out} photos without instances left out"
        if self.training and len(self.files) * self.repeat < self.batch_size:
            raise UserInputError(
                f"{self.name}: only {len(self.files)} photos with instances in {self.location} "
                f"(repeat={self.repeat}), fewer than batch_size={self.batch_size}"
            )

    def _inputs(self, positions, rng):
        size = self.image_size
        images = np.empty((len(positions), size, size, 3), dtype=np.float32)
        crops_list, boxes_list = [], []
        for row, position in enumerate(positions):
            image = self.resized_image(int(position))
            height, width = image.shape[:2]
            if rng is None:
                top, left, flip = (height - size) // 2, (width - size) // 2, False
            else:  # the same draws, in the same order, as ImageFolder
                top = int(rng.integers(0, height - size + 1))
                left = int(rng.integers(0, width - size + 1))
                flip = bool(rng.random() < 0.5)
            crop = image[top : top + size, left : left + size]
            images[row] = crop[:, ::-1] if flip else crop
            crops, boxes = _visible_instances(
                image, self.instance_corners[int(position)], top, left, size, self.instance_size, flip
            )
            crops_list.append(crops)
            boxes_list.append(boxes)
        images /= 255.0
        return {"images": images, **pack_instances(crops_list, boxes_list, self.max_instances)}

    def __getitem__(self, index):
        """Batch `index` of the current epoch.

        Args:
            index: int. In [0, len(self)).

        Returns:
            dict: ``"images"`` sRGB in [0, 1], float32 (B, image_size,
            image_size, 3); ``"crops"`` sRGB in [0, 1], float32 (B, N,
            instance_size, instance_size, 3); ``"boxes"`` float32 (B, N, 4)
            as (y_min, x_min, y_max, x_max) fractions; ``"mask"`` float32
            (B, N).
        """
        if not 0 <= index < self.num_batches:
            raise IndexError(f"{self.name}: batch index {index} out of range [0, {self.num_batches})")
        positions = self._epoch_order()[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self._epoch, 1, index]) if self.training else None
        return self._inputs(positions, rng)

    def sample_inputs(self, count):
        """The inputs of the first `count` files: centre crops, no flip.

        Args:
            count: int. Number of files (at most ``len(files)``).

        Returns:
            dict: the batch dict of ``dataset[index]`` for those files.
        """
        count = min(positive_int(count, "count"), len(self.files))
        return self._inputs(np.arange(count), None)


class InstanceCropFolder(SeededEpochs):
    """The instances of a folder of photos, one sample each, for training an instance colorizer.

    The photos are listed, decoded, skipped and cached by an `ImageFolder`
    (``training=False``, shorter side `resize_to`); the boxes of each photo are
    scaled to it and chosen by `select_instances` (score, gray variance, at
    most `max_instances`). Every kept instance is one sample: its crop of the
    resized photo, resized to `image_size` x `image_size` with
    `crop_instances`. In training the instances are shuffled per epoch and
    flipped left-right with probability 0.5, from NumPy generators seeded with
    (seed, epoch, batch index) as in `ImageFolder`, and the last partial batch
    is dropped.

    Args:
        source: str, os.PathLike or list of paths. A folder (searched
            recursively) or the image files.
        image_size: int. Side of the square crops in a batch.
        boxes: InstanceBoxes, str or os.PathLike. The boxes, or a source for
            `read_boxes`.
        batch_size: int. Crops per batch. Defaults to 16.
        training: bool. Shuffling, flips, grayscale dropping and static batch
            shapes. Defaults to False.
        resize_to: int or None. Shorter side of the photos the instances are
            cut from. Defaults to None (`image_size`).
        shuffle: bool or None. Shuffle the instances every epoch. Defaults to
            None (`training`).
        drop_grayscale: bool or None. Skip grayscale photos. Defaults to None
            (`training`).
        repeat: int. Passes over the instances per epoch. Defaults to 1.
        seed: int or None. Seed of every random choice. Defaults to 0.
        min_score: float. Lowest detection score used. Defaults to
            `DEFAULT_MIN_SCORE` (0.99).
        min_variance: float. Lowest gray variance (0-255 scale) of a box.
            Defaults to `DEFAULT_MIN_VARIANCE` (2000.0).
        max_instances: int. Most instances taken from one photo. Defaults to
            `DEFAULT_MAX_INSTANCES` (8).
        cache: "auto", bool. Keep the resized photos in memory. Defaults to
            "auto".
        workers: int. Threads that make batches and scan the files. Defaults
            to 2.
        name: str. Name used in warnings and the summary. Defaults to "data".
        root: str, os.PathLike or None. For a list `source`, the folder the
            boxes' paths are relative to. Defaults to None (the files' common
            folder).
        grayscale_threshold: float. Chroma threshold of `is_grayscale`.
            Defaults to `GRAYSCALE_THRESHOLD`.
        **kwargs: `use_multiprocessing` and `max_queue_size` of
            `keras.utils.PyDataset`.

    Attributes:
        files: list[pathlib.Path]. The usable photos.
        instances: list[tuple[int, np.ndarray]]. (index in `files`, float32
            corners (x_min, y_min, x_max, y_max) in pixels of the resized photo).
        instance_counts: dict[str, int]. Boxes dropped by `select_instances`, by
            reason (and "clipped").
        skipped: dict[str, list[pathlib.Path]]. Photos skipped, by reason.
        summary: str. One line: photos used and skipped, instances kept and
            boxes dropped.

    Returns (from ``dataset[index]``):
        np.ndarray of sRGB in [0, 1], float32, shape (batch, image_size,
        image_size, 3).

    Raises:
        NoImagesError: if the folder has no usable photo, or the boxes match no
            usable instance.
        UserInputError: for bad arguments, an unreadable boxes source, or a
            training set with fewer instances (times `repeat`) than
            `batch_size`.

    Examples:
        >>> from keras_colorize.data import InstanceCropFolder
        >>> crops = InstanceCropFolder("photos/", 256, "boxes.json", batch_size=16,
        ...                            training=True, resize_to=512)  # doctest: +SKIP
        >>> print(crops.summary)  # doctest: +SKIP
        train: 120 images used, 0 skipped of 120 in photos/, 230 instances kept of 412 boxes (150 low score)
    """

    def __init__(
        self,
        source,
        image_size,
        boxes,
        batch_size=16,
        training=False,
        resize_to=None,
        shuffle=None,
        drop_grayscale=None,
        repeat=1,
        seed=0,
        min_score=DEFAULT_MIN_SCORE,
        min_variance=DEFAULT_MIN_VARIANCE,
        max_instances=DEFAULT_MAX_INSTANCES,
        cache="auto",
        workers=2,
        name="data",
        root=None,
        grayscale_threshold=GRAYSCALE_THRESHOLD,
        **kwargs,
    ):
        workers = positive_int(workers, "workers")
        super().__init__(workers=workers, **kwargs)
        self.name = str(name)
        self.image_size = positive_int(image_size, "image_size")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.resize_to = positive_int(resize_to if resize_to is not None else image_size, "resize_to")
        self.repeat = positive_int(repeat, "repeat")
        self.training = bool(training)
        self.shuffle = self.training if shuffle is None else bool(shuffle)
        _check_selection_args(min_score, min_variance, max_instances)
        self.min_score = float(min_score)
        self.min_variance = float(min_variance)
        self.max_instances = int(max_instances)
        self.boxes = read_boxes(boxes)
        self.folder = ImageFolder(
            source,
            self.resize_to,
            batch_size=1,
            training=False,
            resize_to=self.resize_to,
            shuffle=False,
            drop_grayscale=self.training if drop_grayscale is None else bool(drop_grayscale),
            seed=seed,
            cache=cache,
            workers=workers,
            name=self.name,
            root=root,
            grayscale_threshold=grayscale_threshold,
        )
        self.seed = self.folder.seed
        self.files = self.folder.files
        self.skipped = self.folder.skipped
        self.location = self.folder.location
        self._epoch = 0
        self._order = None

        scan_workers = max(workers, min(16, os.cpu_count() or 1))
        corners, counts, total = _select_per_file(
            self.folder, self.boxes, self.min_score, self.min_variance, self.max_instances, scan_workers
        )
        self.instances = [(index, box) for index, file_corners in enumerate(corners) for box in file_corners]
        self.instance_counts = counts
        report = _instance_report(len(self.instances), total, counts)
        self.summary = f"{self.folder.summary}, {report}"
        if not self.instances:
            raise NoImagesError(
                f"{self.name}: {self.boxes.name} matched no usable instance in {self.location}: "
                f"{len(self.files)} images, {report}"
            )
        logger.info(self.summary)
        if self.training and len(self.instances) * self.repeat < self.batch_size:
            raise UserInputError(
                f"{self.name}: only {len(self.instances)} instances in {self.location} "
                f"(repeat={self.repeat}), "
                f"fewer than batch_size={self.batch_size}; use a batch size of at most "
                f"{len(self.instances) * self.repeat} or a larger repeat"
            )

    @property
    def sample_count(self):
        """int: samples per pass over the data: the kept instances."""
        return len(self.instances)

    def _crop(self, position):
        index, corners = self.instances[int(position)]
        return crop_instances(self.folder.resized_image(index), corners[None], self.image_size)[0]

    def __getitem__(self, index):
        """Batch `index` of the current epoch.

        Args:
            index: int. In [0, len(self)).

        Returns:
            np.ndarray: sRGB in [0, 1], float32, shape (batch, image_size,
            image_size, 3).
        """
        if not 0 <= index < self.num_batches:
            raise IndexError(f"{self.name}: batch index {index} out of range [0, {self.num_batches})")
        positions = self._epoch_order()[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self._epoch, 1, index]) if self.training else None
        size = self.image_size
        batch = np.empty((len(positions), size, size, 3), np.float32)
        for row, position in enumerate(positions):
            crop = self._crop(position)
            batch[row] = crop[:, ::-1] if rng is not None and rng.random() < 0.5 else crop
        return batch

    def sample_images(self, count):
        """The first `count` instance crops, unflipped.

        Args:
            count: int. Number of crops (at most ``len(instances)``).

        Returns:
            np.ndarray: sRGB in [0, 1], float32, shape (count, image_size,
            image_size, 3).
        """
        count = min(positive_int(count, "count"), len(self.instances))
        return np.stack([self._crop(i) for i in range(count)])

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, images={len(self.files)}, "
            f"instances={len(self.instances)}, batches={self.num_batches}, "
            f"image_size={self.image_size}, training={self.training})"
        )


def make_instance_datasets(
    train,
    image_size,
    batch_size,
    boxes,
    kind,
    validation=None,
    validation_fraction=0.0,
    seed=0,
    instance_size=None,
    min_score=DEFAULT_MIN_SCORE,
    min_variance=DEFAULT_MIN_VARIANCE,
    max_instances=DEFAULT_MAX_INSTANCES,
    validation_boxes=None,
    holdout_fraction=0.0,
    **kwargs,
):
    """Make the training and (optional) validation sets of an instance-aware stage.

    Sources, the split and the validation set follow `make_datasets`: the
    validation set uses ``training=False`` and drops grayscale photos. One
    boxes source serves both sets unless `validation_boxes` is given.

    Args:
        train: str or os.PathLike. The training folder, or ``"samples"``.
        image_size: int. Side of the square images (or crops) in a batch.
        batch_size: int. Samples per batch (both sets).
        boxes: InstanceBoxes, str or os.PathLike. The boxes, or a source for
            `read_boxes`.
        kind: str. ``"images"`` for `InstanceImageFolder` (the photos that
            have instances, with their instances: the fusion stage) or
            ``"crops"`` for `InstanceCropFolder` (the instances alone: the
            instance stage).
        validation: str, os.PathLike or None. A separate validation folder.
            Defaults to None.
        validation_fraction: float. When `validation` is None, the share of
            the training files held out for validation (seeded, stratified by
            sub-folder). Defaults to 0.0.
        seed: int. Seed of the split, the shuffle and the augmentation.
            Defaults to 0.
        instance_size: int or None. Side of the instance crops of kind
            "images" (None: `image_size`); kind "crops" makes its crops
            `image_size` and does not use it. Defaults to None.
        min_score: float. Lowest detection score used. Defaults to
            `DEFAULT_MIN_SCORE` (0.99).
        min_variance: float. Lowest gray variance (0-255 scale). Defaults to
            `DEFAULT_MIN_VARIANCE` (2000.0).
        max_instances: int. Instances per image. Defaults to
            `DEFAULT_MAX_INSTANCES` (8).
        validation_boxes: InstanceBoxes, str, os.PathLike or None. The boxes
            of the validation set. Defaults to None (`boxes`).
        holdout_fraction: float. The share of the training files set aside
            first, used by neither set (see `make_datasets`). Defaults to 0.0.
        **kwargs: further arguments of the data set class (`resize_to`,
            `cache`, `workers`, `repeat`, ...). All but `repeat`, `shuffle` and
            `drop_grayscale` also apply to the validation set.

    Returns:
        tuple: the training set and the validation set (or None), both
        `InstanceImageFolder` or both `InstanceCropFolder`.

    Raises:
        NoImagesError: if a folder has no usable image (or, for "crops", no
            usable instance).
        UserInputError: for bad arguments or an unreadable boxes source.

    Examples:
        >>> from keras_colorize.data import make_instance_datasets
        >>> train, val = make_instance_datasets("photos/", 256, 16, "boxes.json", "crops",
        ...                                     validation_fraction=0.1)  # doctest: +SKIP
    """
    if kind not in _KINDS:
        raise UserInputError(f"kind must be 'images' or 'crops', got {kind!r}")
    boxes = read_boxes(boxes)
    validation_boxes = boxes if validation_boxes is None else read_boxes(validation_boxes)
    train_source, train_root, validation_source, validation_root = resolve_sources(
        train, validation, validation_fraction, seed, holdout_fraction
    )
    common = dict(min_score=min_score, min_variance=min_variance, max_instances=max_instances)
    if kind == "images":
        cls = InstanceImageFolder
        common["instance_size"] = instance_size
        common["only_with_instances"] = True
    else:
        cls = InstanceCropFolder
    train_set = cls(
        train_source,
        image_size,
        boxes,
        batch_size=batch_size,
        training=True,
        seed=seed,
        name="train",
        root=train_root,
        **common,
        **kwargs,
    )
    if validation_source is None:
        return train_set, None
    shared = {k: v for k, v in kwargs.items() if k not in TRAINING_ONLY}
    validation_set = cls(
        validation_source,
        image_size,
        validation_boxes,
        batch_size=batch_size,
        training=False,
        drop_grayscale=True,
        seed=seed,
        name="validation",
        root=validation_root,
        **common,
        **shared,
    )
    return train_set, validation_set
