"""FID and KID with the standard FID Inception network, built in Keras.

The network is the TensorFlow Inception of 2015-12-05 used by the FID authors, in the
form of pytorch-fid's `InceptionV3` (and torch-fidelity's): torchvision's Inception-v3
layout with its blocks patched as the TensorFlow graph computes them (average pools
that do not count the padding in Mixed_5b..Mixed_6e and Mixed_7b, a max pool in the
pool branch of Mixed_7c), batch norm with epsilon 1e-3, and the 2048 features of the
final global average pool. Images (sRGB in [0, 1], any size) are resized to 299x299
with bilinear interpolation (no antialiasing, half-pixel centres: PyTorch's
`F.interpolate(..., mode="bilinear", align_corners=False)` as pytorch-fid uses it)
and mapped to [-1, 1].

Statistics are gathered on the host in float64: FID keeps running sums (a mean and
a covariance per image set, never the features), so any number of images can be
scored with constant memory; KID keeps the features themselves, at most
`max_samples` per set (a uniform reservoir sample beyond that).

References:
    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium", NeurIPS 2017 (FID).
    Binkowski et al., "Demystifying MMD GANs", ICLR 2018 (KID).
"""

import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_colorize.errors import UserInputError
from keras_colorize.metrics._common import check_rgb_batch
from keras_colorize.metrics.weights import (
    _BATCH_NORM_WEIGHTS,
    FID_WEIGHTS_FILENAME,
    WeightsNotFoundError,
    cached_fid_weights,
    _torch_state_dict,
    fid_inception_arrays_from_state_dict,
    inception_units,
    read_weight_file,
)
from keras_colorize.serialization import register

FID_INPUT_SIZE = 299
FID_FEATURES = 2048
INCEPTION_BATCH_NORM_EPSILON = 1e-3
# Offset added to the covariance diagonals when their product is singular (pytorch-fid's).
FRECHET_EPSILON = 1e-6
# Largest imaginary part of the matrix square root's diagonal that counts as rounding noise.
FRECHET_MAX_IMAGINARY = 1e-3
# KID defaults of torch-fidelity: 100 subsets of 1000 images, seed 2020.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020
KID_MAX_SAMPLES = 10_000
FID_BATCH_SIZE = 50


# ----------------------------------------------------------------------------- network


def _unit(x, filters, kernel_size, name, strides=1, padding="same"):
    """Convolution (no bias), batch norm (epsilon 1e-3), ReLU: torchvision's BasicConv2d."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=INCEPTION_BATCH_NORM_EPSILON, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _average_pool(x, name):
    # 'same' average pooling divides by the number of real pixels in each window,
    # as TensorFlow does (PyTorch's count_include_pad=False).
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_a(x, pool_features, name):
    branch1x1 = _unit(x, 64, 1, f"{name}_branch1x1")
    branch5x5 = _unit(x, 48, 1, f"{name}_branch5x5_1")
    branch5x5 = _unit(branch5x5, 64, 5, f"{name}_branch5x5_2")
    branch3x3dbl = _unit(x, 64, 1, f"{name}_branch3x3dbl_1")
    branch3x3dbl = _unit(branch3x3dbl, 96, 3, f"{name}_branch3x3dbl_2")
    branch3x3dbl = _unit(branch3x3dbl, 96, 3, f"{name}_branch3x3dbl_3")
    branch_pool = _average_pool(x, f"{name}_avg_pool")
    branch_pool = _unit(branch_pool, pool_features, 1, f"{name}_branch_pool")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1x1, branch5x5, branch3x3dbl, branch_pool])


def _block_b(x, name):
    branch3x3 = _unit(x, 384, 3, f"{name}_branch3x3", strides=2, padding="valid")
    branch3x3dbl = _unit(x, 64, 1, f"{name}_branch3x3dbl_1")
    branch3x3dbl = _unit(branch3x3dbl, 96, 3, f"{name}_branch3x3dbl_2")
    branch3x3dbl = _unit(branch3x3dbl, 96, 3, f"{name}_branch3x3dbl_3", strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_max_pool")(x)
    return keras.layers.Concatenate(name=f"{name}_concat")([branch3x3, branch3x3dbl, branch_pool])


def _block_c(x, channels_7x7, name):
    c7 = channels_7x7
    branch1x1 = _unit(x, 192, 1, f"{name}_branch1x1")
    branch7x7 = _unit(x, c7, 1, f"{name}_branch7x7_1")
    branch7x7 = _unit(branch7x7, c7, (1, 7), f"{name}_branch7x7_2")
    branch7x7 = _unit(branch7x7, 192, (7, 1), f"{name}_branch7x7_3")
    branch7x7dbl = _unit(x, c7, 1, f"{name}_branch7x7dbl_1")
    branch7x7dbl = _unit(branch7x7dbl, c7, (7, 1), f"{name}_branch7x7dbl_2")
    branch7x7dbl = _unit(branch7x7dbl, c7, (1, 7), f"{name}_branch7x7dbl_3")
    branch7x7dbl = _unit(branch7x7dbl, c7, (7, 1), f"{name}_branch7x7dbl_4")
    branch7x7dbl = _unit(branch7x7dbl, 192, (1, 7), f"{name}_branch7x7dbl_5")
    branch_pool = _average_pool(x, f"{name}_avg_pool")
    branch_pool = _unit(branch_pool, 192, 1, f"{name}_branch_pool")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1x1, branch7x7, branch7x7dbl, branch_pool])


def _block_d(x, name):
    branch3x3 = _unit(x, 192, 1, f"{name}_branch3x3_1")
    branch3x3 = _unit(branch3x3, 320, 3, f"{name}_branch3x3_2", strides=2, padding="valid")
    branch7x7x3 = _unit(x, 192, 1, f"{name}_branch7x7x3_1")
    branch7x7x3 = _unit(branch7x7x3, 192, (1, 7), f"{name}_branch7x7x3_2")
    branch7x7x3 = _unit(branch7x7x3, 192, (7, 1), f"{name}_branch7x7x3_3")
    branch7x7x3 = _unit(branch7x7x3, 192, 3, f"{name}_branch7x7x3_4", strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_max_pool")(x)
    return keras.layers.Concatenate(name=f"{name}_concat")([branch3x3, branch7x7x3, branch_pool])


def _block_e(x, name, pool):
    branch1x1 = _unit(x, 320, 1, f"{name}_branch1x1")
    branch3x3 = _unit(x, 384, 1, f"{name}_branch3x3_1")
    branch3x3a = _unit(branch3x3, 384, (1, 3), f"{name}_branch3x3_2a")
    branch3x3b = _unit(branch3x3, 384, (3, 1), f"{name}_branch3x3_2b")
    branch3x3dbl = _unit(x, 448, 1, f"{name}_branch3x3dbl_1")
    branch3x3dbl = _unit(branch3x3dbl, 384, 3, f"{name}_branch3x3dbl_2")
    branch3x3dbla = _unit(branch3x3dbl, 384, (1, 3), f"{name}_branch3x3dbl_3a")
    branch3x3dblb = _unit(branch3x3dbl, 384, (3, 1), f"{name}_branch3x3dbl_3b")
    if pool == "max":
        # The FID graph max-pools here (pytorch-fid's FIDInceptionE_2).
        branch_pool = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_max_pool")(x)
    else:
        branch_pool = _average_pool(x, f"{name}_avg_pool")
    branch_pool = _unit(branch_pool, 192, 1, f"{name}_branch_pool")
    return keras.layers.Concatenate(name=f"{name}_concat")(
        [branch1x1, branch3x3a, branch3x3b, branch3x3dbla, branch3x3dblb, branch_pool]
    )


@register
class FIDInceptionV3(keras.Model):
    """The FID Inception network (TensorFlow Inception 2015-12-05, pytorch-fid's variant).

    Maps images to the 2048 pool features used by FID and KID. Built with random
    weights; `load_fid_inception` (or `load_weights_file`) loads converted ones.

    Args:
        preprocess: bool. True: inputs are sRGB in [0, 1] of any size, resized to
            299x299 (bilinear, no antialiasing) and mapped to [-1, 1] inside the
            model. False: inputs are already in [-1, 1] (the network's own input
            scale), used at their size. Defaults to True.

    Inputs of `call`: float32 images of shape (N, H, W, 3) (see `preprocess`).
    Outputs of `call`: float32 features of shape (N, 2048).

    Examples:
        `images`: sRGB in [0, 1], (N, H, W, 3):

        >>> from keras_colorize.metrics import load_fid_inception
        >>> network = load_fid_inception("fid_inception_2015-12-05.npz")  # doctest: +SKIP
        >>> features = network.predict_on_batch(images)  # doctest: +SKIP
    """

    def __init__(self, preprocess=True, trainable=False, **kwargs):
        inputs = keras.Input((None, None, 3), name="images")
        x = inputs
        if preprocess:
            x = keras.layers.Resizing(
                FID_INPUT_SIZE, FID_INPUT_SIZE, interpolation="bilinear", antialias=False, name="resize"
            )(x)
            x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(x)
        x = _unit(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
        x = _unit(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
        x = _unit(x, 64, 3, "Conv2d_2b_3x3")
        x = keras.layers.MaxPooling2D(3, strides=2, name="max_pool_1")(x)
        x = _unit(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
        x = _unit(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
        x = keras.layers.MaxPooling2D(3, strides=2, name="max_pool_2")(x)
        x = _block_a(x, 32, "Mixed_5b")
        x = _block_a(x, 64, "Mixed_5c")
        x = _block_a(x, 64, "Mixed_5d")
        x = _block_b(x, "Mixed_6a")
        x = _block_c(x, 128, "Mixed_6b")
        x = _block_c(x, 160, "Mixed_6c")
        x = _block_c(x, 160, "Mixed_6d")
        x = _block_c(x, 192, "Mixed_6e")
        x = _block_d(x, "Mixed_7a")
        x = _block_e(x, "Mixed_7b", pool="avg")
        x = _block_e(x, "Mixed_7c", pool="max")
        features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
        kwargs.setdefault("name", "fid_inception_v3")
        super().__init__(inputs=inputs, outputs=features, **kwargs)
        self.preprocess = bool(preprocess)
        self.trainable = trainable

    def weight_shapes(self):
        """Shapes of the arrays of a converted weight file, by key."""
        shapes = {}
        for _, prefix in inception_units():
            shapes[f"{prefix}_conv/kernel"] = tuple(self.get_layer(f"{prefix}_conv").kernel.shape)
            channels = shapes[f"{prefix}_conv/kernel"][-1]
            for keras_name, _ in _BATCH_NORM_WEIGHTS:
                shapes[f"{prefix}_bn/{keras_name}"] = (channels,)
        return shapes

    def set_weight_arrays(self, arrays):
        """Set all weights from `<layer>/<weight>` arrays (the `.npz` layout)."""
        for _, prefix in inception_units():
            self.get_layer(f"{prefix}_conv").set_weights([arrays[f"{prefix}_conv/kernel"]])
            self.get_layer(f"{prefix}_bn").set_weights(
                [arrays[f"{prefix}_bn/{keras_name}"] for keras_name, _ in _BATCH_NORM_WEIGHTS]
            )

    def load_weights_file(self, path):
        """Load converted weights: a `.npz` from `convert_fid_inception_weights`, or
        pytorch-fid's `.pth` directly (needs PyTorch; read with `weights_only=True`).

        Args:
            path: str or Path. The weight file.
        """
        path = Path(path)
        if path.suffix == ".pth":
            state = _torch_state_dict(path)
            arrays = fid_inception_arrays_from_state_dict(state, path)
            shapes = self.weight_shapes()
            for key, shape in shapes.items():
                if tuple(arrays[key].shape) != shape:
                    raise UserInputError(f"{path}: {key!r} has shape {arrays[key].shape}, expected {shape}")
        else:
            arrays = read_weight_file(path, self.weight_shapes())
        self.set_weight_arrays(arrays)

    def torch_state_dict(self):
        """The weights as a pytorch-fid `InceptionV3` state dict of NumPy arrays.

        Returns:
            dict: keys such as `Mixed_5b.branch1x1.conv.weight` (kernels in
            PyTorch's (out, in, height, width) layout) and
            `Mixed_5b.branch1x1.bn.running_var`; no `fc.*` entries.
        """
        state = {}
        for torch_prefix, prefix in inception_units():
            kernel = keras.ops.convert_to_numpy(self.get_layer(f"{prefix}_conv").kernel)
            state[f"{torch_prefix}.conv.weight"] = np.transpose(kernel, (3, 2, 0, 1)).copy()
            values = self.get_layer(f"{prefix}_bn").get_weights()
            for (_, torch_name), value in zip(_BATCH_NORM_WEIGHTS, values):
                state[f"{torch_prefix}.bn.{torch_name}"] = np.asarray(value).copy()
        return state

    def get_config(self):
        return {"preprocess": self.preprocess, "trainable": self.trainable, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_NETWORKS = {}


def load_fid_inception(weights=None):
    """The FID Inception network with its weights, built once per process and file.

    Args:
        weights: str or Path or None. A `.npz` from `convert_fid_inception_weights`
            or pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`. None reads the
            weights cache (`keras-colorize weights fid` writes it) and, when the
            cache holds none, gives random weights with a warning: scores are then
            only good for testing the plumbing. Defaults to None.

    Returns:
        FIDInceptionV3: with `preprocess=True` (sRGB in [0, 1], any size).

    Raises:
        WeightsNotFoundError: `weights` names a file that does not exist.
    """
    if weights is None:
        weights = cached_fid_weights()
    if weights is None:
        warnings.warn(
            "FID Inception with random weights (weights=None): FID/KID scores only test the plumbing "
            "and are not comparable to published values; convert pytorch-fid's weights with "
            "`keras-colorize weights fid pt_inception-2015-12-05-6726825d.pth`",
            stacklevel=3,
        )
        key = None
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"FID Inception weights not found at {path}; convert pytorch-fid's "
                f"pt_inception-2015-12-05-6726825d.pth with `keras-colorize weights fid <pth>` or "
                f"keras_colorize.metrics.convert_fid_inception_weights(<pth>) (writes {FID_WEIGHTS_FILENAME})"
            )
        path = path.resolve()
        key = (str(path), path.stat().st_mtime_ns)
    if key not in _NETWORKS:
        model = FIDInceptionV3()
        if key is not None:
            model.load_weights_file(path)
        _NETWORKS[key] = model
    return _NETWORKS[key]


def fid_inception_features(images, weights=None, batch_size=FID_BATCH_SIZE):
    """The 2048 FID Inception pool features of a batch of images.

    Args:
        images: array or tensor. sRGB in [0, 1], shape (N, H, W, 3), any size.
        weights: str or Path or None. See `load_fid_inception`. Defaults to None.
        batch_size: int. Images per network call. Defaults to 50.

    Returns:
        NumPy float32 array of shape (N, 2048).
    """
    return _extract_features(load_fid_inception(weights), images, batch_size, "images")


def _extract_features(model, images, batch_size, name):
    try:
        images = ops.convert_to_numpy(images)
    except Exception:  # a symbolic tensor inside a compiled function
        raise ValueError(
            "FID/KID accumulate float64 statistics on the host: call update_state eagerly "
            "(an evaluation loop), not as a compiled metric of fit/evaluate"
        ) from None
    images = np.asarray(images, dtype="float32")
    check_rgb_batch(name, images)
    outputs = [
        np.asarray(model.predict_on_batch(images[start : start + batch_size]), dtype="float32")
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, FID_FEATURES), "float32")


# ----------------------------------------------------------------------------- statistics


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=FRECHET_EPSILON):
    """Frechet distance between two Gaussians, in float64.

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)). The matrix
    square root is SciPy's; when it is not finite (a singular product) `eps` is
    added to both diagonals; an imaginary part from rounding (at most 1e-3 on the
    diagonal) is dropped, a larger one is an error.

    Args:
        mu1: array (D,). Mean of the first set of features.
        sigma1: array (D, D). Covariance of the first set.
        mu2: array (D,). Mean of the second set.
        sigma2: array (D, D). Covariance of the second set.
        eps: float. Diagonal offset for a singular product. Defaults to 1e-6.

    Returns:
        float: the squared Frechet distance (FID when the inputs are Inception
        statistics).

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.metrics import frechet_distance
        >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)
        4.0
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, "float64")), np.atleast_1d(np.asarray(mu2, "float64"))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, "float64")), np.atleast_2d(np.asarray(sigma2, "float64"))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {sigma1.shape} and {sigma2.shape}")
    difference = mu1 - mu2
    import scipy.linalg  # imported here: only FID needs SciPy

    def square_root(a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            return scipy.linalg.sqrtm(a @ b)

    covmean = square_root(sigma1, sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = square_root(sigma1 + offset, sigma2 + offset)
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > FRECHET_MAX_IMAGINARY:
            raise ValueError(f"the matrix square root has an imaginary component of {largest:.3g}")
        covmean = covmean.real
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def polynomial_mmd2(features_1, features_2):
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, in float64.

    Args:
        features_1: array (M, D). One set of features.
        features_2: array (M, D). The other set, same size.

    Returns:
        float: sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (M (M - 1)) - 2 sum_{i, j} k(x_i, y_j) / M^2.
    """
    x = np.asarray(features_1, "float64")
    y = np.asarray(features_2, "float64")
    size, dims = x.shape

    def kernel(a, b):
        return (a @ b.T / dims + 1.0) ** 3

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
    return float(within - 2.0 * k_xy.sum() / (size * size))


def kernel_inception_distance(
    features_1, features_2, subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=KID_SEED
):
    """KID: unbiased polynomial-kernel MMD^2 averaged over random subsets (torch-fidelity's protocol).

    Each of `subsets` rounds draws `subset_size` rows of each set without
    replacement (`numpy.random.RandomState(seed).choice`, first set then second)
    and computes `polynomial_mmd2`.

    Args:
        features_1: array (N1, D). Features of one set (e.g. the real images).
        features_2: array (N2, D). Features of the other set.
        subsets: int. Number of subsets. Defaults to 100.
        subset_size: int. Rows per subset, at most min(N1, N2). Defaults to 1000.
        seed: int. Seed of the subset draws. Defaults to 2020.

    Returns:
        (float, float): the mean and the (population) standard deviation over subsets.

    Examples:
        >>> import numpy as np
        >>> from keras_colorize.metrics import kernel_inception_distance
        >>> rng = np.random.default_rng(0)
        >>> same = kernel_inception_distance(rng.random((200, 8)), rng.random((200, 8)), subsets=10, subset_size=100)
        >>> shifted = kernel_inception_distance(rng.random((200, 8)), rng.random((200, 8)) + 0.5, subsets=10, subset_size=100)
        >>> abs(same[0]) < 0.01 < shifted[0]
        True
    """
    features_1 = np.asarray(features_1)
    features_2 = np.asarray(features_2)
    if subset_size < 2 or subset_size > min(len(features_1), len(features_2)):
        raise ValueError(
            f"KID subset_size must be between 2 and the smaller set size "
            f"({len(features_1)} and {len(features_2)} features), got {subset_size}"
        )
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for index in range(subsets):
        first = features_1[rng.choice(len(features_1), subset_size, replace=False)]
        second = features_2[rng.choice(len(features_2), subset_size, replace=False)]
        values[index] = polynomial_mmd2(first, second)
    return float(values.mean()), float(values.std())


class _RunningMoments:
    """Mean and covariance of feature rows, accumulated in float64 around a shift."""

    def __init__(self):
        self.count = 0
        self.shift = self.total = self.outer = None

    def update(self, features):
        features = np.asarray(features, "float64")
        if len(features) == 0:
            return
        if self.count == 0:
            self.shift = features.mean(axis=0)
            self.total = np.zeros_like(self.shift)
            self.outer = np.zeros((len(self.shift), len(self.shift)))
        centred = features - self.shift
        self.count += len(features)
        self.total += centred.sum(axis=0)
        self.outer += centred.T @ centred

    def mean(self):
        return self.shift + self.total / self.count

    def covariance(self):
        """The unbiased covariance (divides by count - 1, as numpy.cov)."""
        centred_mean = self.total / self.count
        return (self.outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)


class _Reservoir:
    """Keeps a uniform random sample of at most `capacity` rows of everything seen."""

    def __init__(self, capacity, seed):
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.rows = None
        self.seen = 0

    def update(self, features):
        features = np.asarray(features, "float32")
        if self.rows is None:
            self.rows = np.empty((0, features.shape[1]), "float32")
        room = self.capacity - len(self.rows)
        if room > 0:
            self.rows = np.concatenate([self.rows, features[:room]])
            self.seen += min(room, len(features))
            features = features[room:]
        for row in features:
            self.seen += 1
            slot = self.rng.integers(self.seen)
            if slot < self.capacity:
                self.rows[slot] = row

    def features(self):
        return self.rows if self.rows is not None else np.zeros((0, FID_FEATURES), "float32")


class _InceptionMetric(keras.metrics.Metric):
    """Shared input handling: features of y_true and y_pred from the FID Inception."""

    def __init__(self, weights=None, name=None, batch_size=FID_BATCH_SIZE, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.weights_path = None if weights is None else str(weights)
        self.batch_size = int(batch_size)
        self._network = load_fid_inception(weights)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch of real (`y_true`) and generated (`y_pred`) images.

        Args:
            y_true: array or eager tensor. Reference images, sRGB in [0, 1],
                shape (N, H, W, 3), any size.
            y_pred: array or eager tensor. Compared images, sRGB in [0, 1],
                shape (M, H', W', 3) (the two sets may differ in size).
            sample_weight: must be None (set statistics take no per-image weights).
        """
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__} does not take sample_weight")
        self.update_features(
            _extract_features(self._network, y_true, self.batch_size, "y_true"),
            _extract_features(self._network, y_pred, self.batch_size, "y_pred"),
        )

    def update_features(self, features_true, features_pred):
        """Add precomputed FID Inception features (e.g. from `fid_inception_features`).

        Lets FID and KID share one pass of the network over the images.

        Args:
            features_true: array (N, 2048). Features of reference images.
            features_pred: array (M, 2048). Features of compared images.
        """
        features_true = np.asarray(features_true)
        features_pred = np.asarray(features_pred)
        for name, features in (("features_true", features_true), ("features_pred", features_pred)):
            if features.ndim != 2 or features.shape[1] != FID_FEATURES:
                raise ValueError(f"{name} must have shape (N, {FID_FEATURES}), got {features.shape}")
        self._add(features_true, features_pred)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "weights": self.weights_path, "batch_size": self.batch_size}


@register
class FrechetInceptionDistance(_InceptionMetric):
    """FID between the images passed as `y_true` and those passed as `y_pred` (lower is better).

    Each set's 2048-d FID Inception features go into running float64 sums (mean and
    covariance), so memory stays constant however many images are scored. Call
    `update_state` eagerly (an evaluation loop); `result()` returns a Python float.

    Args:
        weights: str or Path or None. A `.npz` from `convert_fid_inception_weights`
            or pytorch-fid's `.pth`; None gives random weights with a warning
            (plumbing tests only). Defaults to None.
        name: str. Name of the metric. Defaults to "fid".
        batch_size: int. Images per network call. Defaults to 50.
        dtype: str. Unused (results are float64 Python floats). Defaults to None.

    Examples:
        `batches` yields pairs of sRGB batches in [0, 1], (N, H, W, 3):

        >>> from keras_colorize.metrics import FrechetInceptionDistance
        >>> fid = FrechetInceptionDistance(weights="fid_inception_2015-12-05.npz")  # doctest: +SKIP
        >>> for real, fake in batches:  # doctest: +SKIP
        ...     fid.update_state(real, fake)
        >>> score = fid.result()  # doctest: +SKIP
    """

    def __init__(self, weights=None, name="fid", batch_size=FID_BATCH_SIZE, dtype=None):
        super().__init__(weights=weights, name=name, batch_size=batch_size, dtype=dtype)
        self._direction = "down"

    def reset_state(self):
        self._real = _RunningMoments()
        self._generated = _RunningMoments()

    def _add(self, real, generated):
        self._real.update(real)
        self._generated.update(generated)

    def statistics(self):
        """The float64 statistics so far.

        Returns:
            dict: "mu_true", "sigma_true", "mu_pred", "sigma_pred" (NumPy
            arrays (2048,) and (2048, 2048)), "count_true", "count_pred".
        """
        for moments, name in ((self._real, "y_true"), (self._generated, "y_pred")):
            if moments.count < 2:
                raise ValueError(f"FID needs at least 2 images in {name}, got {moments.count}")
        return {
            "mu_true": self._real.mean(),
            "sigma_true": self._real.covariance(),
            "mu_pred": self._generated.mean(),
            "sigma_pred": self._generated.covariance(),
            "count_true": self._real.count,
            "count_pred": self._generated.count,
        }

    def result(self):
        """FID of the images seen so far (a Python float; a 2048x2048 matrix square root)."""
        stats = self.statistics()
        return frechet_distance(stats["mu_true"], stats["sigma_true"], stats["mu_pred"], stats["sigma_pred"])


@register
class KernelInceptionDistance(_InceptionMetric):
    """KID between the images passed as `y_true` and those passed as `y_pred` (lower is better).

    Keeps the 2048-d float32 features of at most `max_samples` images per set (a
    uniform reservoir sample once more are seen; 10,000 features take 82 MB per
    set), then averages the unbiased cubic-kernel MMD^2 over `subsets` random
    subsets, as torch-fidelity does. With fewer images than `subset_size`, each
    subset holds all the images of the smaller set. `result()` returns the mean
    (a Python float); `result_std()` the standard deviation over subsets.

    Args:
        weights: str or Path or None. As for `FrechetInceptionDistance`. Defaults to None.
        subset_size: int. Images per subset. Defaults to 1000.
        name: str. Name of the metric. Defaults to "kid".
        subsets: int. Number of subsets. Defaults to 100.
        max_samples: int. Features kept per set. Defaults to 10000.
        seed: int. Seed of the reservoir and the subset draws. Defaults to 2020.
        batch_size: int. Images per network call. Defaults to 50.
        dtype: str. Unused. Defaults to None.
    """

    def __init__(
        self,
        weights=None,
        subset_size=KID_SUBSET_SIZE,
        name="kid",
        subsets=KID_SUBSETS,
        max_samples=KID_MAX_SAMPLES,
        seed=KID_SEED,
        batch_size=FID_BATCH_SIZE,
        dtype=None,
    ):
        self.subset_size = int(subset_size)
        self.subsets = int(subsets)
        self.max_samples = int(max_samples)
        self.seed = int(seed)
        if self.max_samples < 2 or self.subset_size < 2 or self.subsets < 1:
            raise ValueError("KID needs subset_size >= 2, max_samples >= 2 and subsets >= 1")
        super().__init__(weights=weights, name=name, batch_size=batch_size, dtype=dtype)
        self._direction = "down"

    def reset_state(self):
        self._real = _Reservoir(self.max_samples, self.seed)
        self._generated = _Reservoir(self.max_samples, self.seed + 1)

    def _add(self, real, generated):
        self._real.update(real)
        self._generated.update(generated)

    def features(self):
        """The kept features: (y_true features, y_pred features), float32 (n, 2048) each."""
        return self._real.features(), self._generated.features()

    def result_with_std(self):
        """(mean, standard deviation) of the MMD^2 over subsets, Python floats."""
        real, generated = self.features()
        size = min(self.subset_size, len(real), len(generated))
        if size < 2:
            raise ValueError(f"KID needs at least 2 images in each set, got {len(real)} and {len(generated)}")
        return kernel_inception_distance(real, generated, self.subsets, size, self.seed)

    def result(self):
        """KID: the mean of the MMD^2 over subsets, a Python float."""
        return self.result_with_std()[0]

    def result_std(self):
        """The standard deviation of the MMD^2 over subsets, a Python float."""
        return self.result_with_std()[1]

    def get_config(self):
        return {
            **super().get_config(),
            "subset_size": self.subset_size,
            "subsets": self.subsets,
            "max_samples": self.max_samples,
            "seed": self.seed,
        }
