"""Batches of photos for training and evaluation: `ImageFolder` and `make_datasets`."""

import concurrent.futures
import logging
import os
import pathlib
import warnings

import keras
import numpy as np

from keras_colorize.data.files import (
    GRAYSCALE_THRESHOLD,
    NoImagesError,
    SkippedImageWarning,
    UnreadableImageError,
    center_crop,
    is_grayscale,
    list_images,
    load_image,
    resize_short_side,
    split_files,
)
from keras_colorize.data.samples import SAMPLES, sample_photo_paths
from keras_colorize.errors import UserInputError

logger = logging.getLogger("keras_colorize.data")

CACHE_LIMIT_BYTES = 2 * 1024**3
"""With ``cache="auto"``, resized images are kept in memory while they fit in this many bytes."""

# Skip reasons, in the order the summary lists them.
_REASONS = ("unreadable", "grayscale", "no class folder", "unknown class")


def positive_int(value, name):
    """`value` as an int when it is a positive integer; else a one-line `UserInputError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _common_folder(paths):
    parents = {str(p.parent) for p in paths}
    return pathlib.Path(os.path.commonpath(sorted(parents)))


def _scan_one(path, resize_to, check_grayscale, threshold, keep):
    """Decode one file; returns (reason or None, resized image or None, detail)."""
    try:
        image = load_image(path, min_size=resize_to)
    except UnreadableImageError as error:
        return "unreadable", None, str(error)
    if check_grayscale and is_grayscale(image, threshold):
        return "grayscale", None, f"{path}: grayscale photo (no colour to learn from)"
    return None, (resize_short_side(image, resize_to) if keep() else None), ""


class SeededEpochs(keras.utils.PyDataset):
    """Epoch bookkeeping shared by the datasets: batches per epoch and a seeded order.

    A subclass sets `seed`, `repeat`, `training`, `shuffle`, `batch_size`, `_epoch = 0`
    and `_order = None`, and defines `sample_count`. The order of an epoch is a
    permutation per pass seeded with (seed, epoch, 0, pass) when shuffling; training
    drops the last partial batch.
    """

    @property
    def sample_count(self):
        """int: samples per pass over the data."""
        raise NotImplementedError

    @property
    def epoch(self):
        """int: the current epoch, which seeds the shuffle and the augmentation."""
        return self._epoch

    @epoch.setter
    def epoch(self, value):
        self._epoch = int(value)

    @property
    def num_batches(self):
        """int: batches per epoch."""
        count = self.sample_count * self.repeat
        if self.training:
            return count // self.batch_size
        return -(-count // self.batch_size)

    def __len__(self):
        return self.num_batches

    def on_epoch_end(self):
        """Advance to the next epoch (a new shuffle and new augmentation)."""
        self._epoch += 1

    def _epoch_order(self):
        epoch = self._epoch
        cached = self._order
        if cached is not None and cached[0] == epoch:
            return cached[1]
        n = self.sample_count
        if self.shuffle:
            order = np.concatenate(
                [np.random.default_rng([self.seed, epoch, 0, r]).permutation(n) for r in range(self.repeat)]
            )
        else:
            order = np.tile(np.arange(n), self.repeat)
        self._order = (epoch, order)
        return order


class ImageFolder(SeededEpochs):
    """Batches of photos from a folder or a list of files, ready for `model.fit`.

    Construction scans every file once (in a thread pool): files that cannot
    be decoded are skipped, and so are grayscale photos when `drop_grayscale`
    is on, each named once in a `SkippedImageWarning`; `summary` is a one-line
    report of the counts (also logged on the ``keras_colorize.data`` logger).

    Each image is resized so its shorter side is `resize_to` (bicubic,
    antialiased), then cropped to `image_size` x `image_size`: at random and
    flipped left-right with probability 0.5 in training, in the centre
    otherwise. All randomness comes from NumPy generators seeded with
    (seed, epoch, batch index), so the same seed gives the same batches
    whatever the number of workers, and a batch can be recomputed on its own.
    The file order is shuffled per epoch (when `shuffle`); `epoch` advances on
    `on_epoch_end`, which `fit` calls after every epoch and also once before
    the first (after it has looked at a batch to build the model), so the
    first epoch of a `fit` run usually has ``epoch == 1``; set `epoch` to
    resume a run. `fit(..., shuffle=True)` (Keras's default) additionally
    reorders whole batches with Python's unseeded `random`; pass
    ``shuffle=False`` to `fit` for a reproducible batch order.

    Class labels come from the immediate sub-folder under the root:
    ``root/<class>/.../photo.jpg``; class names are sorted and labels index
    them. Files directly in the root have no class: with `with_labels` they are
    skipped (reason "no class folder"), otherwise they are used as photos.

    Resized images are cached in memory when `cache` is on (``"auto"``: while
    the set fits in `CACHE_LIMIT_BYTES`, 2 GiB); later epochs then only crop.

    Args:
        source: str, os.PathLike or list of paths. A folder (searched
            recursively) or the image files.
        image_size: int. Side of the square images in a batch.
        batch_size: int. Images per batch. Training drops the last partial
            batch so every batch has the same shape. Defaults to 16.
        training: bool. Random crops and flips, shuffling, grayscale dropping and
            static batch shapes. Defaults to False.
        resize_to: int or None. Shorter side before cropping, at least
            `image_size`. Defaults to None (`image_size`).
        shuffle: bool or None. Shuffle the files every epoch. Defaults to None
            (`training`).
        drop_grayscale: bool or None. Skip grayscale photos. Defaults to None
            (`training`).
        with_labels: bool. Yield ``(images, labels)`` with int32 labels of shape
            (batch,) instead of images alone. Defaults to False.
        class_names: list of str or None. Fixed class list (for example the
            training set's, for a validation set); files of other classes are
            skipped. Defaults to None (the sorted sub-folder names).
        repeat: int. Passes over the files per epoch, useful for tiny sets.
            Defaults to 1.
        seed: int or None. Seed of every random choice. None draws a fresh
            seed. Defaults to 0.
        cache: "auto", bool. Keep the resized images in memory. Defaults to
            "auto".
        workers: int. Threads that decode batches (Keras `PyDataset` workers)
            and the scan's threads. Defaults to 2.
        name: str. Name used in warnings and the summary. Defaults to "data".
        root: str, os.PathLike or None. For a list `source`, the folder whose
            sub-folders are the classes. Defaults to None (the files' common
            folder).
        grayscale_threshold: float. Chroma threshold of `is_grayscale`.
            Defaults to `GRAYSCALE_THRESHOLD`.
        **kwargs: `use_multiprocessing` and `max_queue_size` of
            `keras.utils.PyDataset`.

    Attributes:
        files: list[pathlib.Path]. The usable images, in listing order.
        labels: np.ndarray or None. int32 class index per file (with `with_labels`).
        class_names: list[str]. Sorted class sub-folder names (or the given list).
        skipped: dict[str, list[pathlib.Path]]. Skipped files by reason
            ("unreadable", "grayscale", "no class folder", "unknown class").
        summary: str. The one-line report of used and skipped counts.
        location: str. The folder (or "N given files") named in messages.

    Returns (from ``dataset[index]``):
        np.ndarray of sRGB in [0, 1], float32, shape (batch, image_size,
        image_size, 3); or a tuple of it and int32 labels of shape (batch,).

    Raises:
        NoImagesError: if the folder is missing or empty, or no file is usable.
        UserInputError: for bad arguments, or a training set with fewer usable
            images (times `repeat`) than `batch_size`.

    Examples:
        >>> from keras_colorize.data import ImageFolder
        >>> train = ImageFolder("photos/", image_size=256, batch_size=16, training=True)  # doctest: +SKIP
        >>> print(train.summary)  # doctest: +SKIP
        data: 340 images used, 8 skipped (5 unreadable, 3 grayscale) of 348 in photos/
        >>> model.fit(train, epochs=10, shuffle=False)  # doctest: +SKIP
    """

    def __init__(
        self,
        source,
        image_size,
        batch_size=16,
        training=False,
        resize_to=None,
        shuffle=None,
        drop_grayscale=None,
        with_labels=False,
        class_names=None,
        repeat=1,
        seed=0,
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
        if self.resize_to < self.image_size:
            raise UserInputError(
                f"resize_to ({self.resize_to}) must be at least image_size ({self.image_size})"
            )
        self.repeat = positive_int(repeat, "repeat")
        self.training = bool(training)
        self.shuffle = self.training if shuffle is None else bool(shuffle)
        self.drop_grayscale = self.training if drop_grayscale is None else bool(drop_grayscale)
        self.with_labels = bool(with_labels)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserInputError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = int(seed)
        if cache not in ("auto", True, False):
            raise UserInputError(f"cache must be 'auto', True or False, got {cache!r}")
        self.cache = cache
        self._epoch = 0
        self._order = None

        candidates, self.root, where = self._resolve_source(source, root)
        self.location = where
        self.class_names, file_classes = self._resolve_classes(candidates, class_names)
        self.skipped = {}
        self._scan(candidates, file_classes, workers, grayscale_threshold)

    # ----------------------------------------------------------------- setup

    def _resolve_source(self, source, root):
        if isinstance(source, (str, os.PathLike)):
            folder = pathlib.Path(source)
            return list_images(folder), folder, os.path.join(str(folder), "")
        files = [pathlib.Path(p) for p in source]
        if not files:
            raise NoImagesError(f"{self.name}: no image files given")
        if root is not None:
            folder = pathlib.Path(root)
            return files, folder, os.path.join(str(folder), "")
        return files, _common_folder(files), f"{len(files)} given files"

    def _resolve_classes(self, files, class_names):
        classes = []
        for path in files:
            try:
                parts = path.relative_to(self.root).parts
            except ValueError:
                parts = ()
            classes.append(parts[0] if len(parts) > 1 else None)
        if class_names is None:
            class_names = sorted({c for c in classes if c is not None})
        else:
            class_names = [str(c) for c in class_names]
        if self.with_labels and not class_names:
            raise NoImagesError(
                f"{self.location}: with_labels=True needs class sub-folders (<root>/<class>/<image>), "
                "found none"
            )
        return class_names, classes

    def _scan(self, candidates, file_classes, workers, threshold):
        index_of_class = {c: i for i, c in enumerate(self.class_names)}
        skipped = {}
        messages = []
        to_decode = []
        for path, cls in zip(candidates, file_classes):
            if self.with_labels and cls is None:
                skipped.setdefault("no class folder", []).append(path)
                messages.append(f"{path}: not in a class sub-folder of {self.root}")
            elif self.with_labels and cls not in index_of_class:
                skipped.setdefault("unknown class", []).append(path)
                messages.append(f"{path}: class {cls!r} is not one of {self.class_names}")
            else:
                to_decode.append((path, cls))

        caching = [self.cache is not False]

        def decode(item):
            return _scan_one(item[0], self.resize_to, self.drop_grayscale, threshold, lambda: caching[0])

        files, labels, cache, cached_bytes = [], [], {}, 0
        scan_workers = max(workers, min(16, os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(max_workers=scan_workers) as pool:
            for (path, cls), (reason, image, detail) in zip(to_decode, pool.map(decode, to_decode)):
                if reason is not None:
                    skipped.setdefault(reason, []).append(path)
                    messages.append(detail)
                    continue
                if caching[0] and image is not None:
                    cached_bytes += image.nbytes
                    if self.cache == "auto" and cached_bytes > CACHE_LIMIT_BYTES:
                        caching[0] = False
                        cache = {}
                    else:
                        cache[len(files)] = image
                files.append(path)
                labels.append(index_of_class.get(cls, -1))

        for message in messages:
            warnings.warn(SkippedImageWarning(f"{self.name}: skipped {message}"), stacklevel=3)
        self.skipped = {reason: skipped[reason] for reason in _REASONS if reason in skipped}
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int32) if self.with_labels else None
        self._cache = cache if caching[0] else None

        n_skipped = sum(len(v) for v in self.skipped.values())
        counts = ", ".join(f"{len(v)} {reason}" for reason, v in self.skipped.items())
        counts = f" ({counts})" if counts else ""
        total = len(candidates)
        if not files:
            raise NoImagesError(
                f"{self.location}: no usable images, {n_skipped} skipped{counts} of {total}"
            )
        self.summary = (
            f"{self.name}: {len(files)} images used, {n_skipped} skipped{counts} of {total}"
            f" in {self.location}"
        )
        (logger.warning if n_skipped else logger.info)(self.summary)
        if self.training and len(files) * self.repeat < self.batch_size:
            raise UserInputError(
                f"{self.name}: only {len(files)} usable images in {self.location} (repeat={self.repeat}), "
                f"fewer than batch_size={self.batch_size}; use a batch size of at most "
                f"{len(files) * self.repeat} or a larger repeat"
            )

    # --------------------------------------------------------------- batches

    @property
    def sample_count(self):
        """int: samples per pass over the data: the usable files."""
        return len(self.files)

    def resized_image(self, index):
        """The image of ``files[index]``, shorter side `resize_to`.

        Args:
            index: int. Position in `files`.

        Returns:
            np.ndarray: sRGB in [0, 255], uint8, shape (H, W, 3) with
            min(H, W) == resize_to.
        """
        cache = self._cache
        if cache is not None and index in cache:
            return cache[index]
        image = resize_short_side(load_image(self.files[index], min_size=self.resize_to), self.resize_to)
        if cache is not None:
            cache[index] = image
        return image

    def __getitem__(self, index):
        """Batch `index` of the current epoch.

        Args:
            index: int. In [0, len(self)).

        Returns:
            np.ndarray of sRGB in [0, 1], float32, shape (batch, image_size,
            image_size, 3), or ``(images, labels)`` with int32 labels of shape
            (batch,) when `with_labels`.
        """
        if not 0 <= index < self.num_batches:
            raise IndexError(f"{self.name}: batch index {index} out of range [0, {self.num_batches})")
        positions = self._epoch_order()[index * self.batch_size : (index + 1) * self.batch_size]
        size = self.image_size
        images = np.empty((len(positions), size, size, 3), dtype=np.float32)
        rng = np.random.default_rng([self.seed, self._epoch, 1, index]) if self.training else None
        for row, position in enumerate(positions):
            image = self.resized_image(int(position))
            if rng is None:
                crop = center_crop(image, size)
            else:
                height, width = image.shape[:2]
                top = int(rng.integers(0, height - size + 1))
                left = int(rng.integers(0, width - size + 1))
                crop = image[top : top + size, left : left + size]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
            images[row] = crop
        images /= 255.0
        if self.with_labels:
            return images, self.labels[positions]
        return images

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, images={len(self.files)}, "
            f"batches={self.num_batches}, image_size={self.image_size}, training={self.training})"
        )


# Arguments that only make sense for the training set of `make_datasets`.
TRAINING_ONLY = ("repeat", "shuffle", "drop_grayscale", "training", "name", "class_names", "root")


def _resolve_source(source):
    if isinstance(source, str) and source == SAMPLES:
        return sample_photo_paths()
    return source


def holdout_files(train, holdout_fraction, seed=0):
    """The files `make_datasets` sets aside with `holdout_fraction` (never trained on).

    Args:
        train: str or os.PathLike. The training folder (or "samples").
        holdout_fraction: float in (0, 1). The share set aside.
        seed: int. The seed of the split. Defaults to 0.

    Returns:
        list[pathlib.Path]: the held-out files, sorted.
    """
    return split_files(_resolve_source(train), holdout_fraction, seed=seed)[1]


def resolve_sources(train, validation, validation_fraction, seed, holdout_fraction=0.0):
    """The training and validation sources of `make_datasets`'s conventions.

    `"samples"` names the built-in sample photos. A `holdout_fraction` of the
    training files is first set aside (seeded, stratified by sub-folder; see
    `holdout_files`) and used by neither set; then, without `validation`, a
    `validation_fraction` of the remaining files is held out for validation, and
    both sets keep the training folder as their class root.

    Returns:
        tuple: (train source, train root or None, validation source or None,
        validation root or None); a source is a folder or a list of files.

    Raises:
        UserInputError: a fraction outside [0, 1).
    """
    for name, fraction in (("validation_fraction", validation_fraction), ("holdout_fraction", holdout_fraction)):
        if not 0.0 <= float(fraction) < 1.0:
            raise UserInputError(f"{name} must be in [0, 1), got {fraction!r}")
    train_source = _resolve_source(train)
    train_root = validation_source = validation_root = None
    if isinstance(train_source, (str, os.PathLike)) and (holdout_fraction > 0 or validation_fraction > 0):
        train_root = pathlib.Path(train_source)
    if holdout_fraction > 0:
        train_source = split_files(train_source, holdout_fraction, seed=seed)[0]
    if validation is not None:
        validation_source = _resolve_source(validation)
    elif validation_fraction > 0:
        validation_root = train_root
        train_source, validation_source = split_files(train_source, validation_fraction, seed=seed)
    return train_source, train_root, validation_source, validation_root


def make_datasets(
    train,
    image_size,
    batch_size,
    validation=None,
    validation_fraction=0.0,
    seed=0,
    with_labels=False,
    holdout_fraction=0.0,
    **kwargs,
):
    """Make the training and (optional) validation `ImageFolder`s.

    The validation set uses ``training=False`` (centre crops, no flips, no
    shuffle, every image), the training set's `class_names`, and also drops
    grayscale photos, since they have no colour to compare with.

    Args:
        train: str or os.PathLike. The training folder, or ``"samples"`` for the
            built-in sample photos (`sample_photo_paths`); a folder that is
            really called "samples" can be given as ``"./samples"``.
        image_size: int. Side of the square images in a batch.
        batch_size: int. Images per batch (both sets).
        validation: str, os.PathLike or None. A separate validation folder (or
            ``"samples"``). Defaults to None.
        validation_fraction: float. When `validation` is None, the share of the
            training files held out for validation (seeded, stratified by
            sub-folder); 0 means no validation set. Defaults to 0.0.
        seed: int. Seed of the split, the shuffle and the augmentation.
            Defaults to 0.
        with_labels: bool. Yield ``(images, labels)``. Defaults to False.
        holdout_fraction: float. The share of the training files set aside first
            (seeded, stratified by sub-folder), used for neither training nor
            validation: a test set (`holdout_files` lists it). Defaults to 0.0.
        **kwargs: further `ImageFolder` arguments for the training set
            (`resize_to`, `cache`, `workers`, `repeat`, ...). All but `repeat`,
            `shuffle` and `drop_grayscale` also apply to the validation set.

    Returns:
        tuple[ImageFolder, ImageFolder | None]: the training and validation
        sets; both give sRGB in [0, 1], float32, shape (batch, image_size,
        image_size, 3).

    Raises:
        NoImagesError: if a folder is missing or has no usable image.
        UserInputError: for bad arguments.

    Examples:
        >>> from keras_colorize.data import make_datasets
        >>> train, val = make_datasets("samples", 64, 4, validation_fraction=0.25)  # doctest: +SKIP
    """

    train_source, train_root, validation_source, validation_root = resolve_sources(
        train, validation, validation_fraction, seed, holdout_fraction
    )
    train_set = ImageFolder(
        train_source,
        image_size,
        batch_size=batch_size,
        training=True,
        with_labels=with_labels,
        seed=seed,
        name="train",
        root=train_root,
        **kwargs,
    )
    if validation_source is None:
        return train_set, None
    shared = {k: v for k, v in kwargs.items() if k not in TRAINING_ONLY}
    validation_set = ImageFolder(
        validation_source,
        image_size,
        batch_size=batch_size,
        training=False,
        drop_grayscale=True,
        with_labels=with_labels,
        class_names=train_set.class_names,
        seed=seed,
        name="validation",
        root=validation_root,
        **shared,
    )
    return train_set, validation_set
