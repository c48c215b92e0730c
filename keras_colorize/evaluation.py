"""Evaluate a Colorizer against the truth and the gray baseline.

The protocol: every image is compared in sRGB in [0, 1] at the evaluation resolution
(centre crops at the model size unless told otherwise) with PSNR (data range 1), SSIM
(Gaussian window, sigma 1.5, on RGB), MAE on the 0-255 scale, colourfulness (Hasler and
Suesstrunk) of the result and its absolute gap to the truth's, and mean CIEDE2000; plus
`ab_mse`, the mean squared error of a* and b* in model units (ab / 128). Every report
includes the gray baseline (L* kept, a* = b* = 0), so a reader sees what the model adds.
Values are averaged per image, then over images.
"""

import numpy as np

METRIC_NAMES = ("psnr", "ssim", "mae", "colorfulness", "colorfulness_gap", "ciede2000", "ab_mse")
"""The columns of an evaluation, in report order."""

ROWS = (("model", "model"), ("gray_baseline", "gray baseline"))
"""(key in the result, label in the table) of the evaluated rows."""


def _batches(dataset, batch_size=16):
    """Yield sRGB batches from a PyDataset, an iterable of batches, or one array."""
    if isinstance(dataset, np.ndarray):
        if dataset.ndim == 3:
            dataset = dataset[None]
        for start in range(0, len(dataset), batch_size):
            yield dataset[start : start + batch_size]
        return
    if hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__"):
        iterator = (dataset[i] for i in range(len(dataset)))
    else:
        iterator = iter(dataset)
    for batch in iterator:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        yield batch


def _per_image_metrics(truth, prediction, ab_error):
    """The metric values of each image: a dict of (N,) float64 arrays."""
    from keras import ops

    from keras_colorize import metrics

    y_true = ops.convert_to_tensor(truth)
    y_pred = ops.convert_to_tensor(prediction)
    values = {
        "psnr": metrics.psnr(y_true, y_pred),
        "ssim": metrics.ssim(y_true, y_pred),
        "mae": metrics.mean_absolute_error_255(y_true, y_pred),
        "colorfulness": metrics.colorfulness(y_pred),
        "colorfulness_gap": metrics.colorfulness_gap(y_true, y_pred),
        "ciede2000": metrics.mean_ciede2000(y_true, y_pred),
    }
    values = {k: ops.convert_to_numpy(v).astype("float64").reshape(-1) for k, v in values.items()}
    values["ab_mse"] = np.asarray(ab_error, "float64").reshape(-1)
    return values


def evaluate_colorizer(colorizer, dataset, num_examples=0):
    """Evaluate a Colorizer and the gray baseline on a dataset.

    Args:
        colorizer: keras_colorize.Colorizer. The model; images are evaluated at the
            size the dataset gives (which must suit the generator).
        dataset: keras.utils.PyDataset (e.g. `keras_colorize.data.ImageFolder` with
            `training=False`), an iterable of batches, or one array. Batches are sRGB
            in [0, 1], float32, shape (N, H, W, 3) (an `(images, labels)` tuple uses
            the images).
        num_examples: int. Keep this many (truth, prediction, gray) images in the
            result under `"examples"` (for a comparison picture). Defaults to 0.

    Returns:
        A dict: `num_images`, `image_size` ([H, W]), `model` and `gray_baseline`
        (each a dict of the `METRIC_NAMES` means), `truth` (the truth's mean
        colourfulness), and, when `num_examples` > 0, `examples` (a dict of
        `truth`, `prediction` and `gray` arrays, sRGB in [0, 1], float32,
        shape (k, H, W, 3)).

    Raises:
        ValueError: when the dataset holds no image.

    Example:
    >>> from keras_colorize.colorizer import load_colorizer
    >>> from keras_colorize.data import ImageFolder
    >>> from keras_colorize.evaluation import evaluate_colorizer
    >>> colorizer = load_colorizer("runs/quickstart/checkpoints/best.keras")  # doctest: +SKIP
    >>> result = evaluate_colorizer(colorizer, ImageFolder("photos/", 64))  # doctest: +SKIP
    >>> result["model"]["psnr"], result["gray_baseline"]["psnr"]  # doctest: +SKIP
    """
    from keras import ops

    from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
    from keras_colorize.colorizer import gray_baseline
    from keras_colorize.metrics import colorfulness

    per_image = {key: {name: [] for name in METRIC_NAMES} for key, _ in ROWS}
    truth_colorfulness = []
    examples = {"truth": [], "prediction": [], "gray": []}
    image_size = None
    count = 0
    for batch in _batches(dataset):
        truth = np.asarray(ops.convert_to_numpy(batch), "float32")
        if truth.size == 0:
            continue
        image_size = list(truth.shape[1:3])
        l_norm, ab_true = rgb_to_model_inputs(ops.convert_to_tensor(truth), "channels_last")
        ab_pred = ops.convert_to_tensor(colorizer.predict_on_batch(truth))
        prediction = ops.convert_to_numpy(model_outputs_to_rgb(l_norm, ab_pred, "channels_last"))
        gray = gray_baseline(truth)
        ab_true = ops.convert_to_numpy(ab_true).astype("float64")
        ab_pred = ops.convert_to_numpy(ab_pred).astype("float64")
        errors = {
            "model": np.mean((ab_pred - ab_true) ** 2, axis=(1, 2, 3)),
            "gray_baseline": np.mean(ab_true**2, axis=(1, 2, 3)),
        }
        for key, version in (("model", prediction), ("gray_baseline", gray)):
            for name, values in _per_image_metrics(truth, version, errors[key]).items():
                per_image[key][name].append(values)
        truth_colorfulness.append(ops.convert_to_numpy(colorfulness(ops.convert_to_tensor(truth))).reshape(-1))
        keep = max(0, num_examples - count)
        if keep:
            examples["truth"].append(truth[:keep])
            examples["prediction"].append(np.asarray(prediction[:keep], "float32"))
            examples["gray"].append(np.asarray(gray[:keep], "float32"))
        count += len(truth)
    if count == 0:
        raise ValueError("evaluation data holds no image")
    result = {"num_images": count, "image_size": image_size}
    for key, _ in ROWS:
        result[key] = {name: float(np.mean(np.concatenate(per_image[key][name]))) for name in METRIC_NAMES}
    result["truth"] = {"colorfulness": float(np.mean(np.concatenate(truth_colorfulness)))}
    if num_examples > 0:
        result["examples"] = {k: np.concatenate(v) for k, v in examples.items()}
    return result


def format_table(result):
    """The metrics of `evaluate_colorizer` as a fixed-width text table.

    Args:
        result: dict. As returned by `evaluate_colorizer`.

    Returns:
        A string: a header row of metric names, then one row per evaluated version
        (model, gray baseline).
    """
    label_width = max(len(label) for _, label in ROWS)
    widths = [max(len(name), 9) for name in METRIC_NAMES]
    lines = ["  ".join([" " * label_width] + [name.rjust(w) for name, w in zip(METRIC_NAMES, widths)])]
    for key, label in ROWS:
        cells = [_format_value(result[key][name]).rjust(w) for name, w in zip(METRIC_NAMES, widths)]
        lines.append("  ".join([label.ljust(label_width)] + cells))
    return "\n".join(lines)


def _format_value(value):
    if abs(value) >= 100:
        return f"{value:.2f}"
    if abs(value) >= 1:
        return f"{value:.4f}"
    return f"{value:.5f}"
