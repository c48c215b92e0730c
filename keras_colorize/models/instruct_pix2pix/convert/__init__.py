"""Weight converters: KerasCV weight files and diffusers / transformers checkpoints."""
