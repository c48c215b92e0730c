"""Mixed precision for training runs: the recipe key `train.mixed_precision`.

A policy is one of Keras's global dtype policies:

- `float32` (or null): everything in float32.
- `mixed_bfloat16`: layers compute in bfloat16, variables stay float32. No loss
  scaling is needed (bfloat16 has float32's exponent range).
- `mixed_float16`: layers compute in float16, variables stay float32; losses are
  scaled before the gradients and the gradients unscaled before the update, with
  a dynamic scale, so that small gradients do not underflow. `Colorizer.compile`
  gets a `keras.optimizers.LossScaleOptimizer` from Keras itself; the adversarial
  trainers keep one dynamic scale per network (see
  `keras_colorize.training.gan.AdversarialTrainer.optimizer_update`).

The policy applies to the networks built (or loaded from a `.keras` file) while it
is set; colour conversion (`keras_colorize.color`), the generators' ab outputs and
the losses stay float32.

Examples:
    >>> from keras_colorize.training.precision import precision_policy
    >>> with precision_policy("mixed_bfloat16"):
    ...     pass  # build and compile the models here
"""

import contextlib

from keras_colorize.errors import UserInputError

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
"""The values of `train.mixed_precision` (besides null, which means float32)."""


class PrecisionError(UserInputError):
    """A mixed-precision policy that is unknown or cannot run here."""


def check_policy(policy):
    """The policy name, checked: one of `POLICIES`, or None.

    Args:
        policy: str or None. A dtype policy name. None means float32.

    Returns:
        The policy name, "float32" for None.

    Raises:
        PrecisionError: an unknown policy name.
    """
    if policy is None:
        return "float32"
    if policy not in POLICIES:
        raise PrecisionError(f"train.mixed_precision must be one of {', '.join(POLICIES)} or null, got {policy!r}")
    return policy


@contextlib.contextmanager
def precision_policy(policy):
    """Set Keras's global dtype policy inside the block, and restore the previous one after.

    Models built inside the block compute in the policy's dtype. The previous
    policy comes back on exit (also after an error), so a notebook session is not
    left changed.

    Args:
        policy: str or None. "float32", "mixed_bfloat16", "mixed_float16" or None
            (float32; the global policy is then left as it is).

    Yields:
        The policy name.

    Raises:
        PrecisionError: an unknown policy name.
    """
    import keras

    name = check_policy(policy)
    if policy is None:
        yield keras.config.dtype_policy().name
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)


def computes_in_float16(*models):
    """Whether any of the models (or their layers) computes in float16.

    Args:
        *models: keras.Model or None.

    Returns:
        bool.
    """
    for model in models:
        if model is None:
            continue
        if model.compute_dtype == "float16":
            return True
        if any(getattr(layer, "compute_dtype", None) == "float16" for layer in model._flatten_layers()):
            return True
    return False


__all__ = ["POLICIES", "PrecisionError", "check_policy", "computes_in_float16", "precision_policy"]
