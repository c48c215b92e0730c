"""InstructPix2Pix colorization on the Stable Diffusion v1 architecture."""
