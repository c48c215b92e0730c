"""The networks of one InstructPix2Pix model, kept together."""

import dataclasses


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
