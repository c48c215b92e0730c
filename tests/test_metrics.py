"""Parity of keras_colorize.metrics with scikit-image (and a NumPy colourfulness) on real photos."""

import math
import os

import keras
import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.io
import skimage.metrics
import skimage.transform
import sklearn.datasets

from keras_colorize.color import lab_to_rgb, rgb_to_lab
from keras_colorize.metrics import (
    CIEDE2000,
    MAE255,
    PSNR,
    SSIM,
    Colorfulness,
    ColorfulnessGap,
    ciede2000,
    colorfulness,
    colorfulness_gap,
    default_metrics,
    mean_absolute_error_255,
    mean_ciede2000,
    psnr,
    ssim,
)

RTOL = 1e-3
SIZE = 128
SKIMAGE_DATA = os.path.dirname(skimage.data.__file__)
SKLEARN_IMAGES = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
PHOTOS = [
    os.path.join(SKIMAGE_DATA, "astronaut.png"),
    os.path.join(SKIMAGE_DATA, "chelsea.png"),
    os.path.join(SKIMAGE_DATA, "coffee.png"),
    os.path.join(SKLEARN_IMAGES, "china.jpg"),
]
METRIC_NAMES = ["psnr", "ssim", "mae", "colorfulness", "colorfulness_gap", "ciede2000"]
METRIC_CLASSES = [PSNR, SSIM, MAE255, Colorfulness, ColorfulnessGap, CIEDE2000]

# Sharma, Wu and Dalal (2005), Table 1: L*a*b* pairs and their published Delta E 2000.
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def load_photo(path, size=SIZE):
    image = skimage.io.imread(path)[..., :3]
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    return skimage.transform.resize(square, (size, size), anti_aliasing=True)


@pytest.fixture(scope="module")
def photos():
    """Four real photos, sRGB in [0, 1], float32, shape (4, 128, 128, 3)."""
    return np.stack([load_photo(path) for path in PHOTOS]).astype("float32")


@pytest.fixture(scope="module")
def predictions(photos):
    """Realistic predictions for `photos`: gray baseline, hue-rotated and noisy, float32 sRGB."""
    lab = to_numpy(rgb_to_lab(photos, data_format="channels_last"))
    lab[..., 1:] = 0.0
    gray = to_numpy(lab_to_rgb(lab, data_format="channels_last"))
    hsv = skimage.color.rgb2hsv(photos.astype("float64"))
    hsv[..., 0] = (hsv[..., 0] + 0.3) % 1.0
    hue_rotated = skimage.color.hsv2rgb(hsv)
    rng = np.random.default_rng(7)
    noisy = np.clip(photos + rng.normal(0.0, 0.05, photos.shape), 0.0, 1.0)
    return {
        "gray": gray.astype("float32"),
        "hue_rotated": hue_rotated.astype("float32"),
        "noisy": noisy.astype("float32"),
    }


def reference_colorfulness(images):
    """Hasler and Suesstrunk (2003) in NumPy float64, on the 0-255 scale; one value per image."""
    rgb = images.astype("float64") * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = np.sqrt(rg.std(axis=(1, 2)) ** 2 + yb.std(axis=(1, 2)) ** 2)
    offset = np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    return spread + 0.3 * offset


def reference_values(y_true, y_pred):
    """Per-image values of the six metrics from scikit-image and NumPy, float64."""
    y_true = y_true.astype("float64")
    y_pred = y_pred.astype("float64")
    pairs = list(zip(y_true, y_pred))
    return {
        "psnr": np.array(
            [skimage.metrics.peak_signal_noise_ratio(t, p, data_range=1) for t, p in pairs]
        ),
        "ssim": np.array(
            [
                skimage.metrics.structural_similarity(
                    t,
                    p,
                    data_range=1,
                    channel_axis=-1,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
                for t, p in pairs
            ]
        ),
        "mae": 255.0 * np.abs(y_true - y_pred).mean(axis=(1, 2, 3)),
        "colorfulness": reference_colorfulness(y_pred),
        "colorfulness_gap": np.abs(reference_colorfulness(y_pred) - reference_colorfulness(y_true)),
        "ciede2000": np.array(
            [
                skimage.color.deltaE_ciede2000(
                    skimage.color.rgb2lab(t), skimage.color.rgb2lab(p)
                ).mean()
                for t, p in pairs
            ]
        ),
    }


PER_IMAGE_FUNCTIONS = {
    "psnr": psnr,
    "ssim": ssim,
    "mae": mean_absolute_error_255,
    "colorfulness": lambda y_true, y_pred: colorfulness(y_pred),
    "colorfulness_gap": colorfulness_gap,
    "ciede2000": mean_ciede2000,
}


@pytest.mark.parametrize("kind", ["gray", "hue_rotated", "noisy"])
def test_per_image_functions_match_references_on_photos(photos, predictions, kind):
    y_pred = predictions[kind]
    expected = reference_values(photos, y_pred)
    for name, function in PER_IMAGE_FUNCTIONS.items():
        values = function(photos, y_pred)
        assert keras.ops.dtype(values) == "float32", name
        values = to_numpy(values)
        assert values.shape == (len(photos),), name
        np.testing.assert_allclose(values, expected[name], rtol=RTOL, err_msg=f"{kind}: {name}")


def test_colorfulness_of_the_photos_and_exact_values(photos):
    np.testing.assert_allclose(
        to_numpy(colorfulness(photos)), reference_colorfulness(photos), rtol=RTOL
    )
    # Flat colours: no spread, so C = 0.3 * sqrt(rg^2 + yb^2).
    flat = np.zeros((3, 16, 16, 3), "float32")
    flat[0, ..., 0] = 1.0  # pure red: rg = 255, yb = 127.5
    flat[1] = 0.5  # mid gray: 0
    flat[2, ..., 2] = 1.0  # pure blue: rg = 0, yb = -255
    expected = [0.3 * math.hypot(255.0, 127.5), 0.0, 0.3 * 255.0]
    np.testing.assert_allclose(to_numpy(colorfulness(flat)), expected, rtol=1e-6, atol=1e-4)


def test_mae_exact_value():
    y_true = np.full((2, 8, 8, 3), 100.0 / 255.0, "float32")
    y_pred = y_true.copy()
    y_pred[0] += 3.0 / 255.0
    y_pred[1, :4] -= 10.0 / 255.0  # half of the pixels off by 10
    values = to_numpy(mean_absolute_error_255(y_true, y_pred))
    np.testing.assert_allclose(values, [3.0, 5.0], rtol=1e-5)


def test_identical_images(photos):
    """SSIM is 1, the differences are 0, and PSNR is capped at 100 dB (scikit-image: inf)."""
    with np.errstate(divide="ignore"):
        assert math.isinf(
            skimage.metrics.peak_signal_noise_ratio(photos[0], photos[0], data_range=1)
        )
    np.testing.assert_allclose(to_numpy(psnr(photos, photos)), 100.0, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(ssim(photos, photos)), 1.0, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(mean_absolute_error_255(photos, photos)), 0.0)
    np.testing.assert_array_equal(to_numpy(mean_ciede2000(photos, photos)), 0.0)
    metric = PSNR()
    metric.update_state(photos, photos)
    assert float(metric.result()) == pytest.approx(100.0, rel=1e-6)


def test_ciede2000_sharma_test_pairs():
    """Pairs 10 and 14 have hues exactly 180 degrees apart: the non-wrapping branch applies."""
    lab_true = np.array([pair[0] for pair in SHARMA_PAIRS])
    lab_pred = np.array([pair[1] for pair in SHARMA_PAIRS])
    published = np.array([pair[2] for pair in SHARMA_PAIRS])
    values = to_numpy(ciede2000(lab_true.astype("float32"), lab_pred.astype("float32")))
    np.testing.assert_allclose(values, published, atol=1e-4)
    np.testing.assert_allclose(
        values, skimage.color.deltaE_ciede2000(lab_true, lab_pred), rtol=RTOL
    )


def random_lab_pairs(rng, count):
    """Random L*a*b* pairs with neutral colours, identical pairs and hue wrap-around cases."""

    def polar(chroma, hue_degrees):
        hue = np.deg2rad(hue_degrees)
        return chroma * np.cos(hue), chroma * np.sin(hue)

    lightness = rng.uniform(0.0, 100.0, (2, count))
    a, b = rng.uniform(-128.0, 127.0, (2, 2, count))
    quarter = count // 4
    # Hues straddling 0/360 degrees (difference above 180, mean across 0).
    block = slice(0, quarter)
    chroma = rng.uniform(1.0, 90.0, (2, quarter))
    a[0, block], b[0, block] = polar(chroma[0], rng.uniform(330.0, 360.0, quarter))
    a[1, block], b[1, block] = polar(chroma[1], rng.uniform(0.0, 30.0, quarter))
    # Hue differences above 180 degrees with hue sums below and above 360.
    block = slice(quarter, 2 * quarter)
    first, second = rng.uniform(0.0, 90.0, quarter), rng.uniform(190.0, 260.0, quarter)
    flip = rng.uniform(size=quarter) < 0.5
    first, second = np.where(flip, first + 100.0, first), np.where(flip, second + 100.0, second)
    a[0, block], b[0, block] = polar(chroma[0], first)
    a[1, block], b[1, block] = polar(chroma[1], second)
    # Neutral colours (a = b = 0) on one side, the other, or both.
    neutral = slice(2 * quarter, 2 * quarter + 30)
    a[0, neutral], b[0, neutral] = 0.0, 0.0
    neutral = slice(2 * quarter + 20, 2 * quarter + 50)
    a[1, neutral], b[1, neutral] = 0.0, 0.0
    # Identical pairs.
    same = slice(2 * quarter + 50, 2 * quarter + 70)
    lightness[1, same], a[1, same], b[1, same] = lightness[0, same], a[0, same], b[0, same]
    lab_true = np.stack([lightness[0], a[0], b[0]], axis=-1)
    lab_pred = np.stack([lightness[1], a[1], b[1]], axis=-1)
    return lab_true.astype("float32"), lab_pred.astype("float32")


def test_ciede2000_random_pairs_match_skimage():
    lab_true, lab_pred = random_lab_pairs(np.random.default_rng(0), 4000)
    expected = skimage.color.deltaE_ciede2000(
        lab_true.astype("float64"), lab_pred.astype("float64")
    )
    # Per-pixel layout (N, H, W, 3) -> (N, H, W).
    values = to_numpy(ciede2000(lab_true.reshape(4, 10, 100, 3), lab_pred.reshape(4, 10, 100, 3)))
    assert values.shape == (4, 10, 100)
    np.testing.assert_allclose(values.reshape(-1), expected, rtol=RTOL, atol=1e-4)
    # The special cases are really in the test: identical pairs, neutral colours,
    # and hue differences above 180 degrees with hue sums below and above 360.
    assert np.sum(expected == 0.0) >= 20
    assert np.sum(np.all(lab_true[:, 1:] == 0.0, axis=1)) >= 30
    hue_true = np.arctan2(lab_true[:, 2], lab_true[:, 1]) % (2 * np.pi)
    hue_pred = np.arctan2(lab_pred[:, 2], lab_pred[:, 1]) % (2 * np.pi)
    wrapped = np.abs(hue_pred - hue_true) > np.pi
    assert np.sum(wrapped & (hue_true + hue_pred < 2 * np.pi)) >= 200
    assert np.sum(wrapped & (hue_true + hue_pred >= 2 * np.pi)) >= 200


def test_metric_classes_accumulate_mean_over_images(photos, predictions):
    y_pred = predictions["noisy"]
    expected = reference_values(photos, y_pred)
    metrics = default_metrics()
    assert [m.name for m in metrics] == METRIC_NAMES
    assert [type(m) for m in metrics] == METRIC_CLASSES
    for metric in metrics:
        # Unequal batches: the mean over images differs from the mean of batch means.
        metric.update_state(photos[:1], y_pred[:1])
        metric.update_state(photos[1:], y_pred[1:])
        np.testing.assert_allclose(
            float(metric.result()), expected[metric.name].mean(), rtol=RTOL, err_msg=metric.name
        )
        metric.reset_state()
        weights = np.array([1.0, 0.0, 2.0, 1.0], "float32")
        metric.update_state(photos, y_pred, sample_weight=weights)
        np.testing.assert_allclose(
            float(metric.result()),
            np.average(expected[metric.name], weights=weights),
            rtol=RTOL,
            err_msg=metric.name,
        )


def test_default_metrics_are_fresh_instances():
    first, second = default_metrics(), default_metrics()
    assert all(a is not b for a, b in zip(first, second))


@pytest.mark.parametrize("cls", METRIC_CLASSES, ids=lambda cls: cls.__name__)
def test_serialization_round_trip(cls, photos, predictions):
    metric = cls(name=f"val_{cls.__name__.lower()}")
    config = metric.get_config()
    restored = cls.from_config(config)
    assert type(restored) is cls and restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(metric)
    assert serialized["registered_name"] == f"keras_colorize>{cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls and revived.name == metric.name
    for m in (metric, revived):
        m.update_state(photos[:2, :32, :32], predictions["hue_rotated"][:2, :32, :32])
    np.testing.assert_allclose(float(revived.result()), float(metric.result()), rtol=1e-6)


def test_metrics_in_compiled_evaluate_and_saved_model(tmp_path, photos, predictions):
    """The metrics run inside Keras' compiled evaluation step and survive a .keras round trip."""
    y_true = photos[:, :32, :32]
    x = predictions["hue_rotated"][:, :32, :32]
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Rescaling(0.9, name="dim")(inputs))
    model.compile(loss="mse", metrics=default_metrics())
    results = model.evaluate(x, y_true, batch_size=3, verbose=0, return_dict=True)
    expected = reference_values(y_true, 0.9 * x)
    for name in METRIC_NAMES:
        np.testing.assert_allclose(results[name], expected[name].mean(), rtol=RTOL, err_msg=name)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded = loaded.evaluate(x, y_true, batch_size=3, verbose=0, return_dict=True)
    for name in METRIC_NAMES:
        np.testing.assert_allclose(reloaded[name], results[name], rtol=1e-5, err_msg=name)


def test_bad_inputs_raise_one_line_value_errors(photos):
    with pytest.raises(ValueError, match="same shape"):
        psnr(photos, photos[:, :64])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        colorfulness(photos[..., 0])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(photos[:, :8, :8], photos[:, :8, :8])
    with pytest.raises(ValueError, match="last axis of size 3"):
        ciede2000(photos[..., :2], photos[..., :2])
