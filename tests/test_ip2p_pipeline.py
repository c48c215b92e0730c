"""The InstructPix2Pix sampling pipeline against diffusers' StableDiffusionInstructPix2PixPipeline.

Both pipelines hold the same tiny random networks (diffusers/transformers modules,
converted into ours), start from the same latents and, for Euler ancestral, add
the same per-step noise; the final latents and the decoded images must agree.
Then `colorize` on real photos: the original lightness is kept at any size, gray
and RGBA inputs work, and seeds reproduce.
"""

import numpy as np
import pytest
from skimage.color import rgb2lab

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.preset import random_components
from keras_colorize.models.instruct_pix2pix.pipeline import InstructPix2PixPipeline

STEPS = 3
PROMPTS = ["colorize the image", "turn the sky blue"]


@pytest.fixture(scope="module")
def references():
    """Tiny diffusers/transformers modules and our components converted from them."""
    from tests.test_ip2p_convert import reference_text_encoder, reference_tokenizer, reference_unet, reference_vae

    from keras_colorize.models.instruct_pix2pix.components import DiffusionComponents
    from keras_colorize.models.instruct_pix2pix.convert.text_weights import text_encoder_from_diffusers
    from keras_colorize.models.instruct_pix2pix.convert.unet_weights import unet_from_diffusers
    from keras_colorize.models.instruct_pix2pix.convert.vae_weights import vae_from_diffusers
    from keras_colorize.models.instruct_pix2pix.text import TINY_TEXT_ENCODER, CLIPTextEncoder, CLIPTokenizer
    from keras_colorize.models.instruct_pix2pix.unet import TINY_UNET, InstructPix2PixUNet
    from keras_colorize.models.instruct_pix2pix.vae import TINY_VAE, VAEDecoder, VAEEncoder

    modules = {
        "unet": reference_unet(),
        "vae": reference_vae(),
        "text_encoder": reference_text_encoder(),
        "tokenizer": reference_tokenizer(),
    }
    components = DiffusionComponents(
        unet=InstructPix2PixUNet(**TINY_UNET),
        vae_encoder=VAEEncoder(**TINY_VAE),
        vae_decoder=VAEDecoder(**TINY_VAE),
        text_encoder=CLIPTextEncoder(**TINY_TEXT_ENCODER),
        tokenizer=CLIPTokenizer(),
    )

    def state(module):
        return {name: value.detach().numpy() for name, value in module.state_dict().items()}

    unet_from_diffusers(components.unet, state(modules["unet"]))
    vae_from_diffusers(components.vae_encoder, components.vae_decoder, state(modules["vae"]))
    text_encoder_from_diffusers(components.text_encoder, state(modules["text_encoder"]))
    return modules, components


def _diffusers_pipeline(modules, sampler):
    import diffusers

    schedule = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if sampler == "ddim":
        scheduler = diffusers.DDIMScheduler(
            **schedule, clip_sample=False, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading"
        )
    else:
        scheduler = diffusers.EulerAncestralDiscreteScheduler(**schedule, timestep_spacing="linspace")
    pipeline = diffusers.StableDiffusionInstructPix2PixPipeline(
        vae=modules["vae"],
        text_encoder=modules["text_encoder"],
        tokenizer=modules["tokenizer"],
        unet=modules["unet"],
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def photos_32(photos_64):
    from tests.test_ip2p_convert import photo_batch

    return photo_batch(photos_64, 32)


@pytest.mark.parametrize(
    "sampler, guidance, image_guidance",
    [("euler_ancestral", 7.0, 1.5), ("ddim", 7.0, 1.5), ("ddim", 1.0, 1.5)],
    ids=["euler_ancestral", "ddim", "ddim_unguided"],
)
def test_sampling_matches_diffusers(references, photos_32, sampler, guidance, image_guidance):
    torch = pytest.importorskip("torch")
    from tests.test_ip2p_convert import nchw, nhwc

    modules, components = references
    rng = np.random.default_rng(7)
    latents = rng.standard_normal((2, 16, 16, 4)).astype("float32")
    generator = torch.Generator().manual_seed(11)
    step_noise = np.stack([nhwc(torch.randn((2, 4, 16, 16), generator=generator)) for _ in range(STEPS)])

    reference = _diffusers_pipeline(modules, sampler)
    call = dict(
        prompt=PROMPTS,
        image=photos_32,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        image_guidance_scale=image_guidance,
    )
    with torch.no_grad():
        expected_latents = nhwc(
            reference(**call, latents=nchw(latents), generator=torch.Generator().manual_seed(11), output_type="latent").images
        )
        expected_images = reference(
            **call, latents=nchw(latents), generator=torch.Generator().manual_seed(11), output_type="np"
        ).images

    pipeline = InstructPix2PixPipeline(components, sampler=sampler)
    options = dict(
        prompt=PROMPTS, steps=STEPS, guidance=guidance, image_guidance=image_guidance, latents=latents, step_noise=step_noise
    )
    ours = pipeline.generate(photos_32, output="latents", **options)
    assert np.abs(expected_latents).max() > 0.5  # a non-trivial result
    scale = max(1.0, float(np.abs(expected_latents).max()))
    np.testing.assert_allclose(ours, expected_latents, atol=1e-4 * scale)
    images = pipeline.generate(photos_32, **options)
    assert images.shape == (2, 32, 32, 3) and images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_allclose(images, expected_images, atol=2e-4)


@pytest.fixture(scope="module")
def pipeline():
    """Tiny random components; every call below samples 2 steps on one 32x32 image (one trace)."""
    return InstructPix2PixPipeline(random_components(seed=0), sampler="euler_ancestral")


def test_colorize_keeps_the_original_lightness_at_any_size(pipeline, photo_paths):
    from PIL import Image

    photo = np.asarray(Image.open(photo_paths[2]).convert("RGB").resize((45, 37)))
    output = pipeline.colorize(photo, size=32, steps=2, seed=3)
    assert output.shape == photo.shape and output.dtype == np.uint8
    l_in = rgb2lab(photo / 255.0)[..., 0]
    l_out = rgb2lab(output / 255.0)[..., 0]
    inside = (output > 0).all(-1) & (output < 255).all(-1)  # no channel clipped by the gamut
    assert inside.mean() > 0.5
    assert np.abs(l_out - l_in)[inside].max() < 1.0  # uint8 rounding only
    assert np.median(np.abs(l_out - l_in)) < 0.5
    chroma = np.hypot(*np.moveaxis(rgb2lab(output / 255.0)[..., 1:], -1, 0))
    assert chroma.mean() > 1.0  # colour was added

    # Gray (2-D, one channel) and RGBA inputs are the photo's gray / RGB.
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    from_gray = pipeline.colorize(gray, size=32, steps=2, seed=3)
    np.testing.assert_array_equal(from_gray, pipeline.colorize(gray[..., None], size=32, steps=2, seed=3))
    assert from_gray.shape == photo.shape
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 128, "uint8")], axis=-1)
    np.testing.assert_array_equal(pipeline.colorize(rgba, size=32, steps=2, seed=3), output)


def test_seeds_reproduce_and_sizes_round_down(pipeline, photos_64):
    images = photos_64[:1, :32, :32]
    first = pipeline.generate(images, steps=2, seed=1)
    np.testing.assert_array_equal(pipeline.generate(images, steps=2, seed=1), first)
    assert np.abs(pipeline.generate(images, steps=2, seed=2) - first).max() > 1e-3
    # The initial latents and the ancestral noise both come from the seed.
    rng = np.random.default_rng(1)
    latents = rng.standard_normal((1, 16, 16, 4), dtype=np.float32)
    noise = np.stack([rng.standard_normal((1, 16, 16, 4), dtype=np.float32) for _ in range(2)])
    np.testing.assert_array_equal(pipeline.generate(images, steps=2, latents=latents, step_noise=noise), first)
    assert np.abs(pipeline.generate(images, steps=2, latents=latents, step_noise=noise[::-1]) - first).max() > 1e-4

    assert pipeline.size_multiple == 4  # VAE factor 2 x U-Net factor 2
    prepared = pipeline.prepare_images(photos_64[:1, :35, :45])
    assert prepared.shape == (1, 32, 44, 3) and prepared.dtype == np.float32
    assert pipeline.prepare_images((photos_64[:1, :32, :32] * 255).astype("uint8")).max() <= 1.0


def test_bad_arguments_are_one_line_errors(pipeline, photos_64):
    with pytest.raises(UserInputError, match="2 prompts for 1 images"):
        pipeline.generate(photos_64[:1, :32, :32], prompt=["a", "b"], steps=1)
    with pytest.raises(UserInputError, match="latents must have shape"):
        pipeline.generate(photos_64[:1, :32, :32], steps=1, latents=np.zeros((1, 8, 8, 4)))
    with pytest.raises(UserInputError, match="expected sRGB images"):
        pipeline.generate(photos_64[0, :, :, 0], steps=1)
    with pytest.raises(UserInputError, match="steps"):
        pipeline.generate(photos_64[:1, :32, :32], steps=0)
