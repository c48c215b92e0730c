"""The a*b* bins and the colour-aware objectives, against direct NumPy computations."""

import keras
import numpy as np
import pytest
from skimage.color import rgb2lab

from keras_colorize import Colorizer
from keras_colorize.color.ab_bins import (
    AB_BIN_SIZE,
    NUM_AB_BINS,
    SOFT_ENCODING_NEIGHBOURS,
    SOFT_ENCODING_SIGMA,
    ab_bin_centers,
    ab_bin_prior,
    annealed_mean,
    nearest_ab_bin,
    rebalancing_weights,
    soft_encode_ab,
)
from keras_colorize.errors import UserInputError
from keras_colorize.losses import ColorizationLoss, colorfulness_gap_loss, rebalanced_ab_cross_entropy
from keras_colorize.metrics import colorfulness_gap
from keras_colorize.recipes.schema import LOSS_TERMS
from tests.test_case import gradient, to_numpy


def test_bins_are_the_in_gamut_squares_of_the_ab_plane():
    centers = ab_bin_centers()
    assert centers.shape == (NUM_AB_BINS, 2) == (261, 2)
    assert np.all(centers % AB_BIN_SIZE == 0)
    # Every 8-bit sRGB colour falls in a kept bin, and every bin holds some.
    colours = np.random.default_rng(0).integers(0, 256, (200_000, 3)) / 255.0
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], "float64")
    lab = rgb2lab(np.concatenate([colours, corners])[:, None, :])[:, 0]
    hit = {tuple(p) for p in (np.floor(lab[:, 1:] / AB_BIN_SIZE + 0.5) * AB_BIN_SIZE).astype(int)}
    kept = {tuple(p) for p in centers.astype(int)}
    assert hit <= kept and len(hit) > 0.95 * len(kept)


def test_soft_encoding_and_nearest_bin():
    centers = ab_bin_centers()
    ab = np.array([[[[12.0, -31.0], [0.0, 0.0]]]], "float32") / 128.0
    encoded = to_numpy(soft_encode_ab(ab))
    for pixel, value in zip(encoded[0, 0], ([12.0, -31.0], [0.0, 0.0])):
        distances = np.sum((centers - np.asarray(value)) ** 2, axis=-1)
        nearest = np.argsort(distances, kind="stable")[:SOFT_ENCODING_NEIGHBOURS]
        expected = np.zeros(NUM_AB_BINS)
        expected[nearest] = np.exp(-distances[nearest] / (2 * SOFT_ENCODING_SIGMA**2))
        np.testing.assert_allclose(pixel, expected / expected.sum(), atol=1e-5)
        assert np.count_nonzero(pixel) == SOFT_ENCODING_NEIGHBOURS
    np.testing.assert_array_equal(
        to_numpy(nearest_ab_bin(ab))[0, 0], [np.argmin(np.sum((centers - v) ** 2, -1)) for v in ([12, -31], [0, 0])]
    )


def test_annealed_mean():
    centers = ab_bin_centers()
    logits = np.random.default_rng(1).normal(0, 2, (3, NUM_AB_BINS)).astype("float32")
    for temperature in (1.0, 0.38):
        scaled = logits / temperature
        probabilities = np.exp(scaled - scaled.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        np.testing.assert_allclose(to_numpy(annealed_mean(logits, temperature)), probabilities @ centers / 128.0, atol=1e-5)
    # A cold softmax is the mode.
    np.testing.assert_allclose(to_numpy(annealed_mean(logits, 1e-4)), centers[logits.argmax(-1)] / 128.0, atol=1e-4)


def test_prior_and_rebalancing_weights():
    centers = ab_bin_centers()
    ab = np.tile(centers[[5, 5, 5, 40]] / 128.0, (2, 1)).reshape(1, 2, 4, 2)
    prior = ab_bin_prior([ab])
    assert prior[5] == pytest.approx(0.75) and prior[40] == pytest.approx(0.25) and prior.sum() == pytest.approx(1.0)
    weights = rebalancing_weights(prior, mix=0.5)
    squared = np.sum((centers[:, None] - centers[None]) ** 2, -1)
    smoothed = np.exp(-squared / (2 * 5.0**2)) @ prior
    smoothed /= smoothed.sum()
    expected = 1.0 / (0.5 * smoothed + 0.5 / NUM_AB_BINS)
    expected /= np.sum(smoothed * expected)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    assert np.sum(smoothed * weights) == pytest.approx(1.0, rel=1e-5)
    assert weights[40] > weights[5]  # the rarer colour counts more
    np.testing.assert_allclose(rebalancing_weights(prior, mix=1.0), 1.0, rtol=1e-6)


def test_rebalanced_cross_entropy_by_hand():
    rng = np.random.default_rng(2)
    ab_true = rng.uniform(-0.5, 0.5, (2, 4, 4, 2)).astype("float32")
    logits = rng.normal(0, 1, (2, 2, 2, NUM_AB_BINS)).astype("float32")
    weights = rng.uniform(0.5, 2.0, NUM_AB_BINS).astype("float32")
    got = to_numpy(rebalanced_ab_cross_entropy(ab_true, logits, weights))
    pooled = ab_true.reshape(2, 2, 2, 2, 2, 2).mean(axis=(2, 4))  # 2x2 average pooling
    centers = ab_bin_centers()
    expected = np.zeros(2)
    for n in range(2):
        total = 0.0
        for i in range(2):
            for j in range(2):
                distances = np.sum((centers - pooled[n, i, j] * 128.0) ** 2, -1)
                nearest = np.argsort(distances, kind="stable")[:5]
                target = np.zeros(NUM_AB_BINS)
                target[nearest] = np.exp(-(distances[nearest] - distances[nearest].min()) / 50.0)
                target /= target.sum()
                log_softmax = logits[n, i, j] - np.log(np.sum(np.exp(logits[n, i, j])))
                total += -weights[np.argmin(distances)] * np.sum(target * log_softmax)
        expected[n] = total / 4
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_colorfulness_gap_loss_is_the_metric_on_the_unit_scale_with_finite_gradients(photos_64):
    gray = np.repeat(photos_64.mean(axis=-1, keepdims=True), 3, axis=-1)
    # The floor under the square roots (1e-6) adds at most 2 sqrt(1e-6) / 255 = 8e-6 at a gray image.
    np.testing.assert_allclose(
        to_numpy(colorfulness_gap_loss(photos_64, gray)), to_numpy(colorfulness_gap(photos_64, gray)) / 255.0, atol=8e-6
    )
    half = 0.5 * (photos_64 + gray)
    np.testing.assert_allclose(
        to_numpy(colorfulness_gap_loss(photos_64, half)), to_numpy(colorfulness_gap(photos_64, half)) / 255.0, atol=1e-6
    )
    assert np.all(np.isfinite(gradient(lambda x: colorfulness_gap_loss(photos_64, x), gray)))  # no NaN at gray
    grads = gradient(lambda x: colorfulness_gap_loss(photos_64, x), half)
    assert np.all(np.isfinite(grads)) and np.abs(grads).max() > 0


def test_colorization_loss_weighs_its_terms(photos_64):
    rng = np.random.default_rng(3)
    images = photos_64[:2]
    outputs = {
        "ab": rng.uniform(-0.3, 0.3, (2, 64, 64, 2)).astype("float32"),
        "ab_logits": rng.normal(0, 1, (2, 32, 32, NUM_AB_BINS)).astype("float32"),
    }
    loss = ColorizationLoss({"l1": 2.0, "ab_classification": 0.5, "colorfulness": 3.0})
    values = {key: to_numpy(value) for key, value in loss.term_values(images, outputs).items()}
    lab = rgb2lab(images.astype("float64"))
    ab_true = (lab[..., 1:] / 128.0).astype("float32")
    np.testing.assert_allclose(values["l1"], 2.0 * np.abs(ab_true - outputs["ab"]).mean(axis=(1, 2, 3)), rtol=1e-3)
    np.testing.assert_allclose(
        values["ab_classification"], 0.5 * to_numpy(rebalanced_ab_cross_entropy(ab_true, outputs["ab_logits"])), rtol=1e-3
    )
    assert values["colorfulness"].shape == (2,) and np.all(values["colorfulness"] > 0)
    total = float(to_numpy(loss(images, outputs)))
    assert total == pytest.approx(float(np.mean(sum(values.values()))), rel=1e-5)
    assert ColorizationLoss.from_config(loss.get_config()).get_config() == loss.get_config()


def test_loss_terms_and_errors():
    assert set(LOSS_TERMS) == set(__import__("keras_colorize.losses.colorization", fromlist=["TERMS"]).TERMS)
    with pytest.raises(UserInputError, match="unknown loss term 'sharpness'"):
        ColorizationLoss({"sharpness": 1.0})
    with pytest.raises(UserInputError, match="must not be negative"):
        ColorizationLoss({"l1": -1.0})
    with pytest.raises(UserInputError, match="class_weights needs 261 values"):
        ColorizationLoss("ab_classification", class_weights=[1.0, 2.0])
    from keras_colorize.models import UNetV1

    colorizer = Colorizer(UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)), image_size=32)
    with pytest.raises(UserInputError, match="needs a generator with a classification head"):
        colorizer.compile(loss={"ab_classification": 1.0})


def test_legacy_string_losses_give_the_keras_loss_values(photos_64):
    from keras_colorize.models import UNetV1

    images = photos_64[:2, :32, :32]
    for name, keras_loss in (("l2", keras.losses.MeanSquaredError()), ("huber", keras.losses.Huber())):
        colorizer = Colorizer(UNetV1(encoder_filters=(8, 16), decoder_filters=(8,)), image_size=32)
        colorizer.compile(loss=name)
        prediction = colorizer(images)
        from keras_colorize.color import rgb_to_model_inputs

        _, ab_true = rgb_to_model_inputs(images, "channels_last")
        expected = float(to_numpy(keras_loss(ab_true, prediction)))
        got = float(to_numpy(colorizer.compute_loss(x=images, y_pred=prediction)))
        assert got == pytest.approx(expected, rel=1e-5)
