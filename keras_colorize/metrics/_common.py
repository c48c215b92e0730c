"""Input checks and the Metric base class shared by the image metrics (all maths in float32)."""

import keras
from keras import ops


def check_rgb_batch(name, tensor, min_size=1):
    """Raise a one-line ValueError unless `tensor` is (N, H, W, 3) (unknown dims pass)."""
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[-1] not in (3, None):
        raise ValueError(
            f"{name} must be a batch of sRGB images of shape (N, H, W, 3), got shape {shape}"
        )
    for size in shape[1:3]:
        if size is not None and size < min_size:
            raise ValueError(
                f"{name} must be at least {min_size}x{min_size} pixels, got shape {shape}"
            )


def prepare_pair(y_true, y_pred, min_size=1):
    """Convert two sRGB batches to float32 tensors, after checking their shapes."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    check_rgb_batch("y_true", y_true, min_size)
    check_rgb_batch("y_pred", y_pred, min_size)
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if any(t is not None and p is not None and t != p for t, p in zip(true_shape, pred_shape)):
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {true_shape} and {pred_shape}"
        )
    return ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")


class ImageMetric(keras.metrics.MeanMetricWrapper):
    """Mean over images of a per-image metric function; config is name and dtype."""

    def __init__(self, fn, name, dtype=None, direction=None):
        super().__init__(fn=fn, name=name, dtype=dtype)
        if direction is not None:
            self._direction = direction

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


def deserialize_metrics(configs):
    """Metrics from their serialized configs, leaving out those whose weights are missing.

    A checkpoint compiled with a metric that reads pretrained weights (LPIPS) must still
    load where those weights are not installed: such a metric is left out with a warning.

    Args:
        configs: list of serialized metrics (or metric objects, kept as they are).

    Returns:
        list of `keras.metrics.Metric`.
    """
    import warnings

    from keras_colorize.metrics.weights import WeightsNotFoundError

    metrics = []
    for config in configs or []:
        try:
            metrics.append(keras.saving.deserialize_keras_object(config))
        except WeightsNotFoundError as error:
            warnings.warn(f"a metric of the checkpoint is left out: {error}", UserWarning, stacklevel=2)
    return metrics
