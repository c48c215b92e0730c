"""Classification losses and accuracy over keras.ops for the class branch.

Targets are either integer labels (sub-folder indices; cross-entropy) or a
teacher classifier's predicted class distribution (KL divergence, as in
ChromaGAN). Logits have shape `(N, num_classes)`; every function returns a
scalar averaged over the batch.
"""

from keras import ops


def _sparse_labels(labels):
    """Integer labels as int32 of shape (N,) (a trailing axis of 1 is dropped)."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    return ops.cast(labels, "int32")


def class_cross_entropy(labels, logits):
    """Softmax cross-entropy with integer labels, averaged over the batch.

    Args:
        labels: int tensor, shape `(N,)` or `(N, 1)`, values in [0, num_classes).
        logits: float tensor, shape `(N, num_classes)`. Unnormalised scores.

    Returns:
        Scalar: mean over samples of `-log softmax(logits)[label]`.
    """
    return ops.mean(ops.sparse_categorical_crossentropy(_sparse_labels(labels), logits, from_logits=True))


def class_kl_divergence(teacher_probabilities, logits):
    """KL(teacher || softmax(logits)), summed over classes, averaged over the batch.

    Args:
        teacher_probabilities: float tensor, shape `(N, num_classes)`, rows that
            sum to 1 (a teacher classifier's softmax on the gray image). Zeros
            contribute nothing.
        logits: float tensor, shape `(N, num_classes)`. The generator's class
            logits.

    Returns:
        Scalar: mean over samples of `sum_k p_k (log p_k - log_softmax(logits)_k)`.
    """
    logits = ops.convert_to_tensor(logits)
    teacher = ops.cast(teacher_probabilities, logits.dtype)
    # p * log(max(p, tiny)) is exactly 0 where p is 0, with no NaN in either branch.
    teacher_log = ops.log(ops.maximum(teacher, 1e-30))
    per_sample = ops.sum(teacher * (teacher_log - ops.log_softmax(logits, axis=-1)), axis=-1)
    return ops.mean(per_sample)


def class_accuracy(labels, logits):
    """Fraction of samples whose highest logit is the label.

    Args:
        labels: int tensor, shape `(N,)` or `(N, 1)`.
        logits: float tensor, shape `(N, num_classes)`.

    Returns:
        Scalar float32 in [0, 1].
    """
    predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
    return ops.mean(ops.cast(ops.equal(predicted, _sparse_labels(labels)), "float32"))
