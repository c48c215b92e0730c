"""Built-in sample photos: real colour photos shipped inside scikit-image and scikit-learn.

They need no download, so examples, smoke tests and ``make_datasets("samples", ...)``
work offline.
"""

import importlib.util
import pathlib
import shutil

from keras_colorize.data.files import NoImagesError

# name -> (package that ships the file, path inside the package)
_SAMPLE_FILES = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
}


def _package_folder(package):
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])

SAMPLE_PHOTOS = tuple(_SAMPLE_FILES)
"""Names of the sample photos, in the order `sample_photo_paths` returns them."""

SAMPLES = "samples"
"""The data source that means the sample photos (`make_datasets("samples")`, `data.train: samples`)."""


def sample_photo_paths():
    """The paths of the sample photos inside the installed scikit-image and scikit-learn.

    Returns:
        list[pathlib.Path]: one file per name in `SAMPLE_PHOTOS`, in that order
        (PNG and JPEG files of sRGB photos, 8 bits per channel).

    Raises:
        NoImagesError: if a photo is missing from the installed packages.

    Examples:
        >>> from keras_colorize.data import sample_photo_paths
        >>> [p.name for p in sample_photo_paths()][:2]
        ['astronaut.png', 'chelsea.png']
    """
    paths = []
    for name, (package, relative) in _SAMPLE_FILES.items():
        folder = _package_folder(package)
        path = folder / relative if folder is not None else None
        if path is None or not path.is_file():
            raise NoImagesError(f"sample photo {name!r} ({relative}) not found in the installed {package}")
        paths.append(path)
    return paths


def sample_photos(directory):
    """Copy the sample photos into a folder.

    Files that already exist there under the same name are left alone.

    Args:
        directory: str or os.PathLike. The folder; created (with its parents)
            when missing.

    Returns:
        list[pathlib.Path]: the photos in `directory`, in `SAMPLE_PHOTOS` order.

    Examples:
        >>> from keras_colorize.data import sample_photos
        >>> paths = sample_photos("photos/")  # doctest: +SKIP
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in sample_photo_paths():
        target = directory / source.name
        if not target.exists():
            shutil.copyfile(source, target)
        copies.append(target)
    return copies
