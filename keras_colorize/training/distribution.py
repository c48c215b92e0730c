"""Data-parallel training on all local devices: the recipe key `train.distribution`.

`train.distribution: data_parallel` replicates the model on every local device
(`keras.distribution.list_devices()`: the GPUs, else the TPUs, else the CPUs) and
splits each batch over them; the global batch size stays `train.batch_size`.

- JAX: `keras.distribution.DataParallel` over the devices, set with
  `keras.distribution.set_distribution` before the model is built; `fit()` shards
  each batch along its first axis and XLA computes the step on the global batch,
  so the custom adversarial steps need no change. Several hosts: when
  `KERAS_DISTRIBUTION_NUM_PROCESSES` is above 1, `keras.distribution.initialize()`
  (`jax.distributed.initialize`) runs first, reading
  `KERAS_DISTRIBUTION_JOB_ADDRESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`.
- TensorFlow: `tf.distribute.MirroredStrategy` over the devices (with `TF_CONFIG`
  set: `tf.distribute.MultiWorkerMirroredStrategy`); its scope holds the building,
  compiling and fitting of the model. Gradients are summed over the replicas, so
  the adversarial trainers divide each replica's loss by the number of replicas
  (`keras_colorize.training.gradients.replicas_in_sync`).
- PyTorch: not supported. Keras 3's distribution API has no PyTorch
  implementation and the PyTorch trainer's `fit()` runs on one device.

Examples:
    >>> from keras_colorize.training.distribution import data_parallel
    >>> with data_parallel("data_parallel") as replicas:  # doctest: +SKIP
    ...     pass  # build, compile and fit the model here
"""

import contextlib
import os

from keras_colorize.errors import UserInputError

DISTRIBUTIONS = ("data_parallel",)
"""The values of `train.distribution` (besides null: one device)."""


class DistributionError(UserInputError):
    """A distribution that is unknown or cannot run on this backend."""


def check_distribution(distribution, backend=None):
    """Check a `train.distribution` value against the backend.

    Args:
        distribution: str or None. "data_parallel" or None.
        backend: str or None. The Keras backend. Defaults to None (the current one).

    Returns:
        The distribution, or None.

    Raises:
        DistributionError: an unknown value, or data_parallel on PyTorch.
    """
    if distribution is None:
        return None
    if distribution not in DISTRIBUTIONS:
        raise DistributionError(
            f"train.distribution must be one of {', '.join(DISTRIBUTIONS)} or null, got {distribution!r}"
        )
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend == "torch":
        raise DistributionError(
            "data_parallel is not supported on the PyTorch backend: Keras's distribution API has no PyTorch "
            "implementation and fit() runs on one device; use the JAX or TensorFlow backend, "
            "or set train.distribution: null"
        )
    return distribution


def local_devices():
    """The devices data-parallel training uses, as Keras names them ("gpu:0", "cpu:1", ...).

    Returns:
        A list of str.
    """
    import keras

    return list(keras.distribution.list_devices())


def _initialize_multi_host():
    """Join the other processes of a multi-host JAX run, when the environment describes one."""
    import keras

    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1:
        keras.distribution.initialize()


def _tensorflow_strategy(devices):
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MirroredStrategy([f"/{device}" for device in devices])


@contextlib.contextmanager
def data_parallel(distribution, batch_size=None, say=print):
    """Build, compile and fit a model inside this block to train it data-parallel.

    With `distribution` None, or a single device, the block runs as usual.
    The previous JAX distribution is restored on exit.

    Args:
        distribution: str or None. "data_parallel" or None.
        batch_size: int or None. The global batch size; must be divisible by the
            number of devices on JAX. Defaults to None (not checked).
        say: callable. Prints a line about the devices used. Defaults to `print`.

    Yields:
        The number of replicas (1 without data parallelism).

    Raises:
        DistributionError: an unknown value, PyTorch, or a batch size that the
            devices cannot share.
    """
    import keras

    if check_distribution(distribution) is None:
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "jax":
        _initialize_multi_host()
    devices = local_devices()
    if len(devices) < 2 and not os.environ.get("TF_CONFIG"):
        say(f"data_parallel: one device ({devices[0] if devices else 'none'}); training as usual")
        yield 1
        return
    if backend == "jax":
        if batch_size is not None and batch_size % len(devices):
            raise DistributionError(
                f"train.batch_size {batch_size} must be divisible by the {len(devices)} devices of data_parallel"
            )
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        say(f"data_parallel: {len(devices)} devices ({', '.join(devices)}), global batch {batch_size}")
        try:
            yield len(devices)
        finally:
            keras.distribution.set_distribution(previous)
        return
    strategy = _tensorflow_strategy(devices)
    replicas = strategy.num_replicas_in_sync
    say(f"data_parallel: {replicas} replicas ({', '.join(devices)}), global batch {batch_size}")
    with strategy.scope():
        yield replicas


__all__ = ["DISTRIBUTIONS", "DistributionError", "check_distribution", "data_parallel", "local_devices"]
