"""CLIP text encoder weights: from a diffusers/transformers state dict or a KerasCV weight file.

Both converters check every tensor before assigning any, so a failed conversion
leaves the model unchanged.
"""


import numpy as np

from keras_colorize.errors import UserInputError
from keras_colorize.models.instruct_pix2pix.convert.keras_cv_files import load_in_layer_order

IGNORED_SUFFIXES = ("embeddings.position_ids",)
"""Buffers of transformers' CLIPTextModel that are not weights (the position indices)."""


def _diffusers_names(model, prefix):
    """(state-dict name, our variable, transpose) for every weight of `model`."""
    embeddings = model.get_layer("embeddings")
    pairs = [
        (f"{prefix}embeddings.token_embedding.weight", embeddings.token_embedding.embeddings, False),
        (f"{prefix}embeddings.position_embedding.weight", embeddings.position_embedding.embeddings, False),
    ]

    def dense(prefix, layer):
        return [(f"{prefix}.weight", layer.kernel, True), (f"{prefix}.bias", layer.bias, False)]

    def norm(prefix, layer):
        return [(f"{prefix}.weight", layer.gamma, False), (f"{prefix}.bias", layer.beta, False)]

    for index in range(model.depth):
        block = model.get_layer(f"encoder_layer_{index}")
        layer = f"{prefix}encoder.layers.{index}"
        pairs += norm(f"{layer}.layer_norm1", block.layer_norm1)
        for projection in ("q_proj", "k_proj", "v_proj", "out_proj"):
            pairs += dense(f"{layer}.self_attn.{projection}", getattr(block.self_attn, projection))
        pairs += norm(f"{layer}.layer_norm2", block.layer_norm2)
        pairs += dense(f"{layer}.mlp.fc1", block.fc1)
        pairs += dense(f"{layer}.mlp.fc2", block.fc2)
    pairs += norm(f"{prefix}final_layer_norm", model.get_layer("final_layer_norm"))
    return pairs


def _assign(assignments):
    """Assign checked NumPy values (cast to each variable's dtype): a list of (variable, value)."""
    for variable, value in assignments:
        variable.assign(value)


def text_encoder_from_diffusers(model, state_dict):
    """Load a transformers `CLIPTextModel` state dict (a diffusers `text_encoder/`) into `model`.

    Linear weights are transposed to Keras kernels; layer-norm weight/bias become
    gamma/beta. Every tensor is used exactly once; the `position_ids` buffer is
    ignored. Names carry the `text_model.` prefix of the published checkpoints
    (`text_model.encoder.layers.0.self_attn.q_proj.weight`) or not (the
    `state_dict()` of transformers 5's `CLIPTextModel`).

    Args:
        model: CLIPTextEncoder. The model to fill (its configuration must match).
        state_dict: mapping str -> np.ndarray. Tensors in transformers naming.

    Returns:
        The model, with the weights assigned.

    Raises:
        UserInputError: a tensor is missing, has the wrong shape, or is not used
            by the model (nothing is assigned then).
    """
    remaining = {name for name in state_dict if not name.endswith(IGNORED_SUFFIXES)}
    prefix = "text_model." if any(name.startswith("text_model.") for name in remaining) else ""
    assignments = []
    for name, variable, transpose in _diffusers_names(model, prefix):
        if name not in state_dict:
            raise UserInputError(f"text encoder checkpoint: missing tensor {name}")
        value = np.asarray(state_dict[name])
        if transpose:
            value = value.T
        if tuple(value.shape) != tuple(variable.shape):
            got = value.T.shape if transpose else value.shape
            expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
            raise UserInputError(
                f"text encoder checkpoint: tensor {name} has shape {tuple(got)}, expected {expected}"
            )
        remaining.discard(name)
        assignments.append((variable, value))
    if remaining:
        names = sorted(remaining)
        raise UserInputError(
            f"text encoder checkpoint: {len(names)} tensor(s) the model does not use, e.g. {names[0]} "
            f"(is it a CLIPTextModel of the same depth?)"
        )
    _assign(assignments)
    return model


def text_encoder_from_keras_cv(model, weights_path):
    """Load KerasCV's `TextEncoder` weight file (legacy Keras-2 HDF5) into `model`.

    The file's weights are matched to the model's in layer order (KerasCV's
    `kcv_encoder.h5` has exactly the default `CLIPTextEncoder`'s ordered weight
    shapes).

    Args:
        model: CLIPTextEncoder. The model to fill (default configuration for
            KerasCV's file).
        weights_path: str or path. The legacy `.h5` weight file.

    Returns:
        The model, with the weights assigned.

    Raises:
        UserInputError: the file cannot be read, holds a different number of
            weights, or a weight's shape differs (nothing is assigned then).
    """
    return load_in_layer_order(model, weights_path)
