"""Reconstruction losses on model-space ab (both in [-1, 1])."""

import keras

from keras_colorize.errors import UserInputError

RECONSTRUCTION_LOSSES = {
    "l1": keras.losses.MeanAbsoluteError,
    "l2": keras.losses.MeanSquaredError,
    "huber": keras.losses.Huber,
}


def get_reconstruction_loss(loss):
    """A Keras loss from a name ("l1", "l2", "huber", or any Keras loss name) or object.

    The losses compare model-space ab (a*/128, b*/128), values in [-1, 1].

    Args:
        loss: str or keras.losses.Loss. "l1" (mean absolute error), "l2" (mean
            squared error), "huber" (Huber, delta 1), another Keras loss name, or
            a loss object (returned as it is).

    Returns:
        A `keras.losses.Loss` (or the object given).

    Raises:
        UserInputError: an unknown loss name.

    Examples:
        >>> from keras_colorize.losses import get_reconstruction_loss
        >>> get_reconstruction_loss("l2").name
        'mean_squared_error'
    """
    if isinstance(loss, str):
        key = loss.lower()
        if key in RECONSTRUCTION_LOSSES:
            return RECONSTRUCTION_LOSSES[key]()
        try:
            return keras.losses.get(loss)
        except ValueError:
            raise UserInputError(
                f"unknown loss {loss!r} (use one of {', '.join(RECONSTRUCTION_LOSSES)} or a Keras loss name)"
            ) from None
    return loss
