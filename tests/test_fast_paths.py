"""`FastConv2D` and `FastBatchNormalization` against Keras's own layers with the same
weights, on the current backend: outputs, input and weight gradients, second-order
gradients (the WGAN-GP penalty), moving statistics, fallbacks and serialization."""

import keras
import numpy as np
import pytest
from keras import layers, ops

from keras_colorize.layers import FastBatchNormalization, FastConv2D
from keras_colorize.layers.fast_paths import im2col_conv, im2col_kernel_gradient, same_padding, with_gradients
from keras_colorize.training.gradients import input_gradients, value_and_gradients
from tests.test_case import gradient, run_serialization_test, to_numpy

CONV_CONFIGURATIONS = [
    dict(filters=5, kernel_size=4, strides=2, padding="same"),  # with_gradients on JAX; asymmetric padding on odd sizes
    dict(filters=5, kernel_size=4, strides=1, padding="same", use_bias=False),
    dict(filters=5, kernel_size=3, strides=1, padding="same", activation="relu"),
    dict(filters=5, kernel_size=4, strides=2, padding="valid"),  # im2col on JAX
    dict(filters=5, kernel_size=4, strides=1, padding="valid", activation="tanh"),
    dict(filters=5, kernel_size=3, strides=1, padding="same", dilation_rate=2),
    dict(filters=6, kernel_size=3, strides=1, padding="same", groups=3),  # Keras's path everywhere
]
INPUT_SHAPES = [(2, 8, 10, 3), (2, 7, 9, 3)]


def random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=w.shape).astype("float32") * 0.3 + 0.1 * (w.ndim == 1) for w in layer.get_weights()]


def conv_pair(config, input_shape):
    fast, native = FastConv2D(**config), layers.Conv2D(**config)
    fast.build(input_shape)
    native.build(input_shape)
    weights = random_weights(native)
    native.set_weights(weights)
    fast.set_weights(weights)
    return fast, native


def weight_gradients(layer, x):
    """d sum(layer(x)^2) / d weights, through the trainers' gradient seam."""
    x = ops.convert_to_tensor(x)
    (_, _), grads = value_and_gradients(lambda: (ops.sum(layer(x, training=True) ** 2), None), layer.trainable_variables)
    return [to_numpy(g) for g in grads]


@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=("even", "odd"))
@pytest.mark.parametrize("config", CONV_CONFIGURATIONS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items() if k != "filters"))
def test_conv_outputs_and_gradients_equal_conv2d(config, input_shape):
    fast, native = conv_pair(config, input_shape)
    x = np.random.default_rng(1).normal(size=input_shape).astype("float32")
    np.testing.assert_allclose(to_numpy(fast(x)), to_numpy(native(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient(lambda v: fast(v) ** 2, x), gradient(lambda v: native(v) ** 2, x), rtol=1e-4, atol=1e-4)
    for got, expected in zip(weight_gradients(fast, x), weight_gradients(native, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "input_shape", [(2, 18, 20, 3), (2, 17, 19, 3), (2, 8, 10, 3)], ids=("even-adjoint", "odd-im2col-adjoint", "few-outputs")
)
def test_strided_same_conv_paths_equal_conv2d(input_shape):
    """On JAX (CPU): XLA's forward with the transposed convolution (even sizes) or the im2col
    form (odd sizes) as input gradient, or im2col throughout at few output positions."""
    fast, native = conv_pair(dict(filters=5, kernel_size=4, strides=2, padding="same"), input_shape)
    x = np.random.default_rng(7).normal(size=input_shape).astype("float32")
    np.testing.assert_allclose(to_numpy(fast(x)), to_numpy(native(x)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradient(lambda v: fast(v) ** 2, x), gradient(lambda v: native(v) ** 2, x), rtol=1e-4, atol=1e-4)
    for got, expected in zip(weight_gradients(fast, x), weight_gradients(native, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    expected = gradient_penalty_kernel_gradient(native, x)
    np.testing.assert_allclose(gradient_penalty_kernel_gradient(fast, x), expected, rtol=1e-4, atol=1e-4)


def gradient_penalty_kernel_gradient(layer, x):
    """d/d kernel of mean((|d sum(layer(x)) / dx| - 1)^2): the WGAN-GP penalty's second order."""

    def penalty():
        grads = input_gradients(lambda v: layer(v), ops.convert_to_tensor(x))
        norms = ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)
        return ops.mean(ops.square(norms - 1.0)), None

    (_, _), grads = value_and_gradients(penalty, [layer.kernel])
    return to_numpy(grads[0])


@pytest.mark.parametrize("strides,padding", [(1, "valid"), (2, "valid"), (2, "same")])
@pytest.mark.parametrize("size", [8, 7], ids=("even", "odd"))
def test_conv_second_order_gradient_equals_conv2d(strides, padding, size):
    config = dict(filters=4, kernel_size=4, strides=strides, padding=padding)
    fast, native = conv_pair(config, (2, size, size, 3))
    x = np.random.default_rng(2).normal(size=(2, size, size, 3)).astype("float32")
    expected = gradient_penalty_kernel_gradient(native, x)
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(gradient_penalty_kernel_gradient(fast, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="with_gradients is a JAX custom VJP (the JAX path of FastConv2D and PhaseSplitConv2DTranspose)")
def test_with_gradients_computes_the_forward_and_the_given_gradients():
    import jax
    import jax.numpy as jnp

    function = with_gradients(lambda x, k: x * k, lambda g, x, k: 3.0 * g * k**2, lambda g, x, k: 6.0 * g * x * k)
    x, k = jnp.asarray(2.0), jnp.asarray(5.0)
    assert float(function(x, k)) == 10.0
    assert [float(g) for g in jax.grad(function, (0, 1))(x, k)] == [75.0, 60.0]
    assert float(jax.grad(jax.grad(function, 0), 1)(x, k)) == 30.0  # second order, of the given gradient


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
def test_im2col_equals_conv_on_every_backend(strides):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 7, 8, 3)).astype("float32")
    kernel = rng.normal(size=(4, 3, 3, 5)).astype("float32")
    expected = to_numpy(ops.conv(x, kernel, strides=strides, padding="valid"))
    got = to_numpy(im2col_conv(ops.convert_to_tensor(x), ops.convert_to_tensor(kernel), strides))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
def test_im2col_kernel_gradient_equals_the_convolutions(strides):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 7, 8, 3)).astype("float32")
    kernel = rng.normal(size=(4, 3, 3, 5)).astype("float32")
    x, output_gradient = ops.convert_to_tensor(x), ops.convert_to_tensor(rng.normal(size=(2, 4, 6, 5)).astype("float32")[:, :: strides[0], :: strides[1]])
    variable = keras.Variable(kernel)

    def inner_product():
        return ops.sum(ops.conv(x, variable.value, strides=strides, padding="valid") * output_gradient), None

    (_, _), (expected,) = value_and_gradients(inner_product, [variable])
    got = im2col_kernel_gradient(x, output_gradient, kernel.shape, strides)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,kernel_size,stride,expected", [(8, 4, 2, (1, 1)), (7, 4, 2, (1, 2)), (9, 3, 1, (1, 1)), (5, 1, 1, (0, 0))])
def test_same_padding_is_tensorflows(size, kernel_size, stride, expected):
    assert same_padding(size, kernel_size, stride) == expected


def batch_norm_pair(input_shape, **kwargs):
    fast, native = FastBatchNormalization(**kwargs), layers.BatchNormalization(**kwargs)
    fast.build(input_shape)
    native.build(input_shape)
    channels = input_shape[-1]
    weights = [
        np.linspace(0.5, 1.5, channels),  # gamma
        np.linspace(-0.2, 0.2, channels),  # beta
        np.linspace(-0.3, 0.3, channels),  # moving mean
        np.linspace(0.5, 2.0, channels),  # moving variance
    ]
    weights = [w.astype("float32") for w in weights]
    fast.set_weights(weights)
    native.set_weights(weights)
    return fast, native


@pytest.mark.parametrize("training", [True, False], ids=("training", "inference"))
def test_batch_norm_outputs_gradients_and_moving_statistics_equal_keras(training):
    input_shape = (4, 5, 6, 3)
    fast, native = batch_norm_pair(input_shape, momentum=0.9, epsilon=1e-3)
    x = (np.random.default_rng(4).normal(size=input_shape) * 2 + 0.5).astype("float32")
    np.testing.assert_allclose(to_numpy(fast(x, training=training)), to_numpy(native(x, training=training)), rtol=1e-5, atol=1e-5)
    for got, expected in zip(fast.non_trainable_weights, native.non_trainable_weights):
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=1e-6, atol=1e-6)
    if training:
        assert not np.allclose(to_numpy(fast.moving_mean), np.linspace(-0.3, 0.3, 3))

    def input_gradient(layer):  # through the trainers' seam, which keeps the moving-statistics updates
        return to_numpy(input_gradients(lambda v: layer(v, training=training) ** 3, ops.convert_to_tensor(x)))

    np.testing.assert_allclose(input_gradient(fast), input_gradient(native), rtol=1e-4, atol=1e-4)
    for got, expected in zip(weight_gradients(fast, x), weight_gradients(native, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_batch_norm_falls_back_for_masks_other_axes_and_half_precision():
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 5)).astype("float32")
    fast, native = FastBatchNormalization(axis=1), layers.BatchNormalization(axis=1)
    np.testing.assert_allclose(to_numpy(fast(x, training=True)), to_numpy(native(x, training=True)), rtol=1e-5, atol=1e-5)
    half = FastBatchNormalization(dtype="mixed_float16")
    out = half(x.astype("float16"), training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert np.isfinite(to_numpy(out)).all()
    flat = np.random.default_rng(6).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(FastBatchNormalization()(flat, training=True)), to_numpy(layers.BatchNormalization()(flat, training=True)), atol=1e-5
    )


@pytest.mark.parametrize("layer", [FastConv2D(4, 3, padding="same", name="conv"), FastBatchNormalization(momentum=0.8, name="bn")], ids=("conv", "bn"))
def test_serialization_keeps_the_keras_config(layer):
    run_serialization_test(layer)
    native = layers.Conv2D(4, 3) if isinstance(layer, FastConv2D) else layers.BatchNormalization()
    assert set(layer.get_config()) == set(native.get_config())
