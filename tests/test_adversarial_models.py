"""PatchGAN discriminator / WGAN critic and the ChromaGAN-style generator:
exact parameter counts, output shapes, receptive field, branch wiring,
registry, serialization and saving."""

import keras
import numpy as np
import pytest
import skimage.color

from keras_colorize import Colorizer
from keras_colorize.errors import UserInputError
from keras_colorize.models import ChromaGANGenerator, PatchGANDiscriminator, get_model, list_models
from tests.test_case import gradient, run_model_saving_test, run_serialization_test, to_numpy

TINY_CRITIC = {"filters": (8, 8, 8, 8)}


# 64x64 input: encoder 32, 16, 8, 4, 2 (a 2x2 bottleneck, so the fused vector is
# broadcast); branch from encoder_3 (8x8x8) through 2 blocks to 2x2x8. Equal
# widths keep the number of distinct weight shapes (and JAX compilations) small.
TINY_CHROMA = {
    "num_classes": 5,
    "encoder_filters": (8, 8, 8, 8, 8),
    "decoder_filters": (8, 8, 8, 8),
    "branch_filters": (8, 8),
    "branch_from": 3,
    "fusion_units": (16, 8),
    "head_units": (16,),
    "image_size": 64,
}


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def layer_params(model, prefixes):
    return sum(layer.count_params() for layer in model.layers if layer.name.startswith(prefixes))


def model_lab(photos):
    """Model-space L and ab in [-1, 1], shape (N, H, W, 3), of sRGB photos in [0, 1]
    (scikit-image's CIE LAB, the definition keras_colorize.color follows)."""
    lab = skimage.color.rgb2lab(photos)
    return np.concatenate([lab[..., :1] / 50.0 - 1.0, lab[..., 1:] / 128.0], axis=-1).astype("float32")


def model_l(photos):
    """Model-space L in [-1, 1], shape (N, H, W, 1), of sRGB photos in [0, 1]."""
    return model_lab(photos)[..., :1]


def predict(model, x):
    """Inference-mode outputs as NumPy (one compiled call; cheap on every backend)."""
    return model.predict_on_batch(x)


# --- PatchGAN -------------------------------------------------------------------


def test_patchgan_parameter_counts_and_output_shape():
    # 4x4 kernels, 3 input channels (L, a, b):
    #   block_1: 4*4*3*64 + 64 (bias, no BatchNorm)        =     3,136
    #   block_2: 4*4*64*128 (no bias) + 4*128 (BatchNorm)   =   131,584
    #   block_3: 4*4*128*256 + 4*256                        =   525,312
    #   block_4: 4*4*256*512 + 4*512                        = 2,099,200
    #   logits:  4*4*512*1 + 1                              =     8,193
    #   total                                               = 2,767,425
    # of which BatchNorm moving mean and variance: 2*(128+256+512) = 1,792.
    model = PatchGANDiscriminator()
    assert model.count_params() == 2_767_425
    assert count(model.non_trainable_weights) == 1_792
    # 256 -> 128 -> 64 -> 32 (stride 2, pad 1) -> 31 -> 30 (stride 1, pad 1).
    assert tuple(model.compute_output_shape((1, 256, 256, 3))) == (1, 30, 30, 1)
    assert model.receptive_field == 70

    # Without normalisation every convolution keeps its bias and there is no
    # BatchNorm: 3,136 + (131,072+128) + (524,288+256) + (2,097,152+512) + 8,193.
    critic = PatchGANDiscriminator(normalization=None)
    assert critic.count_params() == 2_764_737
    assert not critic.non_trainable_weights


def test_critic_has_no_batchnorm_and_discriminator_has_bias_free_convolutions():
    critic = PatchGANDiscriminator(normalization=None, **TINY_CRITIC)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    assert all(layer.use_bias for layer in critic.layers if isinstance(layer, keras.layers.Conv2D))

    model = PatchGANDiscriminator(**TINY_CRITIC)
    bn = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert bn == ["block_2_bn", "block_3_bn", "block_4_bn"]
    biased = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.use_bias)
    assert biased == ["block_1_conv", "logits"]


# Each convolution pads by 1, so the window of logit o starts at
# o * 8 - (1*1 + 1*2 + 1*4 + 1*8 + 1*8) = 8 * o - 23 (padding times the product
# of the strides before it) and spans receptive_field = 70 input pixels.
def window(o, field=70):
    return 8 * o - 23, 8 * o - 23 + field - 1


def test_receptive_field_gradient_support():
    # 96 -> 48 -> 24 -> 12 -> 11 -> 10 logits; logit (5, 5) sees rows/columns 17..86.
    keras.utils.set_random_seed(1)
    critic = PatchGANDiscriminator(normalization=None, **TINY_CRITIC)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    grad = gradient(lambda v: critic(v)[:, 5, 5, 0], x)
    rows = np.flatnonzero(np.abs(grad).sum(axis=(0, 2, 3)))
    cols = np.flatnonzero(np.abs(grad).sum(axis=(0, 1, 3)))
    first, last = window(5)
    assert (first, last) == (17, 86)
    np.testing.assert_array_equal(rows, np.arange(first, last + 1))
    np.testing.assert_array_equal(cols, np.arange(first, last + 1))
    assert rows.size == critic.receptive_field == 70


def test_receptive_field_single_pixel_change():
    # All-zero input, random weights, zero biases, no normalisation: changing one
    # pixel changes exactly the logits whose 70x70 window contains it.
    keras.utils.set_random_seed(2)
    critic = PatchGANDiscriminator(normalization=None, **TINY_CRITIC)
    x = np.zeros((1, 96, 96, 3), "float32")
    base = predict(critic, x)[0, :, :, 0]
    row, col = 40, 50
    x[0, row, col, 1] = 1.0
    changed = predict(critic, x)[0, :, :, 0] != base
    expected_rows = [o for o in range(10) if window(o)[0] <= row <= window(o)[1]]
    expected_cols = [o for o in range(10) if window(o)[0] <= col <= window(o)[1]]
    assert expected_rows == list(range(0, 8)) and expected_cols == list(range(1, 10))
    expected = np.zeros((10, 10), bool)
    expected[np.ix_(expected_rows, expected_cols)] = True
    np.testing.assert_array_equal(changed, expected)


def test_patchgan_logits_on_real_photos(photos_64):
    logits = predict(PatchGANDiscriminator(**TINY_CRITIC), model_lab(photos_64))
    assert logits.dtype == np.float32
    # 64 -> 32 -> 16 -> 8 -> 7 -> 6.
    assert logits.shape == (7, 6, 6, 1)
    assert np.isfinite(logits).all()


def test_patchgan_bad_normalization_is_a_clear_error():
    with pytest.raises(UserInputError, match="normalization must be 'batch' or null, got 'instance'"):
        PatchGANDiscriminator(normalization="instance")


@pytest.mark.parametrize("normalization", ["batch", None])
def test_patchgan_serialization_and_saving(normalization, tmp_path):
    model = PatchGANDiscriminator(normalization=normalization, **TINY_CRITIC)
    clone = run_serialization_test(model)
    assert clone.count_params() == model.count_params()
    assert clone.receptive_field == 70
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    loaded = run_model_saving_test(model, x, tmp_path / "critic.keras")
    assert loaded.normalization == normalization


# --- ChromaGAN ------------------------------------------------------------------


def test_chromagan_parameter_counts_and_shapes():
    model = ChromaGANGenerator()
    # The U-Net: encoder 1,088 + 131,584 + 525,312 + 2,099,200 + 4 * 4,196,352;
    # decoder 8,390,656 (first block, 1,024 input channels after the fusion)
    # + 3 * 8,390,656 + 4,195,328 + 1,049,088 + 262,400, ab output 4,098.
    assert layer_params(model, ("encoder_",)) == 19_542_592
    assert layer_params(model, ("decoder_", "ab_output")) == 39_073_538
    # Without the fusion the first decoder block reads the 512 bottleneck channels
    # only (4*4*512*512 = 4,194,304 fewer): the plain pix2pix U-Net, 54,421,826.
    plain = ChromaGANGenerator(fusion_units=(), head_units=())
    assert "fusion_concat" not in [layer.name for layer in plain.layers]
    assert layer_params(plain, ("encoder_", "decoder_", "ab_output")) == 54_421_826
    del plain
    # Branch 2,099,200 + 2 * 4,196,352; fusion 8,192*1,024 + 1,024 + 1,024*512 + 512;
    # head 8,192*2,048 + 2,048 + 2,048*1,024 + 1,024 + 1,024*205 + 205.
    assert layer_params(model, ("branch_",)) == 10_491_904
    assert layer_params(model, ("fusion_",)) == 8_914_432
    assert layer_params(model, ("head_", "class_logits")) == 19_087_565
    assert model.count_params() == 97_110_031
    # BatchNorm moving statistics: 2 * (encoder 2,944 + branch 1,536 + decoder 2,496 channels).
    assert count(model.non_trainable_weights) == 13_952

    shapes = model.compute_output_shape((1, 256, 256, 1))
    assert tuple(shapes["ab"]) == (1, 256, 256, 2)
    assert tuple(shapes["class_logits"]) == (1, 205)
    assert model.size_divisor == 256
    assert tuple(model.get_layer("encoder_3_act").output.shape) == (None, 32, 32, 256)
    assert tuple(model.get_layer("branch_flatten").output.shape) == (None, 4 * 4 * 512)
    assert model.get_layer("decoder_1_deconv").kernel.shape[-1] == 1024


def test_chromagan_outputs_on_real_photos(photos_64):
    keras.utils.set_random_seed(0)
    model = ChromaGANGenerator(**TINY_CHROMA)
    outputs = predict(model, model_l(photos_64))
    assert set(outputs) == {"ab", "class_logits"}
    ab, logits = outputs["ab"], outputs["class_logits"]
    assert ab.dtype == logits.dtype == np.float32
    assert ab.shape == (7, 64, 64, 2)
    assert np.abs(ab).max() <= 1.0 and np.abs(ab).max() > 0.0
    assert logits.shape == (7, 5)
    assert np.isfinite(logits).all()
    # The fused 8-vector is broadcast over the 2x2 bottleneck: 8 + 8 channels in.
    assert tuple(model.get_layer("fusion_broadcast").output.shape) == (None, 2, 2, 8)
    assert tuple(model.get_layer("fusion_concat").output.shape) == (None, 2, 2, 8 + 8)
    assert model.get_layer("decoder_1_deconv").kernel.shape[-1] == 8 + 8
    assert model.size_divisor == 32
    dropout = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout))
    assert dropout == [
        "decoder_1_dropout",
        "decoder_2_dropout",
        "decoder_3_dropout",
        "head_1_dropout",
    ]
    # The first encoder block: bias, no BatchNorm; the others: bias-free before BatchNorm.
    bn = {layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert "encoder_1_bn" not in bn and {"encoder_2_bn", "branch_1_bn", "decoder_1_bn"} <= bn
    assert model.get_layer("encoder_1_conv").use_bias
    assert not any(model.get_layer(f"encoder_{i}_conv").use_bias for i in range(2, 6))
    assert not model.get_layer("decoder_1_deconv").use_bias


def test_chromagan_branch_reads_the_third_encoder_block(photos_64):
    keras.utils.set_random_seed(0)
    model = ChromaGANGenerator(**TINY_CHROMA)
    assert model.get_layer("branch_1_conv").input is model.get_layer("encoder_3_act").output
    x = model_l(photos_64[:2])

    def outputs():
        result = predict(model, x)
        return result["ab"], result["class_logits"]

    ab, logits = outputs()
    # Encoder block 4 feeds only the U-Net: the class logits ignore it.
    kernel = model.get_layer("encoder_4_conv").kernel
    kernel.assign(to_numpy(kernel) * 2.0)
    ab_4, logits_4 = outputs()
    np.testing.assert_array_equal(logits_4, logits)
    assert not np.array_equal(ab_4, ab)
    # Encoder block 3 feeds both.
    kernel = model.get_layer("encoder_3_conv").kernel
    kernel.assign(to_numpy(kernel) * 2.0)
    _, logits_3 = outputs()
    assert not np.allclose(logits_3, logits)


def test_chromagan_in_a_colorizer(photos_64):
    colorizer = Colorizer(ChromaGANGenerator(**TINY_CHROMA), image_size=64)
    outputs = predict(colorizer, photos_64[:3])  # the generator's outputs, the class logits too
    ab = outputs["ab"]
    assert ab.shape == (3, 64, 64, 2) and outputs["class_logits"].shape == (3, TINY_CHROMA["num_classes"])
    assert np.abs(ab).max() <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"image_size": 48}, "image_size must be a multiple of 2 \\*\\* 5 = 32, got 48"),
        ({"decoder_filters": (8, 8)}, "one decoder block fewer"),
        ({"branch_from": 6}, "branch_from must be in 1..5, got 6"),
        ({"branch_filters": (8, 8, 8, 8)}, "multiple of 2 \\*\\* 7"),
        ({"num_classes": 0}, "num_classes must be at least 1"),
    ],
)
def test_chromagan_bad_configurations_are_clear_errors(overrides, message):
    with pytest.raises(UserInputError, match=message):
        ChromaGANGenerator(**{**TINY_CHROMA, **overrides})


def test_chromagan_serialization_and_saving(tmp_path, photos_64):
    model = ChromaGANGenerator(**TINY_CHROMA)
    clone = run_serialization_test(model)
    assert clone.count_params() == model.count_params()
    x = model_l(photos_64[:2])
    expected = predict(model, x)
    path = tmp_path / "chromagan.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is ChromaGANGenerator
    assert loaded.get_config() == model.get_config()
    got = predict(loaded, x)
    assert set(got) == set(expected)
    for key, value in got.items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6)


def test_registry_lists_the_adversarial_models():
    assert {"ChromaGANGenerator", "PatchGANDiscriminator", "UNetV1"} <= set(list_models())
    critic = get_model("PatchGANDiscriminator", normalization=None, **TINY_CRITIC)
    assert isinstance(critic, PatchGANDiscriminator)
    generator = get_model("ChromaGANGenerator", **TINY_CHROMA)
    assert isinstance(generator, ChromaGANGenerator)
