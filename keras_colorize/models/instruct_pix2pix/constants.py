"""The constants of Stable Diffusion v1 and of the InstructPix2Pix colorization recipe (one definition each)."""

LATENT_SCALE = 0.18215
"""Multiplier from VAE latents to the diffusion model's latent space (SD v1)."""

TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012
"""DDPM noise schedule of SD v1: 1000 steps, scaled-linear betas from BETA_START to BETA_END."""

SEQUENCE_LENGTH = 77
"""Tokens per prompt of the CLIP text encoder (start and end tokens included)."""

VALIDATION_PROMPT = "colorize the image"
IMAGE_GUIDANCE = 1.5
TEXT_GUIDANCE = 7.0
SAMPLING_STEPS = 20
CONDITIONING_DROPOUT = 0.05
LEARNING_RATE = 5e-6
BATCH_SIZE = 4
