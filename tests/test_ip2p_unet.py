"""The SD v1 / InstructPix2Pix U-Net: parity with diffusers and KerasCV holding the same random
weights (converted), the SD v1 weight layout, serialization, LoRA, rematerialisation, precision."""

import contextlib
import hashlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.unet_weights import (
    _diffusers_plan,
    unet_from_diffusers,
    unet_from_keras_cv,
)
from keras_colorize.models.instruct_pix2pix.unet import TINY_UNET, InstructPix2PixUNet, UNetTimestepEmbedding
from keras_colorize.training.gradients import value_and_gradients
from tests.test_case import run_model_saving_test, run_serialization_test, to_numpy

DIFFUSERS_TINY = dict(
    sample_size=16,
    in_channels=8,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=2,
    norm_num_groups=32,
)
# Three levels, attention at the first two, one residual block per down level.
THREE_LEVELS = dict(
    widths=(32, 64, 64), layers_per_block=1, attention_levels=(True, True, False), heads=2, context_dim=32
)
DIFFUSERS_THREE_LEVELS = dict(
    DIFFUSERS_TINY,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
SD_V1_PARAMETERS_4 = 859_520_964
SD_V1_PARAMETERS_8 = 859_532_484
# sha256 of the ordered weight shapes of KerasCV's DiffusionModel(64, 64, 77) (4 input channels),
# as `_shapes_digest` writes them; the slow `test_weight_layout_equals_keras_cv` recomputes it from
# KerasCV (building KerasCV's model takes 20-40 s, too long for the fast suite).
_KERAS_CV_DIGEST = "7d27705bee42b222fe732a5289c441e74e70f08dc10849f2270b5d87c5e49189"


def _shapes_digest(variables):
    text = ";".join(",".join(str(d) for d in v.shape) for v in variables)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.contextmanager
def _shapes_only():
    """Create variables without initialising them (shapes only), and forget them afterwards so
    that no later StatelessScope initialises them."""
    from keras.src.backend.common import global_state

    before = list(global_state.get_global_attribute("uninitialized_variables", default=None) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute("uninitialized_variables", before)


def _inputs(batch=2, size=16, channels=8, context_dim=32, tokens=77, seed=0, timesteps=(0.0, 999.0)):
    """Latents, timesteps and text states. The default shapes are shared by most tests: on JAX
    every new shape compiles every operation again."""
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((batch, size, size, channels)).astype("float32")
    steps = np.array(timesteps[:batch], "float32")
    context = rng.standard_normal((batch, tokens, context_dim)).astype("float32")
    return [latents, steps, context]


def _one_off_forward(model, inputs):
    """The output of a model whose configuration or input shapes no other test uses, as NumPy.
    JAX: compiled once as a whole (eager JAX compiles every new operation shape on its own)."""
    if keras.backend.backend() == "jax":
        return to_numpy(model.predict_on_batch(inputs))
    return to_numpy(model(inputs))


def _loss_and_gradients(model, inputs):
    """Output and gradients of mean((output - 0.5)^2) for every trainable weight, as NumPy. JAX:
    the stateless call compiled as `fit()` runs it (eager JAX differentiates op by op, slowly)."""
    if keras.backend.backend() != "jax":
        loss = lambda: (ops.mean(ops.square(model(inputs) - 0.5)), model(inputs))  # noqa: E731
        (_, output), grads = value_and_gradients(loss, model.trainable_weights)
        return to_numpy(output), [to_numpy(g) for g in grads]
    import jax
    import jax.numpy as jnp

    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable):
        output, _ = model.stateless_call(trainable, non_trainable, inputs)
        return jnp.mean(jnp.square(output - 0.5)), output

    (_, output), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))([v.value for v in model.trainable_variables])
    return np.asarray(output), [np.asarray(g) for g in grads]


def _diffusers_reference(config, seed=0):
    """A diffusers U-Net with random weights (norms and biases randomised too) and its NumPy state."""
    torch = pytest.importorskip("torch", reason="torch is the reference's framework")
    diffusers = pytest.importorskip("diffusers", reason="diffusers is the reference implementation")
    torch.manual_seed(seed)
    reference = diffusers.UNet2DConditionModel(**config).eval()
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if parameter.ndim == 1:
                offset = 1.0 if name.endswith("weight") else 0.0
                parameter.copy_(offset + 0.3 * torch.randn_like(parameter))
    state = {key: value.numpy().copy() for key, value in reference.state_dict().items()}
    return reference, state


def _run_diffusers(reference, inputs):
    import torch

    latents, steps, context = inputs
    with torch.no_grad():
        output = reference(
            torch.from_numpy(latents.transpose(0, 3, 1, 2)), torch.from_numpy(steps), torch.from_numpy(context)
        ).sample
    return output.numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="module")
def tiny_reference():
    return _diffusers_reference(DIFFUSERS_TINY)


@pytest.fixture(scope="module")
def tiny_unet(tiny_reference):
    unet = InstructPix2PixUNet(**TINY_UNET)
    unet_from_diffusers(unet, tiny_reference[1])
    return unet


def _assert_one_line(error):
    assert "\n" not in str(error.value), str(error.value)


# ------------------------------------------------------------------ parity with diffusers
def test_tiny_unet_matches_diffusers(tiny_reference, tiny_unet):
    for timesteps, seed in (((0.0, 999.0), 0), ((1.0, 500.0), 1), ((250.0, 250.0), 2)):
        inputs = _inputs(timesteps=timesteps, seed=seed)
        expected = _run_diffusers(tiny_reference[0], inputs)
        got = to_numpy(tiny_unet(inputs))
        assert got.shape == (2, 16, 16, 4) and got.dtype == np.float32
        assert np.abs(expected).max() > 0.5  # a non-trivial output
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_three_level_unet_matches_diffusers():
    reference, state = _diffusers_reference(DIFFUSERS_THREE_LEVELS, seed=1)
    unet = InstructPix2PixUNet(**THREE_LEVELS)
    unet_from_diffusers(unet, state)
    # Another latent size (24: a multiple of 4, not of 8) and text length.
    inputs = _inputs(size=24, tokens=5, timesteps=(999.0, 37.0), seed=1)
    got = _one_off_forward(unet, inputs)
    assert got.shape == (2, 24, 24, 4)
    np.testing.assert_allclose(got, _run_diffusers(reference, inputs), rtol=0, atol=1e-4)


def test_timestep_embedding_matches_diffusers():
    torch = pytest.importorskip("torch", reason="torch is the reference's framework")
    embeddings = pytest.importorskip("diffusers.models.embeddings", reason="diffusers is the reference")
    steps = np.array([0.0, 1.0, 17.0, 500.0, 999.0], "float32")
    expected = embeddings.get_timestep_embedding(
        torch.from_numpy(steps), 320, flip_sin_to_cos=True, downscale_freq_shift=0
    ).numpy()
    got = to_numpy(UNetTimestepEmbedding(320)(steps))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ the diffusers converter
def test_diffusers_conversion_uses_every_tensor_once(tiny_reference, tiny_unet):
    plan = _diffusers_plan(tiny_unet)
    keys = [key for _, key, _ in plan]
    assert sorted(keys) == sorted(tiny_reference[1])  # every diffusers tensor, once
    assert len({id(v) for v, _, _ in plan}) == len(plan) == len(tiny_unet.weights)  # every weight, once
    # Transposes: a conv kernel and a linear weight land where they should.
    state = tiny_reference[1]
    np.testing.assert_array_equal(
        to_numpy(tiny_unet.get_layer("conv_in").kernel), state["conv_in.weight"].transpose(2, 3, 1, 0)
    )
    attention = tiny_unet.get_layer("up_0_attention_2").block.cross_attention
    np.testing.assert_array_equal(
        to_numpy(attention.key.kernel), state["up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight"].T
    )


def test_diffusers_conversion_errors_name_the_tensor(tiny_reference):
    state = tiny_reference[1]
    unet = InstructPix2PixUNet(**TINY_UNET)
    key = "down_blocks.0.resnets.1.conv2.weight"

    wrong_shape = dict(state, **{key: state[key][:, :16]})
    with pytest.raises(UserInputError, match=key.replace(".", r"\.")) as error:
        unet_from_diffusers(unet, wrong_shape)
    _assert_one_line(error)

    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(UserInputError, match="missing tensor") as error:
        unet_from_diffusers(unet, missing)
    _assert_one_line(error)

    extra = dict(state, **{"down_blocks.0.resnets.2.norm1.weight": np.ones(32, "float32")})
    with pytest.raises(UserInputError, match=r"down_blocks\.0\.resnets\.2\.norm1\.weight") as error:
        unet_from_diffusers(unet, extra)
    _assert_one_line(error)

    # A 4-channel checkpoint (Stable Diffusion) does not fit the 8-channel U-Net, unless widened.
    narrow = dict(state, **{"conv_in.weight": state["conv_in.weight"][:, :4]})
    with pytest.raises(UserInputError, match=r"conv_in\.weight"):
        unet_from_diffusers(unet, narrow)
    unet_from_diffusers(unet, narrow, widen_input=True)
    kernel = to_numpy(unet.get_layer("conv_in").kernel)
    np.testing.assert_array_equal(kernel[:, :, :4], state["conv_in.weight"][:, :4].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(kernel[:, :, 4:], 0.0)


# ------------------------------------------------------------------ the SD v1 layout
def test_sd_v1_parameter_counts_and_keras_cv_layout():
    with _shapes_only():
        four = InstructPix2PixUNet(input_channels=4)
        eight = InstructPix2PixUNet()
    count = lambda model: sum(int(np.prod(v.shape)) for v in model.weights)  # noqa: E731
    assert count(four) == SD_V1_PARAMETERS_4
    assert count(eight) == SD_V1_PARAMETERS_8 == SD_V1_PARAMETERS_4 + 11_520
    assert len(four.weights) == len(eight.weights) == 686
    assert _shapes_digest(four.weights) == _KERAS_CV_DIGEST
    differing = [i for i, (a, b) in enumerate(zip(four.weights, eight.weights)) if tuple(a.shape) != tuple(b.shape)]
    assert differing == [2] and tuple(eight.weights[2].shape) == (3, 3, 8, 320)
    assert len(eight.attention_projections()) == 16 * 8


# ------------------------------------------------------------------ the KerasCV converter
def _write_legacy_h5(model, path):
    """A Keras-2-style weight file (`layer_names`, `weight_names`), as KerasCV publishes them."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)


def test_keras_cv_file_widens_the_input_convolution(tmp_path):
    narrow = InstructPix2PixUNet(**dict(TINY_UNET, input_channels=4))
    path = tmp_path / "diffusion_model.h5"
    _write_legacy_h5(narrow, path)

    wide = InstructPix2PixUNet(**TINY_UNET)
    unet_from_keras_cv(wide, path)
    kernel = to_numpy(wide.get_layer("conv_in").kernel)
    assert kernel.shape == (3, 3, 8, 32)
    np.testing.assert_array_equal(kernel[:, :, 4:], 0.0)
    np.testing.assert_array_equal(kernel[:, :, :4], to_numpy(narrow.get_layer("conv_in").kernel))
    np.testing.assert_array_equal(to_numpy(wide.get_layer("conv_in").bias), to_numpy(narrow.get_layer("conv_in").bias))
    latents, steps, context = _inputs(channels=4, timesteps=(3.0, 998.0))
    arbitrary = np.random.default_rng(5).uniform(-3, 3, latents.shape).astype("float32")
    expected = to_numpy(narrow([latents, steps, context]))
    got = to_numpy(wide([np.concatenate([latents, arbitrary], axis=-1), steps, context]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)

    same = InstructPix2PixUNet(**dict(TINY_UNET, input_channels=4))
    unet_from_keras_cv(same, path)
    for a, b in zip(same.weights, narrow.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_keras_cv_file_errors(tmp_path):
    unet = InstructPix2PixUNet(**TINY_UNET)
    not_h5 = tmp_path / "weights.h5"
    not_h5.write_text("not hdf5")
    with pytest.raises(UserInputError, match="weights.h5") as error:
        unet_from_keras_cv(unet, not_h5)
    _assert_one_line(error)
    other = tmp_path / "other.h5"
    _write_legacy_h5(InstructPix2PixUNet(**THREE_LEVELS), other)
    with pytest.raises(UserInputError, match="other.h5") as error:
        unet_from_keras_cv(unet, other)
    _assert_one_line(error)


@pytest.mark.slow
def test_weight_layout_equals_keras_cv():
    diffusion_model = pytest.importorskip(
        "keras_cv.src.models.stable_diffusion.diffusion_model", reason="keras-cv is the layout reference"
    )
    with _shapes_only():
        reference = diffusion_model.DiffusionModel(64, 64, 77, download_weights=False)
        ours = InstructPix2PixUNet(input_channels=4)
    assert [tuple(v.shape) for v in ours.weights] == [tuple(v.shape) for v in reference.weights]
    assert _shapes_digest(reference.weights) == _KERAS_CV_DIGEST


@pytest.mark.slow
def test_sd_v1_unet_matches_keras_cv(tmp_path):
    """Full size, 4 channels: KerasCV's DiffusionModel with random weights (norms and biases too),
    saved as the legacy HDF5 KerasCV publishes, loaded into ours; two timesteps, 8x8 latents.
    Tolerance, relative to the output scale s = max |KerasCV output|: max |difference| <= 1e-4 s
    against KerasCV as is (it approximates the feed-forward GELU with tanh, and its transformer
    GroupNorm epsilon is 1e-5 where SD and diffusers use 1e-6); <= 2e-5 s once KerasCV's GEGLU
    uses the exact GELU of SD and diffusers (measured: 4e-5 s and 6e-6 s)."""
    diffusion_model = pytest.importorskip(
        "keras_cv.src.models.stable_diffusion.diffusion_model", reason="keras-cv is the reference"
    )
    from keras_cv.src.models.stable_diffusion.stable_diffusion import StableDiffusionBase

    reference = diffusion_model.DiffusionModel(64, 64, 77, download_weights=False)
    rng = np.random.default_rng(0)
    for variable in reference.weights:
        if len(variable.shape) == 1:  # norms and biases: random too
            offset = 1.0 if variable.path.endswith("gamma") else 0.0
            variable.assign(offset + 0.3 * rng.standard_normal(variable.shape).astype("float32"))
    path = tmp_path / "kcv_diffusion_model.h5"
    _write_legacy_h5(reference, path)

    latents = rng.standard_normal((2, 8, 8, 4)).astype("float32")
    context = rng.standard_normal((2, 77, 768)).astype("float32")
    steps = (10.0, 980.0)

    def run_reference():
        outputs = []
        for step in steps:
            embedding = StableDiffusionBase._get_timestep_embedding(None, step, 2)
            tensors = [ops.convert_to_tensor(latents), embedding, ops.convert_to_tensor(context)]
            outputs.append(to_numpy(reference(tensors)))
        return np.stack(outputs)

    reference_approximate = run_reference()

    class ExactGEGLU(diffusion_model.GEGLU):
        def call(self, inputs):
            x, gate = ops.split(self.dense(inputs), 2, axis=-1)
            return x * ops.gelu(gate, approximate=False)

    for layer in reference.layers:
        if isinstance(layer, diffusion_model.SpatialTransformer):
            layer.transformer_block.geglu.__class__ = ExactGEGLU
    reference_exact = run_reference()
    reference = None  # free its memory before building ours

    ours = InstructPix2PixUNet(input_channels=4)
    unet_from_keras_cv(ours, path)
    got = np.stack([to_numpy(ours([latents, np.full((2,), step, "float32"), context])) for step in steps])
    scale = np.abs(reference_approximate).max()
    assert scale > 0.5  # a non-trivial output
    assert np.abs(got - reference_approximate).max() <= 1e-4 * scale
    assert np.abs(got - reference_exact).max() <= 2e-5 * np.abs(reference_exact).max()


# ------------------------------------------------------------------ Keras features
def test_serialization_round_trip(tmp_path, tiny_unet):
    clone = run_serialization_test(tiny_unet)
    assert clone.count_params() == tiny_unet.count_params()
    loaded = run_model_saving_test(tiny_unet, _inputs(), tmp_path / "unet.keras")
    assert loaded.get_config() == tiny_unet.get_config()


def test_lora(tmp_path, tiny_reference):
    unet = InstructPix2PixUNet(**TINY_UNET)
    unet_from_diffusers(unet, tiny_reference[1])
    inputs = _inputs()
    before = to_numpy(unet(inputs))
    projections = unet.attention_projections()
    assert len(projections) == 6 * 2 * 4  # 6 transformers (2 down, 1 middle, 3 up) x 2 attentions x 4
    assert all(isinstance(layer, keras.layers.Dense) for layer in projections)

    unet.enable_lora(4)
    trainable = unet.trainable_weights
    assert len(trainable) == 2 * len(projections)
    assert all("lora" in v.path for v in trainable)
    np.testing.assert_allclose(to_numpy(unet(inputs)), before, atol=1e-6)  # B starts at zero

    rng = np.random.default_rng(2)
    for variable in trainable:
        variable.assign(0.05 * rng.standard_normal(variable.shape).astype("float32"))
    adapted = to_numpy(unet(inputs))
    assert np.abs(adapted - before).max() > 1e-3
    # Saving merges the adapters into the kernels: the file loads as a plain U-Net.
    unet.save(tmp_path / "lora.keras")
    loaded = keras.saving.load_model(tmp_path / "lora.keras")
    np.testing.assert_allclose(to_numpy(loaded(inputs)), adapted, atol=1e-5)


def test_remat_gives_identical_outputs_and_gradients(tiny_unet):
    remat = InstructPix2PixUNet(**TINY_UNET, remat=True)
    remat.set_weights(tiny_unet.get_weights())
    assert remat.get_layer("down_0_res_0")._remat_mode.mode == "full"
    assert remat.get_layer("down_0_res_0").conv_1._remat_mode.mode is None  # blocks, not nested
    assert tiny_unet.get_layer("down_0_res_0")._remat_mode is None
    inputs = _inputs()
    plain_output, plain_grads = _loss_and_gradients(tiny_unet, inputs)
    remat_output, remat_grads = _loss_and_gradients(remat, inputs)
    # Float32 rounding only: the compiler may order the two programs' operations differently.
    np.testing.assert_allclose(remat_output, plain_output, rtol=1e-5, atol=5e-6)
    assert len(remat_grads) == len(plain_grads) == len(tiny_unet.weights)
    for plain, rematerialised, variable in zip(plain_grads, remat_grads, tiny_unet.weights):
        np.testing.assert_allclose(rematerialised, plain, rtol=1e-4, atol=1e-7, err_msg=variable.path)
        # The gradient reaches every weight.
        assert np.isfinite(plain).all() and np.abs(plain).max() > 0, variable.path


def test_mixed_bfloat16(tiny_unet):
    unet = InstructPix2PixUNet(**TINY_UNET, dtype="mixed_bfloat16")
    unet.set_weights(tiny_unet.get_weights())
    assert unet.dtype_policy.name == "mixed_bfloat16"
    assert unet.get_layer("down_0_attention_0").compute_dtype == "bfloat16"
    assert unet.get_layer("conv_in").kernel.dtype == "float32"
    inputs = _inputs()
    got = _one_off_forward(unet, inputs)
    expected = to_numpy(tiny_unet(inputs))
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - expected).max() <= 0.1 * np.abs(expected).max()
    # The timesteps stay float32: 999 and 1000, one bfloat16 value, give different noise.
    later = _one_off_forward(unet, [inputs[0], np.array([1000.0, 1000.0], "float32"), inputs[2]])
    assert np.abs(later[1] - got[1]).max() > 1e-3
    clone = InstructPix2PixUNet.from_config(unet.get_config())
    assert clone.dtype_policy.name == "mixed_bfloat16"
    assert clone.get_layer("mid_res_1").dtype_policy.name == "mixed_bfloat16"


def test_bad_configurations(tiny_unet):
    assert tiny_unet.size_divisor == 2
    with pytest.raises(UserInputError, match="attention_levels") as error:
        InstructPix2PixUNet(**dict(TINY_UNET, attention_levels=(True,)))
    _assert_one_line(error)
    with pytest.raises(UserInputError, match="heads=3") as error:
        InstructPix2PixUNet(**dict(TINY_UNET, heads=3))
    _assert_one_line(error)

