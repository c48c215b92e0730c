"""The evaluation protocol: colorizers and the gray baseline over a data set, streamed.

Every image is compared in sRGB in [0, 1] (float32, never rounded to uint8) at the
evaluation size: the prediction is the image's own L* with the predicted a*b*, so
the metrics measure the colour a model adds, and the gray baseline (L* kept,
a* = b* = 0) is always scored beside the models. Per-image metrics are averaged per
image, then over images with running means; set metrics (FID, KID) compare the set
of truths with the set of predictions. Nothing but a few example images is kept, so
memory does not grow with the data set.
"""

import hashlib
import math
from pathlib import Path

import numpy as np

from keras_colorize.errors import UserInputError, first_line

METRICS = (
    "psnr",
    "ssim",
    "mae",
    "lpips",
    "fid",
    "kid",
    "colorfulness",
    "colorfulness_gap",
    "ciede2000",
    "ab_mse",
)
"""Every column an evaluation can report, in report order."""

SET_METRICS = ("fid", "kid")
"""Columns computed over the whole set rather than per image."""

FID_MIN_IMAGES = 2048
"""Below this many images the default report gives KID instead of FID (FID is biased on small sets)."""

GRAY_KEY = "gray_baseline"
GRAY_LABEL = "gray baseline"

DEFINITIONS = {
    "psnr": "10 log10(1 / MSE) over the pixels and channels of an image, data range 1, in dB (100 dB when identical)",
    "ssim": "SSIM of Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, "
    "population covariances, valid region, mean over R, G and B",
    "mae": "mean |truth - prediction| over pixels and channels, on the 0-255 scale",
    "lpips": "LPIPS v0.1 (Zhang et al. 2018): {network} features of both images (mapped to [-1, 1] "
    "inside the metric), unit-normalised, weighted by the learned linear heads, averaged spatially and "
    "summed over layers",
    "fid": "Frechet distance between Gaussians fitted to the Inception pool features (2048-d) of all "
    "truths and of all predictions (Heusel et al. 2017); one value per row, not per image",
    "kid": "kernel inception distance (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial "
    "kernel on the same Inception features, mean over random subsets; one value per row",
    "colorfulness": "Hasler and Suesstrunk (2003) colourfulness of the prediction on the 0-255 scale: "
    "sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2), rg = R - G, yb = (R + G) / 2 - B",
    "colorfulness_gap": "|colourfulness(prediction) - colourfulness(truth)| per image",
    "ciede2000": "CIEDE2000 colour difference (Sharma et al. 2005, kL = kC = kH = 1) of truth and "
    "prediction in CIE L*a*b* (D65), averaged over pixels",
    "ab_mse": "mean squared error of a* and b* in model units (ab / 128), per pixel and channel",
}
"""One line per metric: what a column means."""

DIRECTIONS = {
    "psnr": "higher",
    "ssim": "higher",
    "mae": "lower",
    "lpips": "lower",
    "fid": "lower",
    "kid": "lower",
    "colorfulness": None,
    "colorfulness_gap": "lower",
    "ciede2000": "lower",
    "ab_mse": "lower",
}
"""Which way is better for each column (None: neither, compare with the truth)."""

RANDOM_WEIGHTS = "random weights: plumbing only"


def file_sha256(path, chunk_size=1 << 20):
    """The SHA-256 of a file, as 64 hex digits (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_record(path, what):
    """How a network's weights are named in a report: file name, path and hash."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: {what} weights file not found")
    return {"file": path.name, "path": str(path), "sha256": file_sha256(path)}


def parse_metric_names(names):
    """Validate a list of requested columns.

    Args:
        names: iterable of str or None. Column names (case-insensitive); an item may
            hold several separated by commas. None or empty means the default.

    Returns:
        A tuple of known column names in report order, or None for the default.

    Raises:
        UserInputError: a name is not one of `METRICS`.
    """
    if not names:
        return None
    if isinstance(names, str):
        names = [names]
    wanted = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in METRICS:
                raise UserInputError(f"--metrics: unknown metric {name!r} (choose from: {', '.join(METRICS)})")
            wanted.append(name)
    if not wanted:
        return None
    return tuple(name for name in METRICS if name in wanted)


class MetricPlan:
    """The columns of an evaluation and the networks behind LPIPS, FID and KID.

    By default every column that can be computed is reported. LPIPS needs its
    converted weights (`lpips_weights`, else the `keras_colorize.metrics.LPIPS`
    cache); FID and KID need the Inception weights (`fid_weights`, else the
    cache's file). A default
    column whose weights are missing is left out, with the reason in `left_out`.
    Of FID and KID the default reports one: KID below `FID_MIN_IMAGES` images
    (FID is strongly biased on small sets), FID otherwise. Asked for by name,
    LPIPS without weights is an error, and FID or KID without weights run on
    seeded random weights, which checks the plumbing only (the report says so).

    Args:
        metrics: sequence of str or None. The columns to report (see `METRICS`);
            None for the default. Defaults to None.
        num_images: int or None. Size of the data set (chooses FID or KID).
            Defaults to None.
        image_size: int or None. Side of the evaluated crops; LPIPS is left out
            (or, asked for by name, refused) below the smallest size its network
            takes. Defaults to None (not checked).
        lpips_weights: str, Path or None. Converted LPIPS weights file. Defaults
            to None (the LPIPS cache).
        lpips_network: str. LPIPS feature network. Defaults to "alex".
        fid_weights: str, Path or None. Inception weights file for FID and KID.
            Defaults to None (the weights cache's file, when
            `keras-colorize weights fid` wrote one).
        seed: int. Seed of random FID/KID weights. Defaults to 0.

    Attributes:
        columns: tuple of str. The reported columns, in report order.
        left_out: dict. Column -> one-line reason it is not reported.
        weights: dict. "lpips" / "fid" / "kid" -> a record of the weights used
            (`file`, `path`, `sha256`, or `note`).

    Raises:
        UserInputError: an unknown column, a weights file that does not exist or
            cannot be read, or LPIPS asked for by name without weights.
    """

    def __init__(
        self,
        metrics=None,
        num_images=None,
        image_size=None,
        lpips_weights=None,
        lpips_network="alex",
        fid_weights=None,
        seed=0,
    ):
        requested = parse_metric_names(metrics)
        explicit = requested is not None
        self.num_images = num_images
        self.image_size = image_size
        self.lpips_network = str(lpips_network)
        self.seed = int(seed)
        self.left_out = {}
        self.weights = {}
        self._lpips_weights = lpips_weights
        from keras_colorize.metrics.weights import cached_fid_weights

        self._fid_weights = fid_weights if fid_weights is not None else cached_fid_weights()
        wanted = list(requested) if explicit else [name for name in METRICS if name not in SET_METRICS]
        if "lpips" in wanted and not self._setup_lpips(explicit):
            wanted.remove("lpips")
        set_wanted = [name for name in SET_METRICS if name in wanted] if explicit else list(SET_METRICS)
        if set_wanted and self._setup_inception(set_wanted, explicit):
            if explicit:
                wanted.extend(name for name in set_wanted if name not in wanted)
            else:
                chosen = self._default_set_metric()
                other = "fid" if chosen == "kid" else "kid"
                wanted.append(chosen)
                self.weights.pop(other, None)
                if num_images is not None:
                    relation = "<" if chosen == "kid" else ">="
                    self.left_out[other] = (
                        f"{num_images} images ({relation} {FID_MIN_IMAGES}): {chosen.upper()} is reported "
                        "instead (ask for both with --metrics)"
                    )
        self.columns = tuple(name for name in METRICS if name in wanted)
        self.per_image_columns = tuple(name for name in self.columns if name not in SET_METRICS)
        self.set_columns = tuple(name for name in self.columns if name in SET_METRICS)

    def _default_set_metric(self):
        if self.num_images is not None and self.num_images < FID_MIN_IMAGES:
            return "kid"
        return "fid"

    def _setup_lpips(self, explicit):
        try:
            from keras_colorize.metrics import LPIPS
            from keras_colorize.metrics.weights import canonical_lpips_network

            self.lpips_network = canonical_lpips_network(self.lpips_network)
        except ImportError:
            reason = "this installation has no keras_colorize.metrics.LPIPS"
            if explicit:
                raise UserInputError(f"--metrics lpips: {reason}") from None
            self.left_out["lpips"] = reason
            return False
        record = None
        if self._lpips_weights is not None:
            record = _weights_record(self._lpips_weights, "LPIPS")
        try:
            LPIPS(network=self.lpips_network, weights=self._lpips_weights)  # loads the network once
        except (ValueError, OSError) as error:
            if self._lpips_weights is not None:
                raise UserInputError(f"--lpips-weights {self._lpips_weights}: {first_line(error)}") from None
            reason = f"no LPIPS weights ({first_line(error)})"
            if explicit:
                raise UserInputError(f"--metrics lpips: {reason}") from None
            self.left_out["lpips"] = reason + "; give a weights file with --lpips-weights"
            return False
        try:
            from keras_colorize.metrics.lpips import LPIPS_MIN_SIZE

            min_size = LPIPS_MIN_SIZE.get(self.lpips_network, 1)
        except ImportError:
            min_size = 1
        if self.image_size is not None and int(self.image_size) < min_size:
            reason = (
                f"the {self.lpips_network} network needs images of at least {min_size}x{min_size}, "
                f"not {self.image_size}"
            )
            if explicit:
                raise UserInputError(f"--metrics lpips: {reason}")
            self.left_out["lpips"] = reason
            return False
        if record is None:
            record = self._cached_weights_record()
        record["network"] = self.lpips_network
        self.weights["lpips"] = record
        return True

    def _cached_weights_record(self):
        try:
            from keras_colorize.metrics.weights import lpips_weights_path

            return _weights_record(lpips_weights_path(self.lpips_network), "LPIPS")
        except (ImportError, ValueError):
            return {"note": "converted LPIPS v0.1 weights from the keras-colorize cache"}

    def _setup_inception(self, names, explicit):
        try:
            from keras_colorize import metrics as metric_module

            for name in names:
                getattr(metric_module, "FrechetInceptionDistance" if name == "fid" else "KernelInceptionDistance")
        except (ImportError, AttributeError):
            reason = "this installation has no FrechetInceptionDistance / KernelInceptionDistance"
            if explicit:
                raise UserInputError(f"--metrics {','.join(names)}: {reason}") from None
            for name in names:
                self.left_out[name] = reason
            return False
        if self._fid_weights is not None:
            record = _weights_record(self._fid_weights, "Inception")
        elif explicit:
            record = {"note": RANDOM_WEIGHTS}
        else:
            for name in names:
                self.left_out[name] = (
                    "no Inception weights file given (--fid-weights); random weights would measure nothing"
                )
            return False
        for name in names:
            self.weights[name] = dict(record)
        return True

    @property
    def random_inception(self):
        """True when FID/KID run on random weights (plumbing only)."""
        return bool(self.set_columns) and self._fid_weights is None

    def new_set_metrics(self):
        """Fresh FID/KID metrics for one row.

        Random weights (no `fid_weights`) are drawn after seeding Keras with `seed`,
        so they are the same from run to run.

        Returns:
            dict: column name -> `keras.metrics.Metric` taking sRGB in [0, 1].
        """
        import keras

        from keras_colorize import metrics as metric_module

        classes = {"fid": "FrechetInceptionDistance", "kid": "KernelInceptionDistance"}
        made = {}
        for name in self.set_columns:
            if self._fid_weights is None:
                keras.utils.set_random_seed(self.seed)
            made[name] = getattr(metric_module, classes[name])(weights=self._fid_weights)
        return made

    @staticmethod
    def set_results(made):
        """The values of one row's FID/KID metrics, and their spread where known.

        Returns:
            A tuple of dicts `(values, spread)`: column -> float; `spread` holds
            KID's standard deviation over subsets.
        """
        from keras import ops

        values, spread = {}, {}
        for name, metric in made.items():
            values[name] = float(np.asarray(ops.convert_to_numpy(metric.result())).reshape(()))
            if hasattr(metric, "result_std"):
                spread[name] = float(np.asarray(metric.result_std()).reshape(()))
        return values, spread

    def per_image_values(self, truth, prediction, ab_true, ab_pred):
        """The per-image columns of a batch.

        Args:
            truth: sRGB in [0, 1], float32, shape (N, H, W, 3).
            prediction: sRGB in [0, 1], float32, shape (N, H, W, 3).
            ab_true: model-space ab in [-1, 1] of the truth, shape (N, H, W, 2).
            ab_pred: model-space ab in [-1, 1] of the prediction, shape (N, H, W, 2).

        Returns:
            dict: column -> float64 array of shape (N,).
        """
        from keras import ops

        from keras_colorize import metrics

        functions = {
            "psnr": metrics.psnr,
            "ssim": metrics.ssim,
            "mae": metrics.mean_absolute_error_255,
            "colorfulness": lambda t, p: metrics.colorfulness(p),
            "colorfulness_gap": metrics.colorfulness_gap,
            "ciede2000": metrics.mean_ciede2000,
        }
        y_true = ops.convert_to_tensor(truth)
        y_pred = ops.convert_to_tensor(prediction)
        values = {}
        for name in self.per_image_columns:
            if name in functions:
                values[name] = ops.convert_to_numpy(functions[name](y_true, y_pred))
            elif name == "lpips":
                values[name] = self._lpips_per_image(truth, prediction)
            elif name == "ab_mse":
                difference = np.asarray(ab_pred, "float64") - np.asarray(ab_true, "float64")
                values[name] = np.mean(difference**2, axis=(1, 2, 3))
        return {name: np.asarray(v, "float64").reshape(-1) for name, v in values.items()}

    def _lpips_per_image(self, truth, prediction):
        """LPIPS of each image (`keras_colorize.metrics.lpips_distance`, network loaded once)."""
        from keras import ops

        from keras_colorize.metrics import lpips_distance

        distances = lpips_distance(truth, prediction, network=self.lpips_network, weights=self._lpips_weights)
        return np.asarray(ops.convert_to_numpy(distances), "float64")


class _RunningMean:
    """Mean and standard deviation of a stream of values (Chan et al.'s batch update)."""

    def __init__(self):
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values):
        values = np.asarray(values, "float64").reshape(-1)
        if not len(values):
            return
        batch_mean = float(np.mean(values))
        batch_m2 = float(np.sum((values - batch_mean) ** 2))
        total = self.count + len(values)
        delta = batch_mean - self.mean
        self.mean += delta * len(values) / total
        self.m2 += batch_m2 + delta * delta * self.count * len(values) / total
        self.count = total

    @property
    def std(self):
        return math.sqrt(self.m2 / self.count) if self.count else float("nan")


def model_run_size(colorizer, size, label="model"):
    """How a colorizer runs on crops of `size`: directly, or at its own size.

    A generator that takes any size (U-Nets) runs on the crops themselves, which
    must then be multiples of its `size_divisor`. A generator with a fixed input
    size sees the crops' L resized to that size, and its ab is resized back
    (the Colorizer's any-size inference). A colorizer of whole photos without a
    Keras generator (`SavedModelColorizer`, `OnnxColorizer`, `DiffusionColorizer`)
    colorizes each gray crop with its own `colorize`.

    Args:
        colorizer: keras_colorize.Colorizer or a whole-photo colorizer. The model.
        size: int or (int, int). The evaluation crop size.
        label: str. The model's name in messages. Defaults to "model".

    Returns:
        A tuple `(mode, (height, width))`: mode "direct", "resized" or "photo", and
        the size the generator runs at (the crop size for "photo").

    Raises:
        UserInputError: the size does not suit a generator that takes any size.
    """
    size = tuple(int(s) for s in np.broadcast_to(size, 2))
    generator = getattr(colorizer, "generator", None)
    if generator is None:  # an exported model or a diffusion pipeline: whole photos in, photos out
        return "photo", size
    fixed = getattr(generator, "image_size", None)
    fixed = None if fixed is None else tuple(int(s) for s in np.broadcast_to(fixed, 2))
    if fixed is not None and fixed != size:
        return "resized", fixed
    divisor = int(getattr(generator, "size_divisor", 1) or 1)
    if any(s % divisor for s in size):
        raise UserInputError(
            f"evaluation size {size[0]}x{size[1]} must be a multiple of {divisor} "
            f"for {label} ({type(generator).__name__})"
        )
    return "direct", size


def _predict_ab(colorizer, mode, run_size, truth, l_norm):
    """Model-space ab at the crop size, NumPy float32 (N, H, W, 2)."""
    from keras import ops

    from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
    from keras_colorize.colorizer import ab_output

    if mode == "direct":
        return np.asarray(ops.convert_to_numpy(ab_output(colorizer.predict_on_batch(truth))), "float32")
    if mode == "photo":
        no_colour = ops.concatenate([ops.zeros_like(l_norm)] * 2, axis=-1)
        gray = ops.convert_to_numpy(model_outputs_to_rgb(l_norm, no_colour, "channels_last"))
        gray = np.round(np.clip(np.asarray(gray), 0.0, 1.0) * 255.0).astype("uint8")
        colorized = np.stack([colorizer.colorize(image) for image in gray]).astype("float32") / 255.0
        _, ab = rgb_to_model_inputs(ops.convert_to_tensor(colorized), "channels_last")
        return np.asarray(ops.convert_to_numpy(ab), "float32")
    l_small = ops.image.resize(l_norm, run_size, antialias=True, data_format="channels_last")
    ab_small = ab_output(colorizer.generator.predict_on_batch(l_small))
    ab = ops.image.resize(ops.convert_to_tensor(ab_small), truth.shape[1:3], data_format="channels_last")
    return np.asarray(ops.convert_to_numpy(ab), "float32")


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


def _dataset_files(dataset):
    """File names of a non-shuffled ImageFolder, relative to its root; else None."""
    files = getattr(dataset, "files", None)
    if files is None or getattr(dataset, "shuffle", False) or getattr(dataset, "repeat", 1) != 1:
        return None
    root = getattr(dataset, "root", None)
    names = []
    for path in files:
        try:
            names.append(str(Path(path).relative_to(root)) if root is not None else str(path))
        except ValueError:
            names.append(str(path))
    return names


def _num_images(dataset):
    if isinstance(dataset, np.ndarray):
        return 1 if dataset.ndim == 3 else len(dataset)
    files = getattr(dataset, "files", None)
    if files is not None:
        return len(files) * int(getattr(dataset, "repeat", 1))
    return None


def _named_models(colorizers):
    if isinstance(colorizers, dict):
        items = list(colorizers.items())
    elif isinstance(colorizers, (list, tuple)):
        items = [(f"model_{i + 1}", c) if not isinstance(c, tuple) else c for i, c in enumerate(colorizers)]
        if len(items) == 1 and not isinstance(colorizers[0], tuple):
            items = [("model", items[0][1])]
    else:
        items = [("model", colorizers)]
    keys = [str(k) for k, _ in items]
    if len(set(keys)) != len(keys) or GRAY_KEY in keys or GRAY_LABEL in keys:
        raise ValueError(f"model names must be unique and not {GRAY_KEY!r}, got {keys}")
    return [(str(k), c) for k, c in items]


def evaluate_models(colorizers, dataset, plan=None, num_examples=0, on_rows=None, verbose=0):
    """Evaluate colorizers and the gray baseline on the same images, streaming.

    Batches are read once; every model colorizes each batch, per-image metrics go
    to running means (and to `on_rows` as they come), FID/KID metrics accumulate
    their statistics, and only the first `num_examples` images are kept. The same
    data and models give the same numbers.

    Args:
        colorizers: a `keras_colorize.Colorizer`, a list of them, or a dict of
            name -> Colorizer (names label the rows). A single model is named
            "model"; the gray baseline is always added as "gray_baseline".
        dataset: keras.utils.PyDataset (e.g. `keras_colorize.data.ImageFolder`
            with `training=False`), an iterable of batches, or one array. Batches
            are sRGB in [0, 1], float32, shape (N, H, W, 3), all the same size (an
            `(images, labels)` tuple uses the images).
        plan: MetricPlan or None. The columns; None for the default plan.
            Defaults to None.
        num_examples: int. Keep this many images (truth, gray input and each
            model's prediction) under `"examples"`. Defaults to 0.
        on_rows: callable or None. Called per batch with a list of dicts, one per
            image and row: `image` (0-based index), `file` (name relative to the
            data folder, or ""), `model` (row name) and each per-image column.
            Defaults to None.
        verbose: int. 1 shows a `keras.utils.Progbar`. Defaults to 0.

    Returns:
        A dict: `num_images`, `image_size` ([H, W]), `columns` and
        `per_image_columns` (tuples), `rows` (list of (name, label), models then
        the gray baseline), `metrics` and `std` (row name -> column -> float),
        `truth` (the truth's mean `colorfulness`), `models` (name -> `mode` and
        `run_size`), and with `num_examples` > 0, `examples`: `truth`, `gray`
        (sRGB in [0, 1], float32, (k, H, W, 3)), `predictions` (name -> same)
        and `files` (list of str).

    Raises:
        ValueError: the data set holds no image or its batches differ in size.
        UserInputError: a model cannot run on the crops (see `model_run_size`).

    Examples:
        >>> from keras_colorize.loading import load_colorizer
        >>> from keras_colorize.data import ImageFolder
        >>> from keras_colorize.evaluation import evaluate_models
        >>> models = {"v1": load_colorizer("a.keras"), "v2": load_colorizer("b.keras")}  # doctest: +SKIP
        >>> result = evaluate_models(models, ImageFolder("photos/", 64))  # doctest: +SKIP
        >>> result["metrics"]["v1"]["psnr"], result["metrics"]["gray_baseline"]["psnr"]  # doctest: +SKIP
    """
    import keras
    from keras import ops

    from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
    from keras_colorize.metrics import colorfulness

    models = _named_models(colorizers)
    total = _num_images(dataset)
    plan = plan if plan is not None else MetricPlan(num_images=total)
    keys = [key for key, _ in models] + [GRAY_KEY]
    running = {key: {name: _RunningMean() for name in plan.per_image_columns} for key in keys}
    set_metrics = {key: plan.new_set_metrics() for key in keys} if plan.set_columns else {}
    truth_colorfulness = _RunningMean()
    files = _dataset_files(dataset)
    examples = {"truth": [], "gray": [], "predictions": {key: [] for key, _ in models}, "files": []}
    progress = keras.utils.Progbar(total, unit_name="image", verbose=verbose) if verbose else None
    runs, image_size, count = {}, None, 0
    for batch in _batches(dataset):
        truth = np.asarray(ops.convert_to_numpy(batch), "float32")
        if truth.size == 0:
            continue
        if truth.ndim != 4 or truth.shape[-1] != 3:
            raise ValueError(f"evaluation batches must be sRGB of shape (N, H, W, 3), got {truth.shape}")
        if image_size is None:
            image_size = tuple(truth.shape[1:3])
            runs = {key: model_run_size(colorizer, image_size, key) for key, colorizer in models}
        elif tuple(truth.shape[1:3]) != image_size:
            raise ValueError(f"evaluation batches differ in size: {truth.shape[1:3]} after {image_size}")
        l_norm, ab_true = rgb_to_model_inputs(ops.convert_to_tensor(truth), "channels_last")
        ab_true = np.asarray(ops.convert_to_numpy(ab_true), "float32")
        versions = {}
        for key, colorizer in models:
            mode, run_size = runs[key]
            ab_pred = _predict_ab(colorizer, mode, run_size, truth, l_norm)
            rgb = ops.convert_to_numpy(model_outputs_to_rgb(l_norm, ops.convert_to_tensor(ab_pred), "channels_last"))
            versions[key] = (np.asarray(rgb, "float32"), ab_pred)
        gray_ab = np.zeros_like(ab_true)
        gray = ops.convert_to_numpy(model_outputs_to_rgb(l_norm, ops.convert_to_tensor(gray_ab), "channels_last"))
        versions[GRAY_KEY] = (np.asarray(gray, "float32"), gray_ab)

        batch_values = {}
        for key in keys:
            prediction, ab_pred = versions[key]
            values = plan.per_image_values(truth, prediction, ab_true, ab_pred)
            for name, column in values.items():
                running[key][name].update(column)
            for metric in set_metrics.get(key, {}).values():
                metric.update_state(truth, prediction)
            batch_values[key] = values
        truth_colorfulness.update(ops.convert_to_numpy(colorfulness(ops.convert_to_tensor(truth))))

        if on_rows is not None:
            rows = []
            for offset in range(len(truth)):
                index = count + offset
                name = files[index] if files is not None and index < len(files) else ""
                for key in keys:
                    row = {"image": index, "file": name, "model": key}
                    row.update({n: float(v[offset]) for n, v in batch_values[key].items()})
                    rows.append(row)
            on_rows(rows)

        keep = max(0, num_examples - count)
        if keep:
            examples["truth"].append(truth[:keep])
            examples["gray"].append(versions[GRAY_KEY][0][:keep])
            for key, _ in models:
                examples["predictions"][key].append(versions[key][0][:keep])
            for offset in range(min(keep, len(truth))):
                index = count + offset
                examples["files"].append(files[index] if files is not None and index < len(files) else f"image {index}")
        count += len(truth)
        if progress is not None:
            progress.update(count)
    if count == 0:
        raise ValueError("evaluation data holds no image")

    metrics, spread = {}, {}
    for key in keys:
        set_values, set_spread = plan.set_results(set_metrics[key]) if key in set_metrics else ({}, {})
        metrics[key], spread[key] = {}, {}
        for name in plan.columns:
            if name in SET_METRICS:
                metrics[key][name] = set_values[name]
                if name in set_spread:
                    spread[key][name] = set_spread[name]
            else:
                metrics[key][name] = running[key][name].mean
                spread[key][name] = running[key][name].std
    labels = {key: key for key, _ in models}
    result = {
        "num_images": count,
        "image_size": [int(s) for s in image_size],
        "columns": tuple(plan.columns),
        "per_image_columns": tuple(plan.per_image_columns),
        "rows": [(key, labels[key]) for key, _ in models] + [(GRAY_KEY, GRAY_LABEL)],
        "metrics": metrics,
        "std": spread,
        "truth": {"colorfulness": truth_colorfulness.mean},
        "models": {key: {"mode": runs[key][0], "run_size": [int(s) for s in runs[key][1]]} for key, _ in models},
    }
    if num_examples > 0:
        result["examples"] = {
            "truth": np.concatenate(examples["truth"]),
            "gray": np.concatenate(examples["gray"]),
            "predictions": {key: np.concatenate(v) for key, v in examples["predictions"].items()},
            "files": examples["files"],
        }
    return result


LEGACY_METRIC_NAMES = ("psnr", "ssim", "mae", "colorfulness", "colorfulness_gap", "ciede2000", "ab_mse")
"""The columns of `evaluate_colorizer`, in report order (the per-image metrics that need no weights)."""

LEGACY_ROWS = (("model", "model"), (GRAY_KEY, GRAY_LABEL))
"""(key in the result, label in the table) of the rows of `evaluate_colorizer`."""


def evaluate_colorizer(colorizer, dataset, num_examples=0):
    """Evaluate one Colorizer and the gray baseline on a dataset (the weight-free columns).

    A shortcut for `evaluate_models` with the columns `LEGACY_METRIC_NAMES` and a
    flat result.

    Args:
        colorizer: keras_colorize.Colorizer. The model; it runs on the images at
            the size the dataset gives (see `model_run_size`).
        dataset: keras.utils.PyDataset (e.g. `keras_colorize.data.ImageFolder` with
            `training=False`), an iterable of batches, or one array. Batches are sRGB
            in [0, 1], float32, shape (N, H, W, 3).
        num_examples: int. Keep this many (truth, prediction, gray) images in the
            result under `"examples"`. Defaults to 0.

    Returns:
        A dict: `num_images`, `image_size` ([H, W]), `model` and `gray_baseline`
        (each a dict of the `LEGACY_METRIC_NAMES` means), `truth` (the truth's mean
        colourfulness), `columns`, `rows`, and with `num_examples` > 0,
        `examples` (`truth`, `prediction` and `gray`: sRGB in [0, 1], float32,
        shape (k, H, W, 3)).

    Raises:
        ValueError: when the dataset holds no image.

    Examples:
        >>> from keras_colorize.loading import load_colorizer
        >>> from keras_colorize.data import ImageFolder
        >>> from keras_colorize.evaluation import evaluate_colorizer
        >>> colorizer = load_colorizer("runs/quickstart/checkpoints/best.keras")  # doctest: +SKIP
        >>> result = evaluate_colorizer(colorizer, ImageFolder("photos/", 64))  # doctest: +SKIP
        >>> result["model"]["psnr"], result["gray_baseline"]["psnr"]  # doctest: +SKIP
    """
    plan = MetricPlan(metrics=LEGACY_METRIC_NAMES)
    result = evaluate_models({"model": colorizer}, dataset, plan=plan, num_examples=num_examples)
    flat = {
        "num_images": result["num_images"],
        "image_size": result["image_size"],
        "columns": result["columns"],
        "rows": list(LEGACY_ROWS),
        "model": result["metrics"]["model"],
        GRAY_KEY: result["metrics"][GRAY_KEY],
        "truth": result["truth"],
    }
    if num_examples > 0:
        examples = result["examples"]
        flat["examples"] = {
            "truth": examples["truth"],
            "prediction": examples["predictions"]["model"],
            "gray": examples["gray"],
        }
    return flat
