"""KerasCV's Stable Diffusion weight files: legacy Keras-2 HDF5, matched to our networks in layer order.

KerasCV publishes `model.save_weights("x.h5")` files: the root `layer_names` attribute gives the
layer order, each layer group's `weight_names` attribute that layer's weights in order (Keras
splits a long attribute into `name0`, `name1`, ...). Our networks' default configurations have
exactly the same ordered list of weight shapes, so the files load by position.
"""

import contextlib
import os

import numpy as np

from keras_colorize.errors import UserInputError


def _string_list(group, name):
    """A list-of-strings attribute, also when split into chunks; None when absent."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
        if not chunks:
            return None
    return [item.decode("utf8") if isinstance(item, bytes) else str(item) for chunk in chunks for item in chunk]


@contextlib.contextmanager
def legacy_h5_weights(weights_path):
    """The weights of a legacy Keras-2 HDF5 weight file, in layer order, while the file is open.

    Args:
        weights_path: str or path. The `.h5` file (KerasCV's `kcv_diffusion_model.h5`, ...).

    Yields:
        list of (str, h5py.Dataset): "layer/weight" name and stored array (read with `np.asarray`).

    Raises:
        UserInputError: the file is missing, unreadable or not a Keras HDF5 weight file.
    """
    import h5py

    path = os.fspath(weights_path)
    if not os.path.isfile(path):
        raise UserInputError(f"no such Keras weight file: {path}")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise UserInputError(f"cannot read the Keras weight file {path}: {str(error).splitlines()[0]}") from None
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        layer_names = _string_list(root, "layer_names")
        if not layer_names:
            raise UserInputError(f"{path}: not a legacy Keras HDF5 weight file (no layer_names attribute)")
        entries = []
        for layer_name in layer_names:
            if layer_name not in root:
                raise UserInputError(f"{path}: layer {layer_name} is listed but has no group")
            group = root[layer_name]
            for weight_name in _string_list(group, "weight_names") or []:
                if weight_name not in group:
                    raise UserInputError(f"{path}: weight {layer_name}/{weight_name} is listed but not stored")
                entries.append((f"{layer_name}/{weight_name}", group[weight_name]))
        yield entries


def read_legacy_h5_weights(weights_path):
    """The weights of a legacy Keras-2 HDF5 weight file, in layer order, as NumPy arrays.

    Args:
        weights_path: str or path. The `.h5` file.

    Returns:
        list of (str, np.ndarray): "layer/weight" name and value.

    Raises:
        UserInputError: as `legacy_h5_weights`.
    """
    with legacy_h5_weights(weights_path) as entries:
        return [(name, np.asarray(dataset)) for name, dataset in entries]


def widen_input_kernel(kernel, channels):
    """A (kh, kw, c, out) kernel with zero weights added for the input channels c..channels-1."""
    widened = np.zeros(kernel.shape[:2] + (channels,) + kernel.shape[3:], kernel.dtype)
    widened[:, :, : kernel.shape[2]] = kernel
    return widened


def load_in_layer_order(model, weights_path, widened=None):
    """Assign a KerasCV weight file to `model.weights` by position, after checking every shape.

    Args:
        model: keras.Model. A network whose ordered weight shapes are the file's.
        weights_path: str or path. The legacy `.h5` file.
        widened: keras.Variable or None. A convolution kernel (kh, kw, c, out) that may take more
            input channels than the file's: the extra channels get zero weights. Defaults to None.

    Returns:
        The model, with the weights assigned.

    Raises:
        UserInputError: the file cannot be read, holds another number of weights, or a weight's
            shape differs (one line naming the file and the weight; nothing is assigned then).
    """
    variables = model.weights
    with legacy_h5_weights(weights_path) as entries:
        if len(entries) != len(variables):
            raise UserInputError(
                f"{weights_path}: holds {len(entries)} weights, {model.name} has {len(variables)} "
                "(a KerasCV file of another network or configuration?)"
            )
        for (name, dataset), variable in zip(entries, variables):
            source, target = tuple(dataset.shape), tuple(variable.shape)
            widens = variable is widened and len(source) == 4 and source[:2] + source[3:] == target[:2] + target[3:]
            if source != target and not (widens and source[2] <= target[2]):
                raise UserInputError(
                    f"{weights_path}: weight {name} has shape {source}, "
                    f"{model.name}'s {variable.path} has {target}"
                )
        for (_, dataset), variable in zip(entries, variables):
            value = np.asarray(dataset)
            if value.shape != tuple(variable.shape):
                value = widen_input_kernel(value, variable.shape[2])
            variable.assign(value.astype(variable.dtype))
    return model
