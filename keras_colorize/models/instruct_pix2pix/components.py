"""The networks of one InstructPix2Pix model, kept together."""

import dataclasses

NETWORKS = ("unet", "vae_encoder", "vae_decoder", "text_encoder")
"""The networks of `DiffusionComponents` (the tokenizer holds no weights)."""


def network_classes():
    """The class of each network in `NETWORKS`, by name."""
    from keras_colorize.models.instruct_pix2pix.text import CLIPTextEncoder
    from keras_colorize.models.instruct_pix2pix.unet import InstructPix2PixUNet
    from keras_colorize.models.instruct_pix2pix.vae import VAEDecoder, VAEEncoder

    return {
        "unet": InstructPix2PixUNet,
        "vae_encoder": VAEEncoder,
        "vae_decoder": VAEDecoder,
        "text_encoder": CLIPTextEncoder,
    }


@dataclasses.dataclass
class DiffusionComponents:
    """The U-Net, the VAE halves, the text encoder and the tokenizer of one model.

    Attributes:
        unet: InstructPix2PixUNet. Noisy latents + conditioning latents, timesteps, text states -> noise.
        vae_encoder: VAEEncoder. sRGB scaled to [-1, 1] -> latent moments (mean, log-variance).
        vae_decoder: VAEDecoder. Unscaled latents -> sRGB scaled to [-1, 1].
        text_encoder: CLIPTextEncoder. Token ids -> text states.
        tokenizer: CLIPTokenizer. Prompts -> token ids.
    """

    unet: object
    vae_encoder: object
    vae_decoder: object
    text_encoder: object
    tokenizer: object
