"""`PhaseSplitConv2DTranspose` against Keras's `Conv2DTranspose` with the same weights:
outputs and gradients (inputs and kernel), on the current backend."""

import keras
import numpy as np
import pytest
from keras import layers

from keras_colorize.layers import PhaseSplitConv2DTranspose
from keras_colorize.layers.fast_paths import phase_split_conv_transpose
from tests.test_case import gradient, run_serialization_test, to_numpy
from tests.test_fast_paths import weight_gradients

CONFIGURATIONS = [
    dict(filters=6, kernel_size=4, strides=2, padding="same"),  # the phase split on JAX
    dict(filters=6, kernel_size=4, strides=2, padding="same", use_bias=False, activation="tanh"),
    dict(filters=6, kernel_size=3, strides=2, padding="same"),  # native on every backend
    dict(filters=6, kernel_size=4, strides=2, padding="valid"),
]


def pair(config, input_shape):
    """The layer and a Conv2DTranspose with its weights, both built for `input_shape`."""
    fast = PhaseSplitConv2DTranspose(**config)
    native = layers.Conv2DTranspose(**config)
    fast.build(input_shape)
    native.build(input_shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") * 0.2 for w in native.get_weights()]
    native.set_weights(weights)
    fast.set_weights(weights)
    return fast, native


@pytest.mark.parametrize("config", CONFIGURATIONS, ids=lambda c: f"k{c['kernel_size']}-{c['padding']}-{len(c)}")
def test_outputs_and_gradients_equal_conv2d_transpose(config):
    input_shape = (2, 5, 7, 3)  # odd, non-square
    fast, native = pair(config, input_shape)
    x = np.random.default_rng(1).normal(size=input_shape).astype("float32")
    np.testing.assert_allclose(to_numpy(fast(x)), to_numpy(native(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient(fast, x), gradient(native, x), rtol=1e-4, atol=1e-4)
    for got, expected in zip(weight_gradients(fast, x), weight_gradients(native, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_phase_split_equals_conv_transpose_in_kernel_and_inputs():
    """The split itself (used on JAX), on every backend: outputs and both gradients."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 6, 3)).astype("float32")
    kernel = rng.normal(size=(4, 4, 5, 3)).astype("float32")

    def native(k, inputs=x):
        return keras.ops.conv_transpose(inputs, k, strides=2, padding="same")

    def split(k, inputs=x):
        return phase_split_conv_transpose(keras.ops.convert_to_tensor(inputs), k)

    np.testing.assert_allclose(to_numpy(split(kernel)), to_numpy(native(kernel)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        gradient(lambda k: split(k) ** 2, kernel), gradient(lambda k: native(k) ** 2, kernel), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        gradient(lambda v: split(kernel, v) ** 2, x), gradient(lambda v: native(kernel, v) ** 2, x), rtol=1e-4, atol=1e-4
    )


def test_serialization_keeps_the_conv2d_transpose_config():
    layer = PhaseSplitConv2DTranspose(4, 4, strides=2, padding="same", name="up")
    run_serialization_test(layer)
    assert set(layer.get_config()) == set(layers.Conv2DTranspose(4, 4, strides=2, padding="same").get_config())
