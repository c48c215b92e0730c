"""The Colorizer's objective: a weighted sum of terms, some of which counter desaturation.

A per-pixel L1, L2 or Huber loss on ab is smallest, when a model is unsure, for the
mean of the plausible colours: brown-gray. The other terms push towards colour:

- "ab_classification": cross-entropy between the predicted distribution over the
  a*b* bins and the soft-encoded truth, each pixel weighted by the rebalancing
  weight of its true bin (rare, saturated colours count more) - Zhang et al. 2016.
  Needs a generator with a classification head ("ab_logits").
- "colorfulness": |C(prediction) - C(truth)| per image, the Hasler-Suesstrunk
  colourfulness on the [0, 1] scale (the evaluation's colourfulness gap / 255); it
  pulls the overall amount of colour towards the truth's (DDColor uses a
  colourfulness term too).
- "lpips": the LPIPS v0.1 distance between the prediction and the truth (AlexNet or
  VGG16 features), a perceptual term.

Every term is computed per image from the sRGB batch (whose L*a*b* is the target) and
the generator's outputs; the loss is the weighted sum, averaged over the batch.
"""

import numpy as np
import keras
from keras import ops

from keras_colorize.color import model_outputs_to_rgb, rgb_to_model_inputs
from keras_colorize.color.ab_bins import NUM_AB_BINS, soft_encode_ab, nearest_ab_bin
from keras_colorize.errors import UserInputError
from keras_colorize.losses.reconstruction import RECONSTRUCTION_LOSSES
from keras_colorize.serialization import register

AB_TERMS = tuple(RECONSTRUCTION_LOSSES)
"""Per-pixel regression terms on model-space ab."""
COLOR_TERMS = ("ab_classification", "colorfulness", "lpips")
"""Terms that counter desaturation."""
TERMS = AB_TERMS + COLOR_TERMS
"""Every term a `ColorizationLoss` can weigh."""


def _ab_and_logits(outputs):
    if isinstance(outputs, dict):
        return outputs["ab"], outputs.get("ab_logits")
    return outputs, None


def rebalanced_ab_cross_entropy(ab_true, logits, class_weights=None):
    """Per-image cross-entropy over the a*b* bins, weighted by the true bins' rebalancing weights.

    The true ab is average-pooled to the logits' resolution, soft-encoded over its
    five nearest bins (`soft_encode_ab`), and compared with softmax(logits); each
    pixel's term is multiplied by the weight of its nearest true bin.

    Args:
        ab_true: model-space ab ((a*, b*) / 128), shape (N, H, W, 2).
        logits: bin logits, shape (N, H / s, W / s, Q), s an integer stride.
        class_weights: array of shape (Q,) or None. Rebalancing weights
            (`rebalancing_weights`); None weighs every pixel 1. Defaults to None.

    Returns:
        float32 tensor of shape (N,): the mean over pixels of
        `-w(q*) * sum_q z_q log softmax(logits)_q`.
    """
    logits = ops.cast(logits, "float32")
    ab_true = ops.cast(ab_true, "float32")
    stride = ab_true.shape[1] // logits.shape[1]
    if stride > 1:
        ab_true = ops.average_pool(ab_true, stride, strides=stride, padding="valid", data_format="channels_last")
    target = soft_encode_ab(ab_true)
    per_pixel = -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)
    if class_weights is not None:
        weights = ops.take(ops.convert_to_tensor(np.asarray(class_weights, "float32")), nearest_ab_bin(ab_true))
        per_pixel = per_pixel * weights
    return ops.mean(per_pixel, axis=(1, 2))


def colorfulness_gap_loss(rgb_true, rgb_pred):
    """Per-image |C(rgb_pred) - C(rgb_true)| / 255, differentiable also at gray predictions.

    Args:
        rgb_true: sRGB in [0, 1], shape (N, H, W, 3).
        rgb_pred: sRGB in [0, 1], shape (N, H, W, 3).

    Returns:
        float32 tensor of shape (N,): the evaluation's colourfulness gap on the
        [0, 1] scale.
    """
    from keras_colorize.metrics.image_quality import colorfulness

    gap = colorfulness(rgb_pred, floor=1e-6) - ops.stop_gradient(colorfulness(rgb_true))
    return ops.abs(gap) / 255.0


@register
class ColorizationLoss(keras.losses.Loss):
    """A weighted sum of ab-regression and colour terms, per image, on sRGB batches.

    Args:
        terms: dict str -> float, or str. Term name -> weight; names from `TERMS`:
            "l1", "l2", "huber" (on ab), "ab_classification", "colorfulness",
            "lpips". A name alone means weight 1. Defaults to "l2".
        class_weights: sequence of `NUM_AB_BINS` floats or None. The rebalancing
            weights of "ab_classification" (`rebalancing_weights` of the training
            data's bin prior); None weighs every pixel 1. Defaults to None.
        lpips_network: str. "alex" or "vgg", the network of the "lpips" term.
            Defaults to "vgg".
        lpips_weights: str or None. Converted LPIPS weights for the "lpips" term;
            None reads the cache. Defaults to None.
        name: str. Defaults to "colorization_loss".

    `call(y_true, y_pred)`: `y_true` the batch, sRGB in [0, 1], (N, H, W, 3) (its
    L*a*b* is the target); `y_pred` the generator's outputs, model-space ab in
    [-1, 1] of shape (N, H, W, 2) or a dict with "ab" (and "ab_logits" for the
    classification term). Returns the per-image weighted sums, shape (N,).

    Examples:
        >>> from keras_colorize.losses import ColorizationLoss
        >>> loss = ColorizationLoss({"ab_classification": 1.0, "colorfulness": 0.5})
        >>> sorted(loss.terms)
        ['ab_classification', 'colorfulness']
    """

    def __init__(
        self,
        terms="l2",
        class_weights=None,
        lpips_network="vgg",
        lpips_weights=None,
        reduction="sum_over_batch_size",
        name="colorization_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(terms, str):
            terms = {terms: 1.0}
        terms = {str(key).lower(): float(value) for key, value in dict(terms).items()}
        unknown = sorted(set(terms) - set(TERMS))
        if unknown or not terms:
            raise UserInputError(
                f"unknown loss term {unknown[0] if unknown else '(none given)'!r} (use {', '.join(TERMS)})"
            )
        if any(value < 0 for value in terms.values()):
            raise UserInputError(f"loss weights must not be negative, got {terms}")
        if class_weights is not None:
            class_weights = [float(w) for w in np.asarray(class_weights).reshape(-1)]
            if len(class_weights) != NUM_AB_BINS:
                raise UserInputError(f"class_weights needs {NUM_AB_BINS} values, got {len(class_weights)}")
        self.terms = terms
        self.class_weights = class_weights
        self.lpips_network = lpips_network
        self.lpips_weights = None if lpips_weights is None else str(lpips_weights)
        self._regression = {key: RECONSTRUCTION_LOSSES[key](reduction=None) for key in AB_TERMS if key in terms}
        if "lpips" in terms:
            from keras_colorize.metrics.lpips import load_lpips_network

            load_lpips_network(lpips_network, lpips_weights)  # loaded now, outside any compiled step

    @property
    def needs_logits(self):
        """Whether the generator must output "ab_logits" (a classification head)."""
        return "ab_classification" in self.terms

    def term_values(self, images, outputs):
        """Each weighted term per image: dict name -> float32 tensor (N,).

        Args:
            images: sRGB in [0, 1], (N, H, W, 3).
            outputs: model-space ab (N, H, W, 2), or a dict with "ab" (and "ab_logits").
        """
        ab_pred, logits = _ab_and_logits(outputs)
        ab_pred = ops.cast(ab_pred, "float32")
        l_norm, ab_true = rgb_to_model_inputs(ops.cast(images, "float32"), "channels_last")
        values = {}
        for key, loss in self._regression.items():
            values[key] = ops.mean(loss(ab_true, ab_pred), axis=(1, 2))
        if "ab_classification" in self.terms:
            if logits is None:
                raise UserInputError(
                    "the ab_classification loss needs a generator with a classification head (ab_logits), "
                    "for example BackboneUNet(head='classification')"
                )
            values["ab_classification"] = rebalanced_ab_cross_entropy(ab_true, logits, self.class_weights)
        if "colorfulness" in self.terms or "lpips" in self.terms:
            rgb_true = ops.cast(images, "float32")
            rgb_pred = model_outputs_to_rgb(l_norm, ab_pred, "channels_last")
            if "colorfulness" in self.terms:
                values["colorfulness"] = colorfulness_gap_loss(rgb_true, rgb_pred)
            if "lpips" in self.terms:
                from keras_colorize.metrics.lpips import lpips_distance

                values["lpips"] = lpips_distance(rgb_true, rgb_pred, self.lpips_network, self.lpips_weights)
        return {key: self.terms[key] * value for key, value in values.items()}

    def call(self, y_true, y_pred):
        values = self.term_values(y_true, y_pred)
        return sum(values[key] for key in self.terms)

    def get_config(self):
        return {
            **super().get_config(),
            "terms": dict(self.terms),
            "class_weights": self.class_weights,
            "lpips_network": self.lpips_network,
            "lpips_weights": self.lpips_weights,
        }


def get_colorization_loss(loss):
    """The Colorizer's loss from a name, a dict of term weights, or a loss object.

    Args:
        loss: "l1", "l2", "huber" or another term name (weight 1); a dict term ->
            weight; a `ColorizationLoss`; or any other `keras.losses.Loss` (or Keras
            loss name), which compares the true and predicted model-space ab.

    Returns:
        A `ColorizationLoss`, or the Keras loss on ab.

    Raises:
        UserInputError: an unknown name.
    """
    if isinstance(loss, ColorizationLoss):
        return loss
    if isinstance(loss, dict) or (isinstance(loss, str) and loss.lower() in TERMS):
        return ColorizationLoss(loss)
    from keras_colorize.losses.reconstruction import get_reconstruction_loss

    return get_reconstruction_loss(loss)
