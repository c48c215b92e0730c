"""Test helpers for the data module: real photos and odd image files made on the fly."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def wheel_photo(name):
    """Path of a real photo shipped in scikit-image's or scikit-learn's wheel."""
    if name in ("china.jpg", "flower.jpg"):
        import sklearn.datasets

        return Path(os.path.dirname(sklearn.datasets.__file__)) / "images" / name
    import skimage.data

    return Path(os.path.dirname(skimage.data.__file__)) / name


def photo(name="astronaut.png", short_side=None):
    """A real photo as sRGB uint8 (H, W, 3), optionally resized so its shorter side is `short_side`."""
    image = Image.open(wheel_photo(name)).convert("RGB")
    if short_side is not None:
        scale = short_side / min(image.size)
        size = (max(short_side, round(image.width * scale)), max(short_side, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image)


def save(array, path, **params):
    """Save a uint8 array with Pillow (format from the suffix); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **params)
    return path


def write_png16(path, array):
    """Write a 16-bit PNG (gray, gray+alpha, RGB or RGBA from 1-4 channels) without Pillow.

    Pillow cannot write 16-bit colour PNGs, so the file is put together from its
    chunks (filter type 0 on every row, one zlib stream).
    """
    array = np.asarray(array, dtype=np.uint16)
    if array.ndim == 2:
        array = array[..., None]
    height, width, channels = array.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    Path(path).write_bytes(signature + chunks)
    return Path(path)


def write_corrupt_jpeg(path, keep=20, seed=0):
    """A JPEG whose bytes after the first `keep` (the SOI and JFIF header) are random."""
    good = save(photo("astronaut.png", 64), Path(path).with_suffix(".tmp.jpg"), format="JPEG")
    data = good.read_bytes()
    good.unlink()
    noise = np.random.default_rng(seed).integers(0, 256, len(data) - keep, dtype=np.uint8).tobytes()
    Path(path).write_bytes(data[:keep] + noise)
    return Path(path)


def write_truncated(path, array, **params):
    """Save an image and cut the file in half."""
    save(array, path, **params)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)
