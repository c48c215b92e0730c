"""The a*b* plane quantised into in-gamut bins (Zhang et al. 2016), and decoding a distribution over them.

The a*b* plane is cut into squares of `AB_BIN_SIZE` (10) units centred on multiples of
10; the bins kept are those that hold the a*b* of at least one 8-bit sRGB colour (any
lightness): `NUM_AB_BINS` = 261 bins. They are found by converting (with
scikit-image's `rgb2lab`, the definition `rgb_to_lab` follows; NumPy, so the table can
be made inside a compiled function) the six faces of the sRGB cube at all 256 levels (they hold the gamut's boundary) and
a 32^3 grid inside it; converting all 2^24 colours gives the same 261 bins. (The paper
keeps 313 bins "in gamut" by a test it does not spell out; the centres here are the
same grid.)
A colorizer predicts a distribution over the bins per pixel; the annealed mean
(softmax at temperature T, then the mean of the bin centres) turns it into one a*b*:
T = 1 is the mean (desaturated where the model is unsure), T -> 0 the mode (vivid,
noisier); the paper uses T = 0.38.

References:
    Zhang, Isola and Efros, "Colorful Image Colorization", ECCV 2016.
"""

import functools

import numpy as np
from keras import ops

from keras_colorize.color.normalization import AB_SCALE

AB_BIN_SIZE = 10.0
"""Side of an a*b* bin, in a*b* units."""
GAMUT_FACE_LEVELS = 256
"""Levels per sRGB channel on the faces of the cube whose a*b* decide which bins are in gamut."""
GAMUT_INTERIOR_LEVELS = 32
"""Levels per sRGB channel of the grid inside the cube."""
NUM_AB_BINS = 261
"""Number of in-gamut bins (`ab_bin_centers()`)."""
SOFT_ENCODING_NEIGHBOURS = 5
"""Nearest bins a true a*b* is spread over (the paper's soft encoding)."""
SOFT_ENCODING_SIGMA = 5.0
"""Width of the Gaussian of the soft encoding, a*b* units."""
TIE_BREAK = 1e-4
"""Added per bin index to squared distances (a*b* units) to rank equally distant bins."""
ANNEALED_MEAN_TEMPERATURE = 0.38
"""The paper's temperature of the annealed mean."""


@functools.cache
def ab_bin_centers():
    """The centres of the in-gamut a*b* bins, in a*b* units.

    Returns:
        NumPy float32 array of shape (NUM_AB_BINS, 2): (a*, b*) pairs, sorted by a*
        then b*, every value a multiple of `AB_BIN_SIZE`.
    """
    from skimage.color import rgb2lab

    levels = np.linspace(0.0, 1.0, GAMUT_FACE_LEVELS, dtype="float32")
    u, v = (grid.reshape(-1) for grid in np.meshgrid(levels, levels, indexing="ij"))
    colours = []
    for axis in range(3):
        for value in (0.0, 1.0):
            face = np.empty((u.size, 3), "float32")
            face[:, axis] = value
            face[:, [i for i in range(3) if i != axis]] = np.stack([u, v], axis=-1)
            colours.append(face)
    inside = np.linspace(0.0, 1.0, GAMUT_INTERIOR_LEVELS, dtype="float32")
    colours.append(np.stack(np.meshgrid(inside, inside, inside, indexing="ij"), axis=-1).reshape(-1, 3))
    lab = rgb2lab(np.concatenate(colours)[:, None, :]).reshape(-1, 3)
    bins = np.unique(np.floor(lab[:, 1:] / AB_BIN_SIZE + 0.5).astype("int64"), axis=0)
    return (bins * AB_BIN_SIZE).astype("float32")


def soft_encode_ab(ab_norm, centers=None):
    """Spread true a*b* over their nearest bins with Gaussian weights (the paper's soft encoding).

    Args:
        ab_norm: tensor. Model-space ab ((a*, b*) / 128), shape (..., 2).
        centers: array or None. Bin centres in a*b* units, (Q, 2). Defaults to
            `ab_bin_centers()`.

    Returns:
        float32 tensor of shape (..., Q): per pixel, weights summing to 1 on the
        `SOFT_ENCODING_NEIGHBOURS` nearest bins (exp(-d^2 / (2 sigma^2)),
        normalised), 0 elsewhere.
    """
    centers = ab_bin_centers() if centers is None else centers
    squared = squared_bin_distances(ab_norm, centers)
    # Equally distant bins (a pixel on the grid) are taken in index order, so exactly
    # SOFT_ENCODING_NEIGHBOURS bins are kept.
    ranked = squared + ops.arange(len(centers), dtype="float32") * TIE_BREAK
    threshold = -ops.top_k(-ranked, SOFT_ENCODING_NEIGHBOURS, sorted=True)[0][..., -1:]
    nearest = ops.min(squared, axis=-1, keepdims=True)
    weights = ops.where(ranked <= threshold, ops.exp(-(squared - nearest) / (2.0 * SOFT_ENCODING_SIGMA**2)), 0.0)
    return weights / ops.sum(weights, axis=-1, keepdims=True)


def squared_bin_distances(ab_norm, centers=None):
    """Squared a*b* distances of each pixel to every bin centre.

    Args:
        ab_norm: tensor. Model-space ab, shape (..., 2).
        centers: array or None. Bin centres in a*b* units, (Q, 2). Defaults to
            `ab_bin_centers()`.

    Returns:
        float32 tensor of shape (..., Q), in squared a*b* units.
    """
    centers = ab_bin_centers() if centers is None else centers
    ab = ops.cast(ab_norm, "float32") * AB_SCALE
    centers = ops.convert_to_tensor(np.asarray(centers, "float32"))
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, one matrix product.
    cross = ops.matmul(ab, ops.transpose(centers))
    return ops.maximum(
        ops.sum(ops.square(ab), axis=-1, keepdims=True) - 2.0 * cross + ops.sum(ops.square(centers), axis=-1), 0.0
    )


def nearest_ab_bin(ab_norm, centers=None):
    """Index of the nearest bin of each pixel's a*b*.

    Args:
        ab_norm: tensor. Model-space ab, shape (..., 2).
        centers: array or None. Bin centres, (Q, 2). Defaults to `ab_bin_centers()`.

    Returns:
        int32 tensor of shape (...).
    """
    return ops.cast(ops.argmin(squared_bin_distances(ab_norm, centers), axis=-1), "int32")


def annealed_mean(logits, temperature=ANNEALED_MEAN_TEMPERATURE, centers=None):
    """Decode per-pixel bin logits into model-space ab: the mean of softmax(logits / T).

    Args:
        logits: tensor. Unnormalised log-probabilities over the bins, shape (..., Q).
        temperature: float. T > 0; 1 is the mean of the predicted distribution,
            smaller values approach its mode. Defaults to 0.38.
        centers: array or None. Bin centres in a*b* units, (Q, 2). Defaults to
            `ab_bin_centers()`.

    Returns:
        Model-space ab ((a*, b*) / 128), float32, shape (..., 2).
    """
    centers = ab_bin_centers() if centers is None else centers
    probabilities = ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1)
    return ops.matmul(probabilities, ops.convert_to_tensor(np.asarray(centers, "float32") / AB_SCALE))


def ab_bin_prior(ab_norm_batches, centers=None):
    """The empirical distribution of the nearest bins over a set of images.

    Args:
        ab_norm_batches: iterable of arrays. Model-space ab, each of shape (..., 2).
        centers: array or None. Bin centres, (Q, 2). Defaults to `ab_bin_centers()`.

    Returns:
        NumPy float64 array of shape (Q,), summing to 1 (uniform when no pixel was given).
    """
    centers = ab_bin_centers() if centers is None else centers
    counts = np.zeros(len(centers), "float64")
    for ab in ab_norm_batches:
        indices = ops.convert_to_numpy(nearest_ab_bin(ops.convert_to_tensor(np.asarray(ab, "float32")), centers))
        counts += np.bincount(indices.reshape(-1), minlength=len(centers))
    if counts.sum() == 0:
        return np.full(len(centers), 1.0 / len(centers))
    return counts / counts.sum()


def rebalancing_weights(prior, mix=0.5, sigma=SOFT_ENCODING_SIGMA, centers=None):
    """The paper's class-rebalancing weights from a bin prior.

    The prior is smoothed with a Gaussian of `sigma` a*b* units over the plane, mixed
    with the uniform distribution, `w ~ 1 / ((1 - mix) p + mix / Q)`, and scaled so
    that the expected weight under the smoothed prior is 1.

    Args:
        prior: array of shape (Q,). Bin probabilities (`ab_bin_prior`).
        mix: float in [0, 1]. Weight of the uniform distribution; 1 gives no
            rebalancing. Defaults to 0.5 (the paper's lambda).
        sigma: float. Smoothing of the prior, a*b* units. Defaults to 5.
        centers: array or None. Bin centres, (Q, 2). Defaults to `ab_bin_centers()`.

    Returns:
        NumPy float32 array of shape (Q,).
    """
    centers = np.asarray(ab_bin_centers() if centers is None else centers, "float64")
    prior = np.asarray(prior, "float64")
    squared = np.sum(np.square(centers[:, None] - centers[None]), axis=-1)
    kernel = np.exp(-squared / (2.0 * sigma**2))
    smoothed = kernel @ prior
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1.0 - mix) * smoothed + mix / len(prior))
    weights /= np.sum(smoothed * weights)
    return weights.astype("float32")
