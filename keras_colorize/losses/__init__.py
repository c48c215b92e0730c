"""Losses: reconstruction (L1, L2, Huber), colour-aware objectives, adversarial (GAN, WGAN-GP) and classification."""

from keras_colorize.losses.adversarial import (
    discriminator_bce_loss,
    generator_bce_loss,
    gradient_penalty,
    interpolate,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from keras_colorize.losses.colorization import (
    ColorizationLoss,
    colorfulness_gap_loss,
    get_colorization_loss,
    rebalanced_ab_cross_entropy,
)
from keras_colorize.losses.classification import class_accuracy, class_cross_entropy, class_kl_divergence
from keras_colorize.losses.reconstruction import RECONSTRUCTION_LOSSES, get_reconstruction_loss

__all__ = [
    "ColorizationLoss",
    "RECONSTRUCTION_LOSSES",
    "class_accuracy",
    "class_cross_entropy",
    "class_kl_divergence",
    "colorfulness_gap_loss",
    "discriminator_bce_loss",
    "generator_bce_loss",
    "get_colorization_loss",
    "get_reconstruction_loss",
    "gradient_penalty",
    "interpolate",
    "rebalanced_ab_cross_entropy",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]
