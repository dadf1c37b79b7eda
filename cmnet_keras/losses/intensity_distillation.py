"""Intensity distillation loss (paper eq. 1)."""

import keras
from keras import ops

from cmnet_keras.losses._reduction import check_reduction, reduce_per_clip


def _check_tau(tau):
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")


def intensity_distillation_loss(z1, z2, negatives, tau=0.1, reduction="mean"):
    """Intensity distillation loss, Eq. 1.

    With sim(a, b) = exp(a.b / tau) on L2-normalised features, for each frame n:
    -log sim(z1, z2) / (sim(z1, z2) + sum_m sim(z1, neg_m)) plus the same term
    with z2 as the anchor of the negatives; averaged over the N frames.
    Computed in log-space (logsumexp).

    Args:
        z1: [B, N, D] features of the first view of every frame.
        z2: [B, N, D] features of the second view.
        negatives: [B, N, M, D] features of the M negatives of every frame.
        tau: temperature, > 0.
        reduction: "mean" -> scalar (mean over B and N); "none" -> [B] per clip.
    """
    _check_tau(tau)
    check_reduction(reduction)
    if len(z1.shape) != 3 or len(negatives.shape) != 4:
        raise ValueError(
            f"z1, z2 must be [B, N, D] and negatives [B, N, M, D]; got shapes "
            f"z1={tuple(z1.shape)}, z2={tuple(z2.shape)}, negatives={tuple(negatives.shape)}"
        )
    z1 = ops.normalize(z1, axis=-1)
    z2 = ops.normalize(z2, axis=-1)
    negatives = ops.normalize(negatives, axis=-1)
    positive = ops.sum(z1 * z2, axis=-1, keepdims=True) / tau  # [B, N, 1]
    terms = 0.0
    for view in (z1, z2):
        negative = ops.einsum("bnd,bnmd->bnm", view, negatives) / tau  # [B, N, M]
        logits = ops.concatenate([positive, negative], axis=-1)
        terms = terms + ops.logsumexp(logits, axis=-1) - positive[..., 0]
    return reduce_per_clip(ops.mean(terms, axis=-1), reduction)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class IntensityDistillationLoss(keras.losses.Loss):
    """Eq. 1 as a Keras loss.

    `y_true` is unused (pass any tensor, e.g. the labels); `y_pred` is a dict
    `{"z1", "z2", "negatives"}` or a sequence `(z1, z2, negatives)`.

    Args:
        tau: temperature of sim(a, b) = exp(a.b / tau), > 0.
    """

    def __init__(self, tau=0.1, name="id_loss", reduction="sum_over_batch_size", dtype=None):
        _check_tau(tau)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.tau = tau

    def call(self, y_true, y_pred):
        if isinstance(y_pred, dict):
            z1, z2, negatives = y_pred["z1"], y_pred["z2"], y_pred["negatives"]
        else:
            z1, z2, negatives = y_pred
        return intensity_distillation_loss(z1, z2, negatives, tau=self.tau, reduction="none")

    def get_config(self):
        return {**super().get_config(), "tau": self.tau}
