"""Adversarial losses over keras.ops: conditional GAN (binary cross-entropy with
one-sided label smoothing) and WGAN-GP (Wasserstein loss, gradient penalty).

Logits and scores may have any shape (a PatchGAN gives `(N, H', W', 1)`); every
loss is a mean over all their elements and returns a scalar.

References:
    Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014.
    Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016
    (one-sided label smoothing).
    Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017.
"""

from keras import ops


def _bce_with_logits(target, logits):
    """Mean binary cross-entropy of `logits` against the constant `target`."""
    logits = ops.convert_to_tensor(logits)
    targets = ops.full_like(logits, target)
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True))


def discriminator_bce_loss(real_logits, fake_logits, real_label=0.9):
    """Discriminator loss: mean of the real and fake binary cross-entropies.

    Args:
        real_logits: tensor, any shape (e.g. `(N, H', W', 1)`). Discriminator
            logits on real pairs (L with the true ab).
        fake_logits: tensor, any shape. Logits on generated pairs (L with the
            predicted ab).
        real_label: float. Target of the real logits; below 1 is one-sided
            label smoothing (fake targets stay 0). Defaults to 0.9.

    Returns:
        Scalar: `(BCE(real_label, real_logits) + BCE(0, fake_logits)) / 2`, each
        BCE a mean over all elements.

    Examples:
        >>> from keras_colorize.losses import discriminator_bce_loss
        >>> round(float(discriminator_bce_loss([[0.0]], [[0.0]])), 4)  # log(2) for both terms
        0.6931
    """
    return 0.5 * (_bce_with_logits(real_label, real_logits) + _bce_with_logits(0.0, fake_logits))


def generator_bce_loss(fake_logits):
    """Generator adversarial loss: binary cross-entropy of the fake logits against 1.

    Args:
        fake_logits: tensor, any shape. Discriminator logits on generated pairs.

    Returns:
        Scalar: mean over all elements of `-log(sigmoid(fake_logits))`.
    """
    return _bce_with_logits(1.0, fake_logits)


def wasserstein_critic_loss(real_scores, fake_scores):
    """WGAN critic loss: `mean(fake_scores) - mean(real_scores)` (minimised).

    Args:
        real_scores: tensor, any shape. Critic scores on real pairs.
        fake_scores: tensor, any shape. Critic scores on generated pairs.

    Returns:
        Scalar, the negated estimate of the Wasserstein-1 distance.
    """
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """WGAN generator loss: `-mean(fake_scores)`.

    Args:
        fake_scores: tensor, any shape. Critic scores on generated pairs.

    Returns:
        Scalar.
    """
    return -ops.mean(fake_scores)


def gradient_penalty(gradients, epsilon=1e-12):
    """WGAN-GP penalty: mean over samples of `(||g||_2 - 1) ** 2`.

    The norm is `sqrt(sum(g ** 2) + epsilon)` over all axes but the first, so
    the penalty stays differentiable where a gradient is zero.

    Args:
        gradients: tensor, shape `(N, H, W, C)` (any rank >= 2). Gradients of the
            critic's summed scores with respect to the interpolated inputs.
        epsilon: float. Added inside the square root. Defaults to 1e-12.

    Returns:
        Scalar, to be weighted (10 in WGAN-GP) and added to the critic loss.
    """
    gradients = ops.convert_to_tensor(gradients)
    axes = tuple(range(1, len(gradients.shape)))
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=axes) + epsilon)
    return ops.mean(ops.square(norms - 1.0))


def interpolate(real, fake, alpha):
    """Random points on the lines between real and generated samples.

    Args:
        real: tensor, shape `(N, H, W, C)`. Real critic inputs (model-space L
            and true ab in [-1, 1]).
        fake: tensor, same shape. Generated critic inputs.
        alpha: tensor, shape `(N, 1, 1, 1)` or `(N,)`, values in [0, 1]: one
            weight per sample, drawn from U(0, 1) (e.g. `keras.random.uniform`
            with the trainer's `SeedGenerator`).

    Returns:
        `alpha * real + (1 - alpha) * fake`, shape `(N, H, W, C)`.
    """
    real = ops.convert_to_tensor(real)
    fake = ops.convert_to_tensor(fake)
    alpha = ops.cast(alpha, real.dtype)
    if len(alpha.shape) == 1:
        alpha = ops.reshape(alpha, (-1,) + (1,) * (len(real.shape) - 1))
    return alpha * real + (1.0 - alpha) * fake
