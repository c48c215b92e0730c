"""Adversarial and classification losses against direct NumPy / SciPy /
scikit-learn computations, and their gradients against closed forms."""

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
from keras import ops
from sklearn.metrics import accuracy_score, log_loss

from keras_colorize.losses import (
    class_accuracy,
    class_cross_entropy,
    class_kl_divergence,
    discriminator_bce_loss,
    generator_bce_loss,
    gradient_penalty,
    interpolate,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from tests.test_case import gradient, to_numpy


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def np_bce(logits, target):
    """Binary cross-entropy from logits, elementwise, in float64."""
    x = logits.astype("float64")
    return np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype("float64")))


def logits_batch(rng, shape=(4, 6, 6, 1), scale=3.0):
    return (rng.normal(size=shape) * scale).astype("float32")


# --- GAN (binary cross-entropy) -------------------------------------------------


@pytest.mark.parametrize("real_label", [0.9, 1.0])
def test_discriminator_bce_loss(real_label, rng):
    real, fake = logits_batch(rng), logits_batch(rng)
    expected = 0.5 * (np_bce(real, real_label).mean() + np_bce(fake, 0.0).mean())
    got = float(discriminator_bce_loss(real, fake, real_label=real_label))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_discriminator_bce_loss_default_is_one_sided_smoothing(rng):
    real, fake = logits_batch(rng), logits_batch(rng)
    np.testing.assert_allclose(
        float(discriminator_bce_loss(real, fake)), float(discriminator_bce_loss(real, fake, real_label=0.9)), rtol=0
    )
    # Zero logits: every term is log 2, whatever the targets.
    zeros = np.zeros((2, 3, 3, 1), "float32")
    np.testing.assert_allclose(float(discriminator_bce_loss(zeros, zeros)), np.log(2.0), rtol=1e-6)


def test_generator_bce_loss(rng):
    fake = logits_batch(rng)
    np.testing.assert_allclose(float(generator_bce_loss(fake)), np_bce(fake, 1.0).mean(), rtol=1e-5)


def test_bce_losses_are_finite_at_extreme_logits():
    extreme = np.array([[-80.0, -30.0, 0.0, 30.0, 80.0]], "float32")
    for value in (
        discriminator_bce_loss(extreme, extreme),
        generator_bce_loss(extreme),
    ):
        assert np.isfinite(float(value))
    np.testing.assert_allclose(float(generator_bce_loss(extreme)), np_bce(extreme, 1.0).mean(), rtol=1e-5)


def test_bce_gradients_match_the_closed_form(rng):
    # d mean(BCE(t, x)) / dx = (sigmoid(x) - t) / count.
    real, fake = logits_batch(rng), logits_batch(rng)
    count = real.size
    grad_real = gradient(lambda x: discriminator_bce_loss(x, ops.convert_to_tensor(fake)), real)
    np.testing.assert_allclose(grad_real, 0.5 * (np_sigmoid(real) - 0.9) / count, rtol=1e-4, atol=1e-9)
    grad_fake = gradient(lambda x: generator_bce_loss(x), fake)
    np.testing.assert_allclose(grad_fake, (np_sigmoid(fake) - 1.0) / count, rtol=1e-4, atol=1e-9)


# --- WGAN-GP --------------------------------------------------------------------


def test_wasserstein_losses(rng):
    real, fake = logits_batch(rng), logits_batch(rng, (4, 5, 5, 1))
    np.testing.assert_allclose(
        float(wasserstein_critic_loss(real, fake)), fake.astype("float64").mean() - real.mean(), rtol=1e-5
    )
    np.testing.assert_allclose(float(wasserstein_generator_loss(fake)), -fake.astype("float64").mean(), rtol=1e-5)


def test_gradient_penalty_on_random_gradients(rng):
    grads = rng.normal(size=(5, 8, 8, 3)).astype("float32") * 0.1
    norms = np.sqrt((grads.astype("float64") ** 2).sum(axis=(1, 2, 3)) + 1e-12)
    np.testing.assert_allclose(float(gradient_penalty(grads)), ((norms - 1.0) ** 2).mean(), rtol=1e-5)
    # Unit-norm gradients cost nothing.
    unit = grads / np.sqrt((grads**2).sum(axis=(1, 2, 3), keepdims=True))
    assert float(gradient_penalty(unit)) < 1e-10


def test_gradient_penalty_is_differentiable_at_zero_gradients():
    # epsilon sits inside the square root: the value is (sqrt(eps) - 1)^2 and
    # the gradient at g = 0 is exactly 0, not NaN.
    zeros = np.zeros((2, 4, 4, 3), "float32")
    np.testing.assert_allclose(float(gradient_penalty(zeros, epsilon=1e-4)), (0.01 - 1.0) ** 2, rtol=1e-6)
    grad = gradient(gradient_penalty, zeros)
    assert np.isfinite(grad).all() and not grad.any()


def test_gradient_penalty_of_a_linear_critic(rng):
    # critic(x) = <w, x> + b per sample: its input gradient is w at every point,
    # so the penalty is (sqrt(||w||^2 + eps) - 1)^2 exactly.
    shape = (4, 6, 6, 3)
    w = rng.normal(size=shape[1:]).astype("float32") * 0.05
    critic = keras.Sequential([keras.Input(shape[1:]), keras.layers.Flatten(), keras.layers.Dense(1)])
    critic.layers[-1].set_weights([w.reshape(-1, 1), np.array([0.3], "float32")])

    real, fake = rng.uniform(-1, 1, shape).astype("float32"), rng.uniform(-1, 1, shape).astype("float32")
    alpha = rng.uniform(0, 1, (shape[0], 1, 1, 1)).astype("float32")
    points = to_numpy(interpolate(real, fake, alpha))
    grads = gradient(critic, points)
    np.testing.assert_allclose(grads, np.broadcast_to(w, shape), rtol=1e-5, atol=1e-7)
    expected = (np.sqrt((w.astype("float64") ** 2).sum() + 1e-12) - 1.0) ** 2
    np.testing.assert_allclose(float(gradient_penalty(grads)), expected, rtol=1e-5)


def test_gradient_penalty_of_a_quadratic_critic(rng):
    # critic(x) = sum(a * x^2) / 2 per sample: input gradient a * x, a different
    # norm for every sample.
    shape = (3, 5, 5, 3)
    a = rng.uniform(0.1, 2.0, shape[1:]).astype("float32")
    points = rng.uniform(-1, 1, shape).astype("float32")
    grads = gradient(lambda x: 0.5 * ops.sum(ops.convert_to_tensor(a) * x * x, axis=(1, 2, 3)), points)
    np.testing.assert_allclose(grads, a * points, rtol=1e-5, atol=1e-7)
    norms = np.sqrt(((a.astype("float64") * points) ** 2).sum(axis=(1, 2, 3)) + 1e-12)
    np.testing.assert_allclose(float(gradient_penalty(grads)), ((norms - 1.0) ** 2).mean(), rtol=1e-5)


def test_interpolate(rng):
    shape = (4, 3, 3, 2)
    real, fake = rng.normal(size=shape).astype("float32"), rng.normal(size=shape).astype("float32")
    alpha = rng.uniform(0, 1, shape[0]).astype("float32")
    expected = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    np.testing.assert_allclose(to_numpy(interpolate(real, fake, alpha[:, None, None, None])), expected, rtol=1e-6)
    # A per-sample vector is one weight per sample, not per channel.
    np.testing.assert_allclose(to_numpy(interpolate(real, fake, alpha)), expected, rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(interpolate(real, fake, np.ones((4, 1, 1, 1), "float32"))), real)
    np.testing.assert_array_equal(to_numpy(interpolate(real, fake, np.zeros((4, 1, 1, 1), "float32"))), fake)


# --- classification -------------------------------------------------------------


def test_class_cross_entropy_matches_scikit_learn(rng):
    logits = logits_batch(rng, (8, 6), scale=2.0)
    labels = rng.integers(0, 6, 8)
    probabilities = scipy.special.softmax(logits.astype("float64"), axis=-1)
    expected = log_loss(labels, probabilities, labels=range(6))
    np.testing.assert_allclose(float(class_cross_entropy(labels, logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(class_cross_entropy(labels[:, None], logits)), expected, rtol=1e-5)


def test_class_kl_divergence_matches_scipy(rng):
    logits = logits_batch(rng, (6, 5), scale=2.0)
    teacher = rng.dirichlet(np.ones(5), 6)
    teacher[0] = [0.0, 0.5, 0.5, 0.0, 0.0]  # zeros contribute nothing
    student = scipy.special.softmax(logits.astype("float64"), axis=-1)
    expected = np.mean([scipy.stats.entropy(p, q) for p, q in zip(teacher, student)])
    got = float(class_kl_divergence(teacher.astype("float32"), logits))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # KL of a distribution with itself is zero.
    np.testing.assert_allclose(float(class_kl_divergence(student.astype("float32"), logits)), 0.0, atol=1e-6)


def test_class_kl_divergence_gradient_is_softmax_minus_teacher(rng):
    logits = logits_batch(rng, (4, 5), scale=2.0)
    teacher = rng.dirichlet(np.ones(5), 4)
    teacher[1] = [1.0, 0.0, 0.0, 0.0, 0.0]
    grad = gradient(lambda x: class_kl_divergence(ops.convert_to_tensor(teacher.astype("float32")), x), logits)
    expected = (scipy.special.softmax(logits.astype("float64"), axis=-1) - teacher) / 4
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_class_accuracy_matches_scikit_learn(rng):
    logits = logits_batch(rng, (16, 4))
    labels = rng.integers(0, 4, 16)
    expected = accuracy_score(labels, logits.argmax(axis=-1))
    assert 0.0 < expected < 1.0
    np.testing.assert_allclose(float(class_accuracy(labels, logits)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(class_accuracy(labels[:, None], logits)), expected, rtol=1e-6)
    assert float(class_accuracy(logits.argmax(axis=-1), logits)) == 1.0
