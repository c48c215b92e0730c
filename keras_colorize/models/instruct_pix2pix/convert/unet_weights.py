"""Weights into `InstructPix2PixUNet`: from a diffusers `UNet2DConditionModel` state dict, or from
KerasCV's `DiffusionModel` weight file (legacy Keras HDF5).

Both read NumPy arrays only (no torch, no diffusers, no KerasCV at run time).
"""

import numpy as np

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.keras_cv_files import load_in_layer_order, widen_input_kernel


def unet_from_diffusers(unet, state_dict, widen_input=False):
    """Assign a diffusers `UNet2DConditionModel` state dict to an `InstructPix2PixUNet`.

    Torch convolution kernels (out, in, kh, kw) become Keras HWIO kernels; linear weights
    (out, in) are transposed; the 1x1 transformer projections may be convolutions (SD v1) or
    linear layers (`use_linear_projection`). Every tensor of the state dict and every weight of the
    U-Net is used exactly once.

    Args:
        unet: InstructPix2PixUNet. The model to fill, with the checkpoint's configuration.
        state_dict: mapping str -> NumPy array. The tensors in diffusers' naming
            (`conv_in.weight`, `down_blocks.0.resnets.0.norm1.weight`, ...).
        widen_input: bool. Accept a `conv_in.weight` with fewer input channels than the U-Net (a
            4-channel Stable Diffusion checkpoint into the 8-channel InstructPix2Pix U-Net): the
            extra input channels get zero weights. Defaults to False (a mismatch is an error).

    Raises:
        UserInputError: a tensor is missing, has the wrong shape, or is not part of this U-Net
            (one line naming the tensor).
    """
    remaining = dict(state_dict)
    assignments = []
    for variable, key, kind in _diffusers_plan(unet):
        if key not in remaining:
            raise UserInputError(f"diffusers U-Net checkpoint: missing tensor {key!r}")
        value = _from_torch(np.asarray(remaining.pop(key)), kind, tuple(variable.shape))
        if widen_input and key == "conv_in.weight" and value is not None and value.ndim == 4:
            if value.shape[2] < variable.shape[2] and value.shape[3] == variable.shape[3]:
                value = widen_input_kernel(value, variable.shape[2])
        if value is None or value.shape != tuple(variable.shape):
            raise UserInputError(
                f"diffusers U-Net checkpoint: tensor {key!r} has shape {tuple(np.shape(state_dict[key]))}, "
                f"which does not fit the U-Net weight {variable.path!r} of shape {tuple(variable.shape)}"
            )
        assignments.append((variable, value))
    if remaining:
        extra = sorted(remaining)
        raise UserInputError(
            f"diffusers U-Net checkpoint: {len(extra)} tensor(s) not part of this U-Net configuration, "
            f"first {extra[0]!r}"
        )
    for variable, value in assignments:
        variable.assign(value)


def unet_from_keras_cv(unet, weights_path):
    """Load KerasCV's `DiffusionModel` weight file into an `InstructPix2PixUNet`.

    The file is the legacy Keras HDF5 of `model.save_weights("...h5")` (`layer_names` and
    `weight_names` attributes), as KerasCV publishes it; its weights are matched in order with the
    U-Net's (the default configuration has KerasCV's layout). The input convolution of KerasCV's
    model has 4 input channels: into a wider U-Net (8 channels for InstructPix2Pix) the extra input
    channels of its kernel are zero, the bias is unchanged.

    Args:
        unet: InstructPix2PixUNet. The model to fill (SD v1 sizes, any `input_channels` >= 4).
        weights_path: str or path-like. The `.h5` file.

    Raises:
        UserInputError: the file is missing, unreadable, or does not hold this U-Net's weights
            (one line naming the file and the weight).
    """
    load_in_layer_order(unet, weights_path, widened=unet.get_layer("conv_in").kernel)


def _from_torch(value, kind, target_shape):
    """A torch tensor as the Keras weight of the given kind, or None when its rank does not fit."""
    if kind == "conv":
        return value.transpose(2, 3, 1, 0) if value.ndim == 4 else None
    if kind == "pointwise":
        if value.ndim == 4:
            return value.transpose(2, 3, 1, 0)
        return value.T.reshape(target_shape) if value.ndim == 2 and value.size == np.prod(target_shape) else None
    if kind == "dense":
        return value.T if value.ndim == 2 else None
    return value


def _diffusers_plan(unet):
    """(Keras variable, diffusers key, kind) for every weight of the U-Net, in model order."""
    plan = []

    def add(layer, prefix, kind):
        names = {"conv": ("weight", "bias"), "pointwise": ("weight", "bias"), "dense": ("weight", "bias")}
        if kind == "norm":
            plan.extend([(layer.gamma, f"{prefix}.weight", "vector"), (layer.beta, f"{prefix}.bias", "vector")])
            return
        weight, bias = names[kind]
        plan.append((layer.kernel, f"{prefix}.{weight}", kind))
        if layer.bias is not None:
            plan.append((layer.bias, f"{prefix}.{bias}", "vector"))

    def resnet(name, prefix):
        block = unet.get_layer(name)
        add(block.norm_1, f"{prefix}.norm1", "norm")
        add(block.conv_1, f"{prefix}.conv1", "conv")
        add(block.time_projection, f"{prefix}.time_emb_proj", "dense")
        add(block.norm_2, f"{prefix}.norm2", "norm")
        add(block.conv_2, f"{prefix}.conv2", "conv")
        if block.shortcut is not None:
            add(block.shortcut, f"{prefix}.conv_shortcut", "pointwise")

    def transformer(name, prefix):
        layer = unet.get_layer(name)
        block = layer.block
        inner = f"{prefix}.transformer_blocks.0"
        add(layer.norm, f"{prefix}.norm", "norm")
        add(layer.projection_in, f"{prefix}.proj_in", "pointwise")
        add(block.norm_1, f"{inner}.norm1", "norm")
        for attention, key in ((block.self_attention, "attn1"), (block.cross_attention, "attn2")):
            add(attention.query, f"{inner}.{key}.to_q", "dense")
            add(attention.key, f"{inner}.{key}.to_k", "dense")
            add(attention.value, f"{inner}.{key}.to_v", "dense")
            add(attention.output_projection, f"{inner}.{key}.to_out.0", "dense")
            if key == "attn1":
                add(block.norm_2, f"{inner}.norm2", "norm")
        add(block.norm_3, f"{inner}.norm3", "norm")
        add(block.feed_forward_in, f"{inner}.ff.net.0.proj", "dense")
        add(block.feed_forward_out, f"{inner}.ff.net.2", "dense")
        add(layer.projection_out, f"{prefix}.proj_out", "pointwise")

    levels = len(unet.widths)
    add(unet.get_layer("time_dense_1"), "time_embedding.linear_1", "dense")
    add(unet.get_layer("time_dense_2"), "time_embedding.linear_2", "dense")
    add(unet.get_layer("conv_in"), "conv_in", "conv")
    for level in range(levels):
        for index in range(unet.layers_per_block):
            resnet(f"down_{level}_res_{index}", f"down_blocks.{level}.resnets.{index}")
            if unet.attention_levels[level]:
                transformer(f"down_{level}_attention_{index}", f"down_blocks.{level}.attentions.{index}")
        if level < levels - 1:
            add(unet.get_layer(f"down_{level}_downsample"), f"down_blocks.{level}.downsamplers.0.conv", "conv")
    resnet("mid_res_0", "mid_block.resnets.0")
    transformer("mid_attention", "mid_block.attentions.0")
    resnet("mid_res_1", "mid_block.resnets.1")
    for level in reversed(range(levels)):
        block_index = levels - 1 - level
        for index in range(unet.layers_per_block + 1):
            resnet(f"up_{level}_res_{index}", f"up_blocks.{block_index}.resnets.{index}")
            if unet.attention_levels[level]:
                transformer(f"up_{level}_attention_{index}", f"up_blocks.{block_index}.attentions.{index}")
        if level > 0:
            add(unet.get_layer(f"up_{level}_upsample_conv"), f"up_blocks.{block_index}.upsamplers.0.conv", "conv")
    add(unet.get_layer("norm_out"), "conv_norm_out", "norm")
    add(unet.get_layer("conv_out"), "conv_out", "conv")
    return plan
