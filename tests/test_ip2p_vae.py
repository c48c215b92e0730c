"""The SD v1 VAE: parity with diffusers' AutoencoderKL and KerasCV's ImageEncoder / Decoder, converters, sampling.

References hold the same random weights (all of them: biases and group-norm scales too), converted
with our converters. The tiny configuration runs in the fast suite; the SD configuration's
parameter counts and KerasCV weight layout too; its forward parity (about 30 s per backend on
a CPU) is marked slow.
"""

import os

import keras
import numpy as np
import pytest

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.constants import LATENT_SCALE
from keras_colorize.models.instruct_pix2pix.convert.keras_cv_files import read_legacy_h5_weights
from keras_colorize.models.instruct_pix2pix.convert.vae_weights import (
    vae_decoder_from_keras_cv,
    vae_encoder_from_keras_cv,
    vae_from_diffusers,
)
from keras_colorize.models.instruct_pix2pix.vae import (
    TINY_VAE,
    VAEDecoder,
    VAEEncoder,
    latent_mean,
    sample_latents,
)
from tests.test_case import run_model_saving_test, run_serialization_test, to_numpy

ATOL = 1e-4
SD_CHANNELS = (128, 256, 512, 512)
KERAS_CV_EPSILON = 1e-5
"""KerasCV's group norms use epsilon 1e-5 where SD v1 (and diffusers) use 1e-6."""


# --------------------------------------------------------------------------- references


def diffusers_vae(channels, layers_per_block, seed=0):
    """A diffusers AutoencoderKL with random weights (biases and norm scales randomised too), eval mode."""
    torch = pytest.importorskip("torch", reason="the reference VAE needs torch")
    diffusers = pytest.importorskip("diffusers", reason="the reference VAE needs diffusers")
    torch.manual_seed(seed)
    vae = diffusers.AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        latent_channels=4,
        norm_num_groups=32,
    ).eval()
    with torch.no_grad():
        for name, parameter in vae.named_parameters():
            if parameter.ndim == 1:
                base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
                parameter.copy_(base + 0.1 * torch.randn_like(parameter))
    return vae


def state_dict(vae):
    return {name: tensor.numpy() for name, tensor in vae.state_dict().items()}


def reference_moments(vae, images):
    """diffusers' encoder + quant_conv: NHWC [-1, 1] images -> NHWC moments."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        return vae.quant_conv(vae.encoder(x)).permute(0, 2, 3, 1).numpy()


def reference_decode(vae, latents):
    """diffusers' decode (post_quant_conv + decoder): NHWC unscaled latents -> NHWC [-1, 1] images."""
    import torch

    with torch.no_grad():
        return vae.decode(torch.from_numpy(latents).permute(0, 3, 1, 2)).sample.permute(0, 2, 3, 1).numpy()


def weights_of(model):
    return [to_numpy(w) for w in model.weights]


@pytest.fixture(scope="module")
def tiny_reference():
    return diffusers_vae(TINY_VAE["channels"], TINY_VAE["layers_per_block"])


@pytest.fixture(scope="module")
def tiny_converted(tiny_reference):
    encoder, decoder = VAEEncoder(**TINY_VAE), VAEDecoder(**TINY_VAE)
    vae_from_diffusers(encoder, decoder, state_dict(tiny_reference))
    return encoder, decoder


@pytest.fixture(scope="module")
def sd_vae():
    return VAEEncoder(), VAEDecoder()


# --------------------------------------------------------------------------- diffusers parity


def test_tiny_vae_matches_diffusers(tiny_reference, tiny_converted, photos_64):
    encoder, decoder = tiny_converted
    images = photos_64[:2] * 2.0 - 1.0
    expected = reference_moments(tiny_reference, images)
    moments = to_numpy(encoder(images))
    assert moments.shape == (2, 32, 32, 8)
    np.testing.assert_allclose(moments, expected, atol=ATOL)

    latents = np.random.default_rng(1).standard_normal((2, 16, 16, 4)).astype("float32")
    decoded = to_numpy(decoder(latents))
    assert decoded.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(decoded, reference_decode(tiny_reference, latents), atol=ATOL)
    # diffusers' own distribution object agrees on the mean.
    import torch

    with torch.no_grad():
        distribution = tiny_reference.encode(torch.from_numpy(images).permute(0, 3, 1, 2)).latent_dist
    np.testing.assert_allclose(to_numpy(latent_mean(moments)), distribution.mean.permute(0, 2, 3, 1).numpy(), atol=ATOL)


def test_deprecated_attention_names_convert_the_same(tiny_reference, tiny_converted):
    """Old checkpoints: query/key/value/proj_attn, as 1x1 convolution kernels or linear weights."""
    renames = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for name, array in state_dict(tiny_reference).items():
        for new_name, old_name in renames.items():
            marker = f"attentions.0.{new_name}."
            if marker in name:
                name = name.replace(marker, f"attentions.0.{old_name}.")
                if name.startswith("encoder.") and array.ndim == 2:
                    array = array[:, :, None, None]  # the encoder's as conv kernels, the decoder's linear
        old[name] = array
    encoder, decoder = VAEEncoder(**TINY_VAE), VAEDecoder(**TINY_VAE)
    vae_from_diffusers(encoder, decoder, old)
    expected = weights_of(tiny_converted[0]) + weights_of(tiny_converted[1])
    for ours, theirs in zip(weights_of(encoder) + weights_of(decoder), expected):
        np.testing.assert_array_equal(ours, theirs)


def test_converter_errors_name_the_tensor_and_assign_nothing(tiny_reference):
    tensors = state_dict(tiny_reference)
    encoder, decoder = VAEEncoder(**TINY_VAE), VAEDecoder(**TINY_VAE)
    before = weights_of(encoder)

    missing = {k: v for k, v in tensors.items() if k != "encoder.mid_block.attentions.0.to_k.bias"}
    with pytest.raises(UserInputError, match=r"no tensor 'encoder\.mid_block\.attentions\.0\.to_k\.bias'"):
        vae_from_diffusers(encoder, decoder, missing)
    wrong = dict(tensors, **{"encoder.conv_out.weight": np.zeros((8, 64, 3, 1), "float32")})
    shape_message = r"'encoder\.conv_out\.weight' has shape \(3, 1, 64, 8\).*needs \(3, 3, 64, 8\)"
    with pytest.raises(UserInputError, match=shape_message):
        vae_from_diffusers(encoder, None, wrong)
    extra = dict(tensors, **{"encoder.down_blocks.2.resnets.0.conv1.weight": np.zeros((1,), "float32")})
    unused_message = r"'encoder\.down_blocks\.2\.resnets\.0\.conv1\.weight' left unused \(another VAE configuration\?\)"
    with pytest.raises(UserInputError, match=unused_message):
        vae_from_diffusers(encoder, None, extra)
    for ours, previous in zip(weights_of(encoder), before):
        np.testing.assert_array_equal(ours, previous)
    # A half at a time: the other half's tensors are not this call's business.
    vae_from_diffusers(encoder, None, tensors)
    vae_from_diffusers(None, decoder, {k: v for k, v in tensors.items() if k.startswith(("decoder.", "post_quant"))})


# --------------------------------------------------------------------------- the SD configuration


def test_sd_vae_parameter_counts_and_keras_cv_weight_layout(sd_vae):
    encoder, decoder = sd_vae
    assert encoder.count_params() == 34_163_664
    assert decoder.count_params() == 49_490_199
    assert encoder.downsampling_factor == decoder.upsampling_factor == 8
    stable_diffusion = pytest.importorskip("keras_cv.src.models.stable_diffusion", reason="needs keras-cv")
    reference_encoder = stable_diffusion.ImageEncoder(download_weights=False)
    reference_decoder = stable_diffusion.Decoder(64, 64, download_weights=False)
    assert [tuple(w.shape) for w in encoder.weights] == [tuple(w.shape) for w in reference_encoder.weights]
    assert [tuple(w.shape) for w in decoder.weights] == [tuple(w.shape) for w in reference_decoder.weights]


@pytest.mark.slow
def test_sd_vae_matches_diffusers(sd_vae, photos_64):
    encoder, decoder = sd_vae
    reference = diffusers_vae(SD_CHANNELS, 2, seed=1)
    vae_from_diffusers(encoder, decoder, state_dict(reference))
    images = photos_64[:1] * 2.0 - 1.0
    np.testing.assert_allclose(to_numpy(encoder(images)), reference_moments(reference, images), atol=ATOL)
    latents = np.random.default_rng(2).standard_normal((1, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(to_numpy(decoder(latents)), reference_decode(reference, latents), atol=ATOL)


def _write_legacy_weights(model, path):
    """The legacy Keras-2 HDF5 layout of `model.save_weights("x.h5")`, written by Keras's own code."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


@pytest.mark.slow
def test_sd_vae_matches_keras_cv_through_its_weight_files(tmp_path, photos_64):
    stable_diffusion = pytest.importorskip("keras_cv.src.models.stable_diffusion", reason="needs keras-cv")
    rng = np.random.default_rng(3)
    reference_encoder = stable_diffusion.ImageEncoder(download_weights=False)
    reference_decoder = stable_diffusion.Decoder(64, 64, download_weights=False)
    for model in (reference_encoder, reference_decoder):
        for weight in model.weights:
            if len(weight.shape) == 1:
                base = 1.0 if "gamma" in weight.path else 0.0
                weight.assign(base + 0.1 * rng.standard_normal(weight.shape).astype("float32"))
    _write_legacy_weights(reference_encoder, tmp_path / "vae_encoder.h5")
    _write_legacy_weights(reference_decoder, tmp_path / "kcv_decoder.h5")

    # KerasCV computes its group norms with epsilon 1e-5: compare at its numerics.
    encoder, decoder = VAEEncoder(epsilon=KERAS_CV_EPSILON), VAEDecoder(epsilon=KERAS_CV_EPSILON)
    vae_encoder_from_keras_cv(encoder, tmp_path / "vae_encoder.h5")
    vae_decoder_from_keras_cv(decoder, tmp_path / "kcv_decoder.h5")
    images = photos_64[1:2] * 2.0 - 1.0
    scaled_mean = to_numpy(reference_encoder(images))  # KerasCV's Lambda: mean * 0.18215
    np.testing.assert_allclose(to_numpy(latent_mean(encoder(images))) * LATENT_SCALE, scaled_mean, atol=ATOL)
    before_lambda = keras.Model(reference_encoder.inputs[0], reference_encoder.layers[-2].output)
    np.testing.assert_allclose(to_numpy(encoder(images)), to_numpy(before_lambda(images)), atol=ATOL)
    latents = np.random.default_rng(4).standard_normal((1, 8, 8, 4)).astype("float32")  # scaled latents
    expected = to_numpy(reference_decoder(latents))
    np.testing.assert_allclose(to_numpy(decoder(latents / LATENT_SCALE)), expected, atol=ATOL)


# --------------------------------------------------------------------------- KerasCV weight files


def test_keras_cv_weight_file_reader(tmp_path, tiny_converted):
    encoder, decoder = tiny_converted
    for source, loader in ((encoder, vae_encoder_from_keras_cv), (decoder, vae_decoder_from_keras_cv)):
        path = tmp_path / f"{source.name}.h5"
        _write_legacy_weights(source, path)
        tensors = read_legacy_h5_weights(path)
        assert [a.shape for _, a in tensors] == [tuple(w.shape) for w in source.weights]
        target = type(source)(**TINY_VAE)
        loader(target, path)
        for ours, theirs in zip(weights_of(target), weights_of(source)):
            np.testing.assert_array_equal(ours, theirs)

    with pytest.raises(UserInputError, match="no such Keras weight file"):
        vae_encoder_from_keras_cv(encoder, tmp_path / "missing.h5")
    (tmp_path / "not_hdf5.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(UserInputError, match="cannot read the Keras weight file .*not_hdf5.h5"):
        vae_encoder_from_keras_cv(encoder, tmp_path / "not_hdf5.h5")
    with pytest.raises(UserInputError, match=r"holds \d+ weights, vae_encoder has \d+"):
        vae_encoder_from_keras_cv(encoder, tmp_path / f"{decoder.name}.h5")
    other = VAEEncoder(channels=(32, 96), layers_per_block=1)  # same count, other shapes
    with pytest.raises(UserInputError, match=r"has shape .* has"):
        vae_encoder_from_keras_cv(other, tmp_path / f"{encoder.name}.h5")


# --------------------------------------------------------------------------- latents


def test_latent_mean_and_sample_latents():
    rng = np.random.default_rng(5)
    mean = rng.standard_normal((4, 32, 32, 4)).astype("float32")
    log_variance = np.full_like(mean, np.log(0.25))
    moments = keras.ops.convert_to_tensor(np.concatenate([mean, log_variance], axis=-1))
    np.testing.assert_array_equal(to_numpy(latent_mean(moments)), mean)

    draw = to_numpy(sample_latents(moments, seed=7))
    standardized = (draw - mean) / 0.5
    assert abs(standardized.mean()) < 0.03 and abs(standardized.std() - 1.0) < 0.03
    np.testing.assert_array_equal(to_numpy(sample_latents(moments, seed=7)), draw)
    assert not np.allclose(to_numpy(sample_latents(moments, seed=8)), draw)
    generator = keras.random.SeedGenerator(7)
    first, second = to_numpy(sample_latents(moments, generator)), to_numpy(sample_latents(moments, generator))
    assert not np.allclose(first, second)

    # The log-variance is clipped to [-30, 20]: std in [exp(-15), exp(10)].
    extreme = np.concatenate([np.zeros((1, 2, 2, 2)), np.full((1, 2, 2, 1), 100.0), np.full((1, 2, 2, 1), -100.0)], -1)
    draw = to_numpy(sample_latents(keras.ops.convert_to_tensor(extreme.astype("float32")), seed=1))
    noise = to_numpy(keras.random.normal((1, 2, 2, 2), seed=1))
    np.testing.assert_allclose(draw, noise * np.exp([10.0, -15.0]), rtol=1e-5)
    with pytest.raises(ValueError, match="even"):
        latent_mean(keras.ops.zeros((1, 2, 2, 3)))


# --------------------------------------------------------------------------- serialization, config


def test_tiny_vae_serialization_and_saving(tmp_path, tiny_converted, photos_64):
    encoder, decoder = tiny_converted
    for model in (encoder, decoder):
        clone = run_serialization_test(model)
        assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in model.weights]
    run_model_saving_test(encoder, photos_64[:2] * 2.0 - 1.0, os.fspath(tmp_path / "encoder.keras"))
    latents = np.random.default_rng(6).standard_normal((2, 8, 8, 4)).astype("float32")
    run_model_saving_test(decoder, latents, os.fspath(tmp_path / "decoder.keras"))


def test_mixed_precision_outputs_stay_float32():
    encoder = VAEEncoder(**TINY_VAE, dtype="mixed_bfloat16")
    assert encoder.get_layer("conv_in").compute_dtype == "bfloat16"
    assert encoder.get_layer("mid_resnet_0").conv1.compute_dtype == "bfloat16"
    moments = encoder(np.zeros((1, 16, 16, 3), "float32"))
    assert keras.backend.standardize_dtype(moments.dtype) == "float32"
    clone = VAEEncoder.from_config(encoder.get_config())
    assert clone.get_layer("conv_in").compute_dtype == "bfloat16"
    decoder = VAEDecoder(**TINY_VAE, dtype="mixed_bfloat16")
    assert decoder.get_layer("up_0_resnet_0").conv2.compute_dtype == "bfloat16"
    assert decoder.get_layer("conv_out").compute_dtype == decoder.outputs[0].dtype == "float32"


def test_bad_configurations_are_user_errors():
    with pytest.raises(UserInputError, match="multiples of groups=32"):
        VAEEncoder(channels=(32, 48))
    with pytest.raises(UserInputError, match="at least one entry"):
        VAEDecoder(channels=())
    with pytest.raises(UserInputError, match="layers_per_block"):
        VAEDecoder(layers_per_block=0)
