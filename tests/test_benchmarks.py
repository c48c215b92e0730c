"""The PyTorch reference of the benchmarks is the zoo's networks, layer for layer.

Parameter counts must match exactly, and the reference loaded with a zoo
model's weights must give the zoo model's outputs (inference mode) on a real photo.
"""

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import reference  # noqa: E402
from keras_colorize.color import rgb_to_model_inputs  # noqa: E402
from keras_colorize.models import PatchGANDiscriminator, UNetV1  # noqa: E402
from tests.test_case import to_numpy  # noqa: E402


def _randomize_batchnorm_statistics(model, seed=0):
    """Non-trivial moving statistics, so that the BatchNorm conversion is exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.1, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.8, 1.2, shape).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.1, shape).astype("float32"))


def _to_torch(array):
    """NHWC NumPy -> NCHW torch."""
    return torch.from_numpy(np.ascontiguousarray(np.transpose(array, (0, 3, 1, 2))))


def _nhwc(tensor):
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


def test_parameter_counts_match_the_zoo():
    assert reference.count_parameters(reference.UNetV1Reference()) == UNetV1().count_params() == 42_036_738
    assert reference.count_parameters(reference.PatchGANReference()) == PatchGANDiscriminator().count_params()
    assert PatchGANDiscriminator().count_params() == 2_767_425
    critic = PatchGANDiscriminator(normalization=None)
    assert reference.count_parameters(reference.PatchGANReference(normalization=None)) == critic.count_params()


def test_lab_conversion_matches_the_package(photos_64):
    l_ref, ab_ref = reference.rgb_to_model_inputs(_to_torch(photos_64))
    l_norm, ab_norm = rgb_to_model_inputs(photos_64, "channels_last")
    np.testing.assert_allclose(_nhwc(l_ref), to_numpy(l_norm), atol=1e-4)
    np.testing.assert_allclose(_nhwc(ab_ref), to_numpy(ab_norm), atol=1e-4)


def test_unet_v1_outputs_match_with_converted_weights(photos_64):
    keras.utils.set_random_seed(1)
    model = UNetV1()
    _randomize_batchnorm_statistics(model)
    photo = np.asarray(
        keras.ops.convert_to_numpy(keras.ops.image.resize(photos_64[:1], (128, 128), data_format="channels_last"))
    )
    l_norm = to_numpy(rgb_to_model_inputs(photo, "channels_last")[0])
    expected = to_numpy(model(l_norm, training=False))
    converted = reference.load_keras_weights(reference.UNetV1Reference(), model).eval()
    with torch.no_grad():
        actual = _nhwc(converted(_to_torch(l_norm)))
    assert np.std(expected) > 1e-3  # a non-trivial output
    np.testing.assert_allclose(actual, expected, atol=1e-4)


@pytest.mark.parametrize("normalization", ["batch", None])
def test_patchgan_outputs_match_with_converted_weights(photos_64, normalization):
    keras.utils.set_random_seed(2)
    model = PatchGANDiscriminator(normalization=normalization)
    _randomize_batchnorm_statistics(model)
    l_norm, ab = rgb_to_model_inputs(photos_64[:2], "channels_last")
    pairs = to_numpy(keras.ops.concatenate([l_norm, ab], axis=-1))
    expected = to_numpy(model(pairs, training=False))
    converted = reference.load_keras_weights(reference.PatchGANReference(normalization=normalization), model).eval()
    with torch.no_grad():
        actual = _nhwc(converted(_to_torch(pairs)))
    assert actual.shape == expected.shape == (2, 6, 6, 1)
    np.testing.assert_allclose(actual, expected, atol=1e-4)


def test_gpu_benchmark_peak_lookup_and_model_flops_arithmetic():
    from benchmarks import gpu

    assert gpu.peak_tflops_for("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu.peak_tflops_for("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops_for("NVIDIA A100-SXM4-40GB") == 312.0
    assert gpu.peak_tflops_for("cpu") is None
    flops = {"generator": 2e9, "discriminator": 1e9}
    train = {"benchmark": "gpu_train_step", "images_per_s": 100.0}
    assert gpu.achieved(train, flops, 989.0) == (1.4, round(1.4 / 989.0, 4))  # (3 x 2 + 8 x 1) GFLOP x 100 / s
    forward = {"benchmark": "gpu_generator_forward", "images_per_s": 500.0}
    assert gpu.achieved(forward, flops, None) == (1.0, None)
