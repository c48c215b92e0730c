"""Image files: listing, decoding to 8-bit sRGB, grayscale detection and splits.

Nothing here imports Keras, so the command line can list and check files before
it chooses a backend.

Decoding rules (`load_image`):

- Pillow reads every format first. EXIF orientation is applied.
- Transparency (RGBA, LA, palette or colour-key transparency, premultiplied
  alpha) is composited on white.
- 16-bit grayscale (``I;16``) and 32-bit integer images are scaled to 8 bits
  with rounding (``round(v * 255 / 65535)``, so 65535 -> 255 and 32896 -> 128);
  values are never clipped at 255.
- 16-bit RGB(A) PNGs are reduced to 8 bits by Pillow itself (the high byte:
  exact for values that came from 8-bit data, otherwise within one level).
- TIFFs with more than 8 bits per sample, and TIFFs Pillow cannot read, are read
  with ``tifffile`` and scaled with rounding as above.
- Float images are taken as [0, 1] when their maximum is at most 1, as [0, 255]
  when it is at most 255, and are scaled by their maximum otherwise.
- CMYK and RGB images with an embedded ICC profile other than sRGB are converted
  to sRGB with that profile (Little CMS); without one, CMYK uses Pillow's
  conversion.
- GIFs and other animations give their first frame.
"""

import functools
import io
import os
import pathlib

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from keras_colorize.errors import UserInputError

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".bmp",
    ".dib",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
)
"""File name endings `list_images` accepts (compared case-insensitively)."""

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")
"""Video file name endings `keras-colorize colorize` reads and writes (compared case-insensitively)."""

GRAYSCALE_THRESHOLD = 4.0
"""Default chroma C*ab below which `is_grayscale` calls an image grayscale."""

GRAYSCALE_PERCENTILE = 99.0
"""Percentile of the per-pixel chroma compared with the threshold."""

GRAYSCALE_CHECK_SIZE = 64
"""Longest side of the reduced copy `is_grayscale` measures."""

# EXIF orientation value -> the Pillow transpose that displays the image upright.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_BITS_PER_SAMPLE_TAG = 258
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class SkippedImageWarning(UserWarning):
    """An image file was left out of a data set; the message names the file and why."""


class NoImagesError(UserInputError):
    """A folder (or file list) holds no usable image; the message names the folder."""


class UnreadableImageError(UserInputError):
    """A file cannot be decoded as an image; the message names the file and the reason."""


def list_images(root, extensions=IMAGE_EXTENSIONS):
    """List the image files under a folder, recursively.

    Hidden files and folders (names starting with ".") are left out.

    Args:
        root: str or os.PathLike. The folder to search.
        extensions: tuple of str. File name endings listed (case-insensitive).
            Defaults to `IMAGE_EXTENSIONS` (`colorize` adds `VIDEO_EXTENSIONS`).

    Returns:
        list[pathlib.Path]: the image files, sorted by path.

    Raises:
        NoImagesError: if the folder is missing, is not a folder, or holds no
            file with one of the `IMAGE_EXTENSIONS`.

    Examples:
        >>> from keras_colorize.data import list_images
        >>> files = list_images("photos/")  # doctest: +SKIP
    """
    root = pathlib.Path(root)
    if not root.exists():
        raise NoImagesError(f"{root}: folder not found")
    if not root.is_dir():
        raise NoImagesError(f"{root}: not a folder")
    found = []
    visited = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:  # a symbolic link back into the tree
            subfolders[:] = []
            continue
        visited.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found.extend(
            pathlib.Path(folder, name)
            for name in names
            if not name.startswith(".") and name.lower().endswith(extensions)
        )
    if not found:
        raise NoImagesError(f"{root}: no image files found (looked for {', '.join(extensions)}, recursively)")
    return sorted(found)


def split_files(source, validation_fraction, seed=0):
    """Split image files into training and validation files, deterministically.

    The split is stratified by the immediate sub-folder under the root (files
    directly in the root form one group), so every class keeps about the same
    share of validation files. The same files, fraction and seed always give
    the same split.

    Args:
        source: str, os.PathLike or list of paths. A folder (listed with
            `list_images`) or the image files themselves (grouped by their
            parent folder).
        validation_fraction: float. Share of the files that go to validation, in
            [0, 1). When it is above 0 and there are at least two files, at least
            one file goes to each side.
        seed: int. Seed of the shuffle. Defaults to 0.

    Returns:
        tuple[list[pathlib.Path], list[pathlib.Path]]: the training and the
        validation files, each sorted; disjoint, and together all the files.

    Raises:
        NoImagesError: if the folder is missing or holds no image file.
        UserInputError: if `validation_fraction` is not in [0, 1).
    """
    if not 0.0 <= float(validation_fraction) < 1.0:
        raise UserInputError(
            f"validation_fraction must be in [0, 1), got {validation_fraction!r}"
        )
    if isinstance(source, (str, os.PathLike)):
        root = pathlib.Path(source)
        files = list_images(root)
        groups = {}
        for path in files:
            parts = path.relative_to(root).parts
            groups.setdefault(parts[0] if len(parts) > 1 else "", []).append(path)
    else:
        files = sorted(pathlib.Path(p) for p in source)
        if not files:
            raise NoImagesError("no image files given")
        groups = {}
        for path in files:
            groups.setdefault(str(path.parent), []).append(path)

    n = len(files)
    total = int(round(n * float(validation_fraction)))
    if validation_fraction > 0 and n >= 2:
        total = min(max(total, 1), n - 1)
    keys = sorted(groups)
    # Largest-remainder quotas: each group gets its share, the total is exact.
    exact = [len(groups[k]) * total / n for k in keys]
    quotas = [int(np.floor(e)) for e in exact]
    by_remainder = sorted(range(len(keys)), key=lambda i: (-(exact[i] - quotas[i]), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1

    rng = np.random.default_rng(seed)
    train, validation = [], []
    for key, quota in zip(keys, quotas):
        members = groups[key]
        order = rng.permutation(len(members))
        validation.extend(members[i] for i in order[:quota])
        train.extend(members[i] for i in order[quota:])
    return sorted(train), sorted(validation)


def load_image(path, min_size=None):
    """Decode an image file to 8-bit sRGB, upright (EXIF orientation applied).

    See the module docstring for how transparency, 16-bit, float, palette, CMYK
    and ICC-tagged images are converted.

    Args:
        path: str or os.PathLike. The image file.
        min_size: int or None. When given, JPEGs are decoded at a reduced scale
            (1/2, 1/4 or 1/8) as long as the shorter side stays at least this
            many pixels; other formats decode at full size. Defaults to None
            (always full size).

    Returns:
        np.ndarray: sRGB in [0, 255], uint8, shape (H, W, 3).

    Raises:
        UnreadableImageError: if the file is missing, is not an image, is
            truncated or corrupt, or has a mode that cannot be converted.

    Examples:
        >>> from keras_colorize.data import load_image
        >>> image = load_image("photo.jpg")  # doctest: +SKIP
        >>> image.shape, image.dtype  # doctest: +SKIP
        ((480, 640, 3), dtype('uint8'))
    """
    path = pathlib.Path(path)
    try:
        with Image.open(path) as image:
            if image.format == "TIFF" and _tiff_bits(image) > 8:
                return _load_tiff(path)
            if min_size and image.format == "JPEG":
                _draft(image, int(min_size))
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb8(image, path)
    except UnreadableImageError:
        raise
    except FileNotFoundError:
        raise UnreadableImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UnreadableImageError(f"{path}: is a folder, not an image file") from None
    except UnidentifiedImageError:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _load_tiff(path)
        raise UnreadableImageError(f"{path}: not an image file Pillow can identify") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImageError(f"{path}: too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _load_tiff(path)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnreadableImageError(f"{path}: cannot decode ({reason})") from None


def _draft(image, min_size):
    """Ask the JPEG decoder for the smallest DCT scale that keeps min_size pixels."""
    width, height = image.size
    scale = min_size / min(width, height)
    if scale < 0.5:
        image.draft(None, (int(np.ceil(width * scale)), int(np.ceil(height * scale))))


def _tiff_bits(image):
    bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE_TAG, 8) if hasattr(image, "tag_v2") else 8
    if isinstance(bits, (tuple, list)):
        bits = max(bits) if bits else 8
    return int(bits)


def _scale_to_uint8(array):
    """Scale integer or float samples to uint8 with rounding (no clipping at 255)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        if peak > 255.0:
            values = values * (255.0 / peak)
        elif peak <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if array.dtype.itemsize == 1:  # int8
        return np.clip(array, 0, 255).astype(np.uint8)
    # 16-bit range; wider integers are clipped into it first.
    values = np.clip(array.astype(np.int64), 0, 65535)
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _to_rgb8(image, path):
    """Convert a loaded Pillow image of any mode to an (H, W, 3) uint8 sRGB array."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        gray = _scale_to_uint8(np.asarray(image))
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "CMYK":
        converted = _apply_icc(image)
        return np.asarray(converted if converted is not None else image.convert("RGB"))
    transparent = mode in _ALPHA_MODES or "transparency" in image.info
    if transparent:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise UnreadableImageError(f"{path}: cannot convert mode {mode} to RGB ({error})") from None
    if not transparent and mode == "RGB":
        converted = _apply_icc(image)
        if converted is not None:
            image = converted
    return np.asarray(image)


@functools.lru_cache(maxsize=1)
def _srgb_profile():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=32)
def _icc_transform(icc, mode):
    """The transform from an embedded profile to sRGB, or None when not needed."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if mode == "RGB" and "srgb" in ImageCms.getProfileDescription(profile).lower():
        return None
    return ImageCms.buildTransform(
        profile, _srgb_profile(), mode, "RGB", flags=ImageCms.Flags.NOCACHE
    )


def _apply_icc(image):
    """Convert to sRGB with the embedded ICC profile; None when absent, sRGB or broken."""
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    try:
        transform = _icc_transform(bytes(icc), image.mode)
        return None if transform is None else ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _load_tiff(path):
    """Read a TIFF Pillow cannot read (or reads at reduced precision) with tifffile."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            array = page.asarray()
            axes = page.axes
            photometric = int(page.photometric)
            orientation = page.tags.get("Orientation")
            orientation = int(orientation.value) if orientation is not None else 1
            extrasamples = tuple(page.extrasamples or ())
    except Exception as error:  # tifffile raises many types for bad files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UnreadableImageError(f"{path}: cannot decode TIFF ({reason})") from None

    # Bring the array to (H, W, samples).
    for axis in reversed(range(len(axes))):
        if axes[axis] not in "YXS" and array.shape[axis] == 1:
            array = np.take(array, 0, axis=axis)
            axes = axes[:axis] + axes[axis + 1 :]
    if "S" in axes:
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    else:
        array = array[..., None]
        axes += "S"
    if axes != "YXS":
        raise UnreadableImageError(f"{path}: unsupported TIFF layout (axes {page.axes})")

    samples = _scale_to_uint8(array)
    if photometric == 0:  # MINISWHITE
        samples = 255 - samples
    channels = samples.shape[-1]
    has_alpha = bool(extrasamples) and extrasamples[0] in (1, 2)
    premultiplied = has_alpha and extrasamples[0] == 1
    if photometric == 5 and channels >= 4:  # SEPARATED (CMYK)
        cmyk = np.ascontiguousarray(samples[..., :4])
        image = Image.frombytes("CMYK", (cmyk.shape[1], cmyk.shape[0]), cmyk.tobytes())
        image = image.convert("RGB")
    elif photometric in (0, 1) and channels in (1, 2):
        color = np.repeat(samples[..., :1], 3, axis=-1)
        alpha = samples[..., 1] if channels == 2 else None
        image = _composite_on_white(color, alpha, premultiplied and alpha is not None)
    elif photometric == 2 and channels >= 3:
        alpha = samples[..., 3] if has_alpha and channels >= 4 else None
        image = _composite_on_white(samples[..., :3], alpha, premultiplied)
    else:
        raise UnreadableImageError(
            f"{path}: unsupported TIFF colour layout (photometric {photometric}, {channels} samples)"
        )
    if orientation in _ORIENTATION_TRANSPOSE:
        image = image.transpose(_ORIENTATION_TRANSPOSE[orientation])
    return np.asarray(image)


def _composite_on_white(rgb, alpha, premultiplied=False):
    """(H, W, 3) and (H, W) uint8 arrays -> a Pillow RGB image composited on white."""
    rgb = np.ascontiguousarray(rgb)
    if alpha is None:
        return Image.fromarray(rgb)
    if premultiplied:  # colour already scaled by alpha: add the white background's share
        composited = rgb.astype(np.int32) + (255 - alpha.astype(np.int32))[..., None]
        return Image.fromarray(np.clip(composited, 0, 255).astype(np.uint8))
    rgba = np.ascontiguousarray(np.concatenate([rgb, alpha[..., None]], axis=-1))
    white = Image.new("RGBA", (rgba.shape[1], rgba.shape[0]), (255, 255, 255, 255))
    return Image.alpha_composite(white, Image.fromarray(rgba)).convert("RGB")


def is_grayscale(image, threshold=GRAYSCALE_THRESHOLD):
    """Whether an image has (almost) no colour.

    The image is reduced so its longer side is at most `GRAYSCALE_CHECK_SIZE`
    pixels (box filter, which also averages away compression noise), converted
    to CIE L*a*b* with scikit-image, and called grayscale when the 99th
    percentile of the chroma sqrt(a*^2 + b*^2) is below `threshold`. A colour
    photo with mostly neutral content still counts as colour when at least 1%
    of it is coloured. Toned monochrome prints (sepia, cyanotype) have a
    chroma well above the default threshold and count as colour.

    Args:
        image: np.ndarray. sRGB in [0, 255], uint8, shape (H, W, 3).
        threshold: float. Chroma (a*b* units) below which the image is
            grayscale. Defaults to `GRAYSCALE_THRESHOLD` (4.0).

    Returns:
        bool: True for a grayscale image.
    """
    from skimage.color import rgb2lab

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"is_grayscale expects a uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest > GRAYSCALE_CHECK_SIZE:
        scale = GRAYSCALE_CHECK_SIZE / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    lab = rgb2lab(image)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    return bool(np.percentile(chroma, GRAYSCALE_PERCENTILE) < threshold)


def resize_short_side(image, size):
    """Resize an image so its shorter side is `size` pixels, keeping its aspect ratio.

    Bicubic, antialiased when shrinking (Pillow). The longer side is rounded to
    the nearest pixel.

    Args:
        image: np.ndarray. sRGB in [0, 255], uint8, shape (H, W, 3).
        size: int. The new length of the shorter side.

    Returns:
        np.ndarray: sRGB in [0, 255], uint8, shape (H', W', 3) with min(H', W') == size.
    """
    height, width = image.shape[:2]
    short = min(height, width)
    if short == size:
        return image
    new_height = size if height == short else int(height * size / short + 0.5)
    new_width = size if width == short else int(width * size / short + 0.5)
    resized = Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BICUBIC)
    return np.asarray(resized)


def center_crop(image, size):
    """Cut the central `size` x `size` square out of an image.

    When the excess is odd, the extra pixel is left at the bottom/right.

    Args:
        image: np.ndarray. Any dtype, shape (H, W, C) with H, W >= size.
        size: int. Side of the square.

    Returns:
        np.ndarray: a view of `image`, shape (size, size, C).
    """
    height, width = image.shape[:2]
    top = (height - size) // 2
    left = (width - size) // 2
    return image[top : top + size, left : left + size]

