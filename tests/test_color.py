"""sRGB <-> CIE L*a*b* against scikit-image, round trips, dtypes, layouts, gradients."""

import keras
import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from keras_colorize.color import (
    AB_SCALE,
    denormalize_ab,
    denormalize_l,
    lab_to_rgb,
    model_outputs_to_rgb,
    normalize_ab,
    normalize_l,
    rgb_to_lab,
    rgb_to_lightness,
    rgb_to_model_inputs,
)
from tests.test_case import gradient, to_numpy

SPECIAL_COLOURS = np.array(
    [
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 1, 1],
        [1, 0, 1],
        [1, 1, 0],
        [0.04045, 0.04045, 0.04045],
        [0.04045, 0.0, 1.0],
        [0.0031308, 0.5, 0.04046],
    ]
)


@pytest.fixture(scope="module")
def colours():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.random((100_000, 3)), SPECIAL_COLOURS])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rgb_to_lab_matches_skimage(colours, dtype):
    expected = rgb2lab(colours[None])[0]
    got = to_numpy(rgb_to_lab(colours.astype(dtype)[None], "channels_last"))[0]
    error = np.abs(got.astype("float64") - expected).max(axis=0)
    assert (error <= 1e-3).all(), f"max abs error (L, a, b) = {error}"


def test_lab_to_rgb_matches_skimage_including_out_of_gamut():
    rng = np.random.default_rng(1)
    lab = np.stack(
        [rng.uniform(0, 100, 20_000), rng.uniform(-128, 127, 20_000), rng.uniform(-128, 127, 20_000)], axis=-1
    )
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = lab2rgb(lab[None])[0]
    got = to_numpy(lab_to_rgb(lab.astype("float32")[None], "channels_last"))[0]
    assert got.min() >= 0.0 and got.max() <= 1.0
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_round_trip(colours):
    rgb = colours.astype("float32")
    back = to_numpy(lab_to_rgb(rgb_to_lab(rgb, "channels_last"), "channels_last"))
    assert np.abs(back - rgb).max() <= 1e-4


def test_lightness_equals_lab_l(colours):
    rgb = colours.astype("float32")
    lab = to_numpy(rgb_to_lab(rgb, "channels_last"))
    lightness = to_numpy(rgb_to_lightness(rgb, "channels_last"))
    assert lightness.shape == rgb.shape[:-1] + (1,)
    np.testing.assert_allclose(lightness[..., 0], lab[..., 0], atol=1e-4)


def test_batched_channels_first_equals_channels_last(photos_64):
    last = to_numpy(rgb_to_lab(photos_64, "channels_last"))
    first = to_numpy(rgb_to_lab(np.transpose(photos_64, (0, 3, 1, 2)), "channels_first"))
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last, atol=1e-5)
    rgb_first = to_numpy(lab_to_rgb(first, "channels_first"))
    np.testing.assert_allclose(np.transpose(rgb_first, (0, 2, 3, 1)), photos_64, atol=1e-4)


@pytest.mark.parametrize("dtype, tolerance", [("float16", 0.2), ("bfloat16", 1.5)])
def test_low_precision_inputs_keep_their_dtype(photos_64, dtype, tolerance):
    images = keras.ops.cast(photos_64[:2], dtype)
    lab = rgb_to_lab(images, "channels_last")
    assert keras.backend.standardize_dtype(lab.dtype) == dtype
    reference = rgb2lab(to_numpy(keras.ops.cast(images, "float32")).astype("float64"))
    assert np.abs(to_numpy(keras.ops.cast(lab, "float32")) - reference).max() <= tolerance
    rgb = lab_to_rgb(lab, "channels_last")
    assert keras.backend.standardize_dtype(rgb.dtype) == dtype


def test_gradients_are_finite_everywhere_black_included():
    rng = np.random.default_rng(2)
    rgb = np.concatenate([SPECIAL_COLOURS, rng.random((64, 3))]).astype("float32")
    grad = gradient(lambda x: rgb_to_lab(x, "channels_last"), rgb)
    assert np.isfinite(grad).all()
    lab = to_numpy(rgb_to_lab(rgb, "channels_last"))
    grad = gradient(lambda x: lab_to_rgb(x, "channels_last"), lab)
    assert np.isfinite(grad).all()
    grad = gradient(lambda x: rgb_to_lightness(x, "channels_last"), rgb)
    assert np.isfinite(grad).all()


def test_model_space_normalisation(photos_64):
    l_norm, ab_norm = rgb_to_model_inputs(photos_64, "channels_last")
    l_norm, ab_norm = to_numpy(l_norm), to_numpy(ab_norm)
    lab = rgb2lab(photos_64.astype("float64"))
    np.testing.assert_allclose(l_norm[..., 0], lab[..., 0] / 50.0 - 1.0, atol=1e-4)
    np.testing.assert_allclose(ab_norm, lab[..., 1:] / AB_SCALE, atol=1e-4)
    assert l_norm.min() >= -1.0 and l_norm.max() <= 1.0 + 1e-6
    assert np.abs(ab_norm).max() <= 1.0
    np.testing.assert_allclose(to_numpy(denormalize_l(normalize_l(lab[..., :1]))), lab[..., :1], atol=1e-9)
    np.testing.assert_allclose(to_numpy(denormalize_ab(normalize_ab(lab[..., 1:]))), lab[..., 1:], atol=1e-9)
    back = to_numpy(model_outputs_to_rgb(l_norm, ab_norm, "channels_last"))
    np.testing.assert_allclose(back, photos_64, atol=1e-4)


def test_rejects_unknown_data_format(photos_64):
    with pytest.raises(ValueError, match="data_format"):
        rgb_to_lab(photos_64, "channels_middle")
