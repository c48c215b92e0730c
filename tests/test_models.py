"""The U-Net zoo: exact parameter counts, shapes, registry, serialization, saving."""

import keras
import numpy as np
import pytest

from keras_colorize.errors import UserInputError
from keras_colorize.models import UNetV1, UNetV2, get_model, get_model_class, list_models
from tests.test_case import run_model_saving_test, run_serialization_test, to_numpy

TINY = {"encoder_filters": (8, 16, 16), "decoder_filters": (16, 8)}


def non_trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


@pytest.mark.parametrize(
    "cls, total, non_trainable",
    [(UNetV1, 42_036_738, 9_216), (UNetV2, 26_565_314, 8_064)],
)
def test_published_parameter_counts(cls, total, non_trainable):
    model = cls()
    assert model.count_params() == total
    assert non_trainable_count(model) == non_trainable


def test_full_size_output_shapes():
    v1 = UNetV1()
    assert tuple(v1.compute_output_shape((1, 256, 256, 1))) == (1, 256, 256, 2)
    v2 = UNetV2()
    assert tuple(v2.compute_output_shape((1, 128, 128, 1))) == (1, 128, 128, 2)
    assert v1.size_divisor == 128 and v2.size_divisor == 64


def test_v1_has_skip_concatenations_and_v2_has_none():
    v1, v2 = UNetV1(**TINY), UNetV2(**TINY)
    concat = [layer for layer in v1.layers if isinstance(layer, keras.layers.Concatenate)]
    assert len(concat) == 2
    assert not any(isinstance(layer, keras.layers.Concatenate) for layer in v2.layers)
    # The decoder's first block reads twice the channels in v1 (skip) as in v2.
    assert v1.get_layer("decoder_2_deconv").kernel.shape[-1] == 2 * 16
    assert v2.get_layer("decoder_2_deconv").kernel.shape[-1] == 16


@pytest.mark.parametrize("cls", [UNetV1, UNetV2])
@pytest.mark.parametrize("size", [(32, 32), (16, 48)])
def test_any_divisible_size_and_tanh_range(cls, size):
    model = cls(**TINY)
    x = np.random.default_rng(0).uniform(-1, 1, (2, *size, 1)).astype("float32")
    y = to_numpy(model(x, training=False))
    assert y.shape == (2, *size, 2)
    assert np.abs(y).max() <= 1.0


def test_dropout_only_in_the_first_decoder_blocks():
    model = UNetV1(encoder_filters=(8, 8, 8, 8, 8), decoder_filters=(8, 8, 8, 8), dropout_blocks=3)
    dropout = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout))
    assert dropout == ["decoder_1_dropout", "decoder_2_dropout", "decoder_3_dropout"]


@pytest.mark.parametrize("cls", [UNetV1, UNetV2])
def test_serialization_and_saving(cls, tmp_path):
    model = cls(**TINY)
    clone = run_serialization_test(model)
    assert clone.count_params() == model.count_params()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 1)).astype("float32")
    run_model_saving_test(model, x, tmp_path / "model.keras")


def test_registry_is_the_zoo():
    assert {"UNetV1", "UNetV2"} <= set(list_models())
    assert "Colorizer" not in list_models()
    assert get_model_class("UNetV2") is UNetV2
    model = get_model("UNetV1", **TINY)
    assert isinstance(model, UNetV1)
    with pytest.raises(UserInputError, match="unknown model 'UNetV3'.*UNetV1"):
        get_model("UNetV3")


def test_mismatched_depths_are_a_clear_error():
    with pytest.raises(UserInputError, match="one decoder block fewer"):
        UNetV1(encoder_filters=(8, 16, 32), decoder_filters=(16,))


def test_generators_share_the_order_of_their_common_arguments():
    """The zoo's generators name and order the arguments they share the same way."""
    import inspect

    from keras_colorize.models import ChromaGANGenerator

    shared = ("encoder_filters", "decoder_filters", "dropout_blocks", "dropout_rate")
    for cls in (UNetV1, UNetV2, ChromaGANGenerator):
        names = list(inspect.signature(cls).parameters)
        assert [name for name in names if name in shared] == list(shared), cls.__name__
