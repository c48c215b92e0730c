"""VAE weights from a diffusers AutoencoderKL state dict or from KerasCV's weight files.

Everything is read with NumPy (and h5py, which Keras itself needs); nothing here imports torch,
diffusers or KerasCV. Every converter checks every tensor before it assigns any, so a failed
conversion leaves the model unchanged.
"""

import re

import numpy as np
from keras import layers

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.keras_cv_files import load_in_layer_order
from keras_colorize.models.instruct_pix2pix.vae import VAEAttentionBlock, VAEResnetBlock

_ENCODER_PREFIXES = (
    (r"conv_in", "encoder.conv_in"),
    (r"down_(\d+)_resnet_(\d+)", "encoder.down_blocks.{0}.resnets.{1}"),
    (r"down_(\d+)_downsample", "encoder.down_blocks.{0}.downsamplers.0.conv"),
    (r"mid_resnet_(\d+)", "encoder.mid_block.resnets.{0}"),
    (r"mid_attention", "encoder.mid_block.attentions.0"),
    (r"norm_out", "encoder.conv_norm_out"),
    (r"conv_out", "encoder.conv_out"),
    (r"quant_conv", "quant_conv"),
)
_DECODER_PREFIXES = (
    (r"post_quant_conv", "post_quant_conv"),
    (r"conv_in", "decoder.conv_in"),
    (r"mid_resnet_(\d+)", "decoder.mid_block.resnets.{0}"),
    (r"mid_attention", "decoder.mid_block.attentions.0"),
    (r"up_(\d+)_resnet_(\d+)", "decoder.up_blocks.{0}.resnets.{1}"),
    (r"up_(\d+)_upsample_conv", "decoder.up_blocks.{0}.upsamplers.0.conv"),
    (r"norm_out", "decoder.conv_norm_out"),
    (r"conv_out", "decoder.conv_out"),
)
_RESNET_PARTS = (
    ("norm1", "norm1"),
    ("conv1", "conv1"),
    ("norm2", "norm2"),
    ("conv2", "conv2"),
    ("shortcut", "conv_shortcut"),
)
"""Our residual-block sub-layers and their diffusers names."""
_ATTENTION_PARTS = (
    ("norm", ("group_norm",)),
    ("query", ("to_q", "query")),
    ("key", ("to_k", "key")),
    ("value", ("to_v", "value")),
    ("proj_out", ("to_out.0", "proj_attn")),
)
"""Our attention sub-layers and their diffusers names: current (linear) first, then the deprecated ones."""


class _Plan:
    """Checked (variable, array) pairs, assigned only once every tensor has been found and matched."""

    def __init__(self, state_dict, source):
        self.tensors = dict(state_dict)
        self.source = source
        self.used = set()
        self.pairs = []

    def take(self, names, model, variable):
        """The first of `names` present in the state dict, marked used."""
        for name in names:
            if name in self.tensors:
                if name in self.used:
                    raise UserInputError(f"{self.source}: tensor {name!r} would be used twice for {model.name}")
                self.used.add(name)
                return name, np.asarray(self.tensors[name])
        raise UserInputError(
            f"{self.source} has no tensor {names[0]!r} (needed by {model.name} weight {variable.path!r})"
        )

    def add(self, model, variable, name, array):
        if tuple(array.shape) != tuple(variable.shape):
            raise UserInputError(
                f"{self.source}: tensor {name!r} has shape {tuple(array.shape)} after conversion, "
                f"{model.name} weight {variable.path!r} needs {tuple(variable.shape)}"
            )
        self.pairs.append((variable, array))

    def conv(self, model, layer, prefixes):
        """A Conv2D from a torch Conv2d (out, in, kh, kw) or, for 1x1 kernels, a Linear (out, in).

        The first of `prefixes` present in the state dict is used.
        """
        name, weight = self.take([p + ".weight" for p in prefixes], model, layer.kernel)
        if weight.ndim == 2:
            weight = weight[:, :, None, None]
        if weight.ndim != 4:
            raise UserInputError(
                f"{self.source}: tensor {name!r} has shape {weight.shape}, expected a convolution kernel"
            )
        self.add(model, layer.kernel, name, np.transpose(weight, (2, 3, 1, 0)))
        stem = name[: -len(".weight")]
        self.add(model, layer.bias, stem + ".bias", self.take([stem + ".bias"], model, layer.bias)[1])

    def norm(self, model, layer, prefix):
        self.add(model, layer.gamma, prefix + ".weight", self.take([prefix + ".weight"], model, layer.gamma)[1])
        self.add(model, layer.beta, prefix + ".bias", self.take([prefix + ".bias"], model, layer.beta)[1])

    def layer(self, model, layer, prefix):
        if isinstance(layer, VAEResnetBlock):
            for ours, theirs in _RESNET_PARTS:
                sublayer = getattr(layer, ours)
                if sublayer is not None:
                    self.layer(model, sublayer, f"{prefix}.{theirs}")
        elif isinstance(layer, VAEAttentionBlock):
            for ours, theirs in _ATTENTION_PARTS:
                sublayer = getattr(layer, ours)
                if isinstance(sublayer, layers.GroupNormalization):
                    self.norm(model, sublayer, f"{prefix}.{theirs[0]}")
                else:
                    self.conv(model, sublayer, [f"{prefix}.{t}" for t in theirs])
        elif isinstance(layer, layers.GroupNormalization):
            self.norm(model, layer, prefix)
        elif isinstance(layer, layers.Conv2D):
            self.conv(model, layer, [prefix])
        else:
            raise UserInputError(f"{model.name} layer {layer.name!r} has weights the VAE converter does not know")

    def model(self, model, prefixes):
        for layer in model.layers:
            if not layer.weights:
                continue
            for pattern, template in prefixes:
                match = re.fullmatch(pattern, layer.name)
                if match:
                    self.layer(model, layer, template.format(*match.groups()))
                    break
            else:
                raise UserInputError(
                    f"{model.name} layer {layer.name!r} has no counterpart in a diffusers AutoencoderKL"
                )

    def assign(self):
        for variable, array in self.pairs:
            variable.assign(array.astype(variable.dtype))


def vae_from_diffusers(encoder, decoder, state_dict):
    """Assign a diffusers `AutoencoderKL` state dict to our encoder and/or decoder.

    Names are diffusers' (`encoder.down_blocks.0.resnets.0.conv1.weight`, ...; torch layouts:
    convolutions `(out, in, kh, kw)`). The mid-block attention may be stored as linear layers
    (`to_q`, `to_k`, `to_v`, `to_out.0`) or under the deprecated names (`query`, `key`, `value`,
    `proj_attn`, as linear weights or 1x1 convolution kernels). Every tensor of the converted halves
    is used exactly once.

    Args:
        encoder: VAEEncoder or None. Receives `encoder.*` and `quant_conv.*`; None skips them.
        decoder: VAEDecoder or None. Receives `decoder.*` and `post_quant_conv.*`; None skips them.
        state_dict: mapping of str to array. Tensor name -> NumPy array (float).

    Raises:
        UserInputError: a tensor is missing, has the wrong shape, or is left unused (the one-line
            message names it). Nothing is assigned then.

    Examples:
        >>> from safetensors.numpy import load_file  # doctest: +SKIP
        >>> vae_from_diffusers(encoder, decoder, load_file("vae/diffusion_pytorch_model.safetensors"))  # doctest: +SKIP
    """
    plan = _Plan(state_dict, "AutoencoderKL state dict")
    owned = []
    if encoder is not None:
        plan.model(encoder, _ENCODER_PREFIXES)
        owned += ["encoder.", "quant_conv."]
    if decoder is not None:
        plan.model(decoder, _DECODER_PREFIXES)
        owned += ["decoder.", "post_quant_conv."]
    unused = sorted(name for name in plan.tensors if name.startswith(tuple(owned)) and name not in plan.used)
    if unused:
        more = f" and {len(unused) - 1} more" if len(unused) > 1 else ""
        raise UserInputError(
            f"AutoencoderKL state dict: tensor {unused[0]!r}{more} left unused (another VAE configuration?)"
        )
    plan.assign()


def vae_encoder_from_keras_cv(encoder, weights_path):
    """Load KerasCV's `ImageEncoder` weight file (legacy Keras-2 HDF5, e.g. `vae_encoder.h5`) into a VAEEncoder.

    The tensors are matched in layer order (the default VAEEncoder has KerasCV's weight layout). The
    KerasCV model's last Lambda (which keeps `mean * LATENT_SCALE`) holds no weights; our encoder
    returns the full moments.

    Args:
        encoder: VAEEncoder. Default configuration (or one whose weights match the file).
        weights_path: str or path. The `.h5` weight file.

    Raises:
        UserInputError: missing or unreadable file, or a tensor count/shape mismatch (one line).
            Nothing is assigned then.
    """
    load_in_layer_order(encoder, weights_path)


def vae_decoder_from_keras_cv(decoder, weights_path):
    """Load KerasCV's `Decoder` weight file (legacy Keras-2 HDF5, e.g. `kcv_decoder.h5`) into a VAEDecoder.

    The tensors are matched in layer order. KerasCV's decoder starts with a `Rescaling(1 / 0.18215)`
    (no weights); ours takes unscaled latents, so feed it `latents / LATENT_SCALE`.

    Args:
        decoder: VAEDecoder. Default configuration (or one whose weights match the file).
        weights_path: str or path. The `.h5` weight file.

    Raises:
        UserInputError: missing or unreadable file, or a tensor count/shape mismatch (one line).
            Nothing is assigned then.
    """
    load_in_layer_order(decoder, weights_path)
