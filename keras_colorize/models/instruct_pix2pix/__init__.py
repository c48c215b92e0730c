"""InstructPix2Pix colorization on the Stable Diffusion v1 architecture.

The 8-channel denoising U-Net, the VAE halves and the CLIP text encoder are Keras 3 networks
whose default configurations have the weight layouts of KerasCV's Stable Diffusion models;
`convert` turns KerasCV weight files and diffusers checkpoints into presets; the pipeline
samples with dual classifier-free guidance; the fine-tuner trains the U-Net.
"""

from keras_colorize.models.instruct_pix2pix.components import NETWORKS, DiffusionComponents
from keras_colorize.models.instruct_pix2pix.convert.checkpoints import (
    components_from_checkpoint,
    components_from_diffusers,
    components_from_keras_cv,
)
from keras_colorize.models.instruct_pix2pix.convert.preset import load_preset, random_components, save_preset
from keras_colorize.models.instruct_pix2pix.finetuner import InstructPix2PixFineTuner
from keras_colorize.models.instruct_pix2pix.pipeline import DiffusionColorizer, InstructPix2PixPipeline
from keras_colorize.models.instruct_pix2pix.schedulers import DDIMSampler, DDPMScheduler, EulerAncestralSampler, get_sampler
from keras_colorize.models.instruct_pix2pix.text import CLIPTextEncoder, CLIPTokenizer
from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet
from keras_colorize.models.instruct_pix2pix.validation import SampledValidation
from keras_colorize.models.instruct_pix2pix.vae import VAEDecoder, VAEEncoder, latent_mean, sample_latents

__all__ = [
    "CLIPTextEncoder",
    "CLIPTokenizer",
    "DDIMSampler",
    "DDPMScheduler",
    "DiffusionComponents",
    "EulerAncestralSampler",
    "InstructPix2PixFineTuner",
    "DiffusionColorizer",
    "InstructPix2PixPipeline",
    "InstructPix2PixUNet",
    "NETWORKS",
    "SampledValidation",
    "VAEDecoder",
    "VAEEncoder",
    "components_from_checkpoint",
    "components_from_diffusers",
    "components_from_keras_cv",
    "get_sampler",
    "latent_mean",
    "load_preset",
    "random_components",
    "sample_latents",
    "save_preset",
]
