"""`keras_colorize.training.optimizers.Adam` against `keras.optimizers.Adam` on the current
backend (on PyTorch it runs PyTorch's fused kernel): updates, schedules, loss scaling,
serialization, and the names that resolve to it."""

import keras
import numpy as np
import pytest

from keras_colorize.training.optimizers import Adam, get_optimizer
from tests.test_case import to_numpy

SHAPES = [(4, 4, 3, 8), (8,), (16, 5)]


def run_updates(optimizer, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.normal(size=shape).astype("float32")) for shape in SHAPES]
    for _ in range(steps):
        grads = [keras.ops.convert_to_tensor(rng.normal(size=shape).astype("float32")) for shape in SHAPES]
        optimizer.apply(grads, variables)
    return [to_numpy(variable) for variable in variables], optimizer


@pytest.mark.parametrize(
    "arguments",
    [
        dict(learning_rate=1e-2, beta_1=0.5),
        dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=2, decay_rate=0.5), epsilon=1e-3),
        dict(learning_rate=1e-2, amsgrad=True),  # Keras's update on every backend
        dict(learning_rate=1e-2, weight_decay=0.1, clipnorm=1.0),
    ],
    ids=("pix2pix", "schedule-large-epsilon", "amsgrad", "weight-decay-clipnorm"),
)
def test_updates_equal_keras_adam(arguments):
    got, optimizer = run_updates(Adam(**arguments))
    expected, reference = run_updates(keras.optimizers.Adam(**arguments))
    for mine, theirs in zip(got, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(optimizer.variables, reference.variables):
        np.testing.assert_allclose(to_numpy(mine), to_numpy(theirs), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="Keras's LossScaleOptimizer applies eagerly only on TensorFlow and PyTorch; on JAX the trainers' float16 runs cover it (tests/test_mixed_precision.py)",
)
def test_updates_under_loss_scaling_equal_keras_adam():
    got, _ = run_updates(keras.optimizers.LossScaleOptimizer(Adam(learning_rate=1e-2)))
    expected, _ = run_updates(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(learning_rate=1e-2)))
    for mine, theirs in zip(got, expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_serialization_round_trip():
    optimizer = Adam(learning_rate=3e-4, beta_1=0.5, epsilon=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(optimizer))
    assert type(restored) is Adam
    assert restored.get_config() == optimizer.get_config()


def test_adam_names_resolve_to_this_adam():
    assert type(get_optimizer("adam")) is Adam
    assert type(get_optimizer("Adam")) is Adam
    configured = get_optimizer({"class_name": "adam", "config": {"learning_rate": 5e-4, "beta_1": 0.5}})
    assert type(configured) is Adam and configured.beta_1 == 0.5
    assert np.isclose(float(to_numpy(configured.learning_rate)), 5e-4)
    assert isinstance(get_optimizer("sgd"), keras.optimizers.SGD)
    optimizer = keras.optimizers.Adam()
    assert get_optimizer(optimizer) is optimizer
