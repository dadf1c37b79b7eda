"""Classification loss L_C (paper, below eq. 10)."""

import keras
from keras import ops

from cmnet_keras.losses._reduction import reduce_per_clip


def _check_clip(clip):
    if not 0.0 < clip < 0.5:
        raise ValueError(f"clip must be in (0, 0.5), got {clip!r}")


def classification_loss(y_true, probs, clip=1e-7, reduction="mean"):
    """Sparse cross-entropy on probabilities: L_C = -sum_c y_c log(p_c).

    Args:
        y_true: [B] integer class labels.
        probs: [B, C] class probabilities (the model's softmax output).
        clip: probabilities are clipped to [clip, 1 - clip] before the log.
        reduction: "mean" -> scalar; "none" -> [B].
    """
    _check_clip(clip)
    probs = ops.clip(probs, clip, 1.0 - clip)
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    picked = ops.sum(ops.one_hot(labels, probs.shape[-1], dtype=probs.dtype) * probs, axis=-1)
    return reduce_per_clip(-ops.log(picked), reduction)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class ClassificationLoss(keras.losses.Loss):
    """L_C as a Keras loss: `y_true` = labels [B], `y_pred` = probabilities [B, C].

    Args:
        clip: probabilities are clipped to [clip, 1 - clip] before the log.
    """

    def __init__(self, clip=1e-7, name="ce_loss", reduction="sum_over_batch_size", dtype=None):
        _check_clip(clip)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.clip = clip

    def call(self, y_true, y_pred):
        return classification_loss(y_true, y_pred, clip=self.clip, reduction="none")

    def get_config(self):
        return {**super().get_config(), "clip": self.clip}
