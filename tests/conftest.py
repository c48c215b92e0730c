"""Shared fixtures. Each test process runs one Keras backend (KERAS_BACKEND)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def pytest_report_header(config):
    return f"keras backend: {os.environ.get('KERAS_BACKEND', 'tensorflow (default)')}"


@pytest.fixture(scope="session", autouse=True)
def fast_jax_initializers():
    """Under JAX, the partitionable threefry generator compiles for seconds per new
    kernel shape on CPU; the classic generator draws the same distributions and
    compiles fast. Applies to the test processes only."""
    import keras

    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    previous = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    yield
    jax.config.update("jax_threefry_partitionable", previous)


def _wheel_photo_paths():
    import skimage.data
    import sklearn.datasets

    skimage_dir = Path(skimage.data.__file__).parent
    sklearn_dir = Path(sklearn.datasets.__file__).parent / "images"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
    return [skimage_dir / n for n in names] + [sklearn_dir / "china.jpg", sklearn_dir / "flower.jpg"]


@pytest.fixture(scope="session")
def photo_paths():
    """Real colour photos that ship inside the scikit-image and scikit-learn wheels."""
    return _wheel_photo_paths()


@pytest.fixture(scope="session")
def photos_64():
    """The real photos, centre-cropped and resized to 64x64: sRGB float32 in [0, 1], (7, 64, 64, 3)."""
    arrays = []
    for path in _wheel_photo_paths():
        image = Image.open(path).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((64, 64), Image.Resampling.LANCZOS)
        arrays.append(np.asarray(image, "float32") / 255.0)
    return np.stack(arrays)
