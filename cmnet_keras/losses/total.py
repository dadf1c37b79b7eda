"""Total CMNet loss (paper eq. 10)."""

import keras


def check_lambdas(lambdas):
    """Raises ValueError unless `lambdas` are 3 non-negative weights summing to 1; returns them as floats."""
    values = tuple(float(v) for v in lambdas)
    if len(values) != 3 or any(v < 0 for v in values):
        raise ValueError(f"lambdas must be 3 non-negative weights, got {tuple(lambdas)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"lambdas must sum to 1 (eq. 10), got {values} summing to {sum(values):.6g}")
    return values


def total_loss(id_loss, wrst_loss, ce_loss, lambdas=(0.07, 0.71, 0.22)):
    """L = lambda1 L_ID + lambda2 L_Wrst + lambda3 L_C, Eq. 10.

    Args:
        id_loss: intensity distillation loss (eq. 1).
        wrst_loss: Wilcoxon rank-sum loss (eq. 9).
        ce_loss: classification loss L_C.
        lambdas: (lambda1, lambda2, lambda3), non-negative, summing to 1.
    """
    l1, l2, l3 = check_lambdas(lambdas)
    return l1 * id_loss + l2 * wrst_loss + l3 * ce_loss


@keras.saving.register_keras_serializable(package="cmnet_keras")
class TotalLoss(keras.losses.Loss):
    """Eq. 10 as a Keras loss over per-clip terms.

    `y_true` is unused; `y_pred` is a dict of per-clip terms [B]: "id_loss",
    "wrst_loss", "ce_loss". Reduced as every Keras loss is: with
    "sum_over_batch_size", the mean over the clips, divided by the replica count
    under tf.distribute (whose replica gradients are summed).

    Args:
        lambdas: (lambda1, lambda2, lambda3), non-negative, summing to 1.
    """

    def __init__(self, lambdas=(0.07, 0.71, 0.22), name="loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.lambdas = check_lambdas(lambdas)

    def call(self, y_true, y_pred):
        return total_loss(y_pred["id_loss"], y_pred["wrst_loss"], y_pred["ce_loss"], self.lambdas)

    def get_config(self):
        return {**super().get_config(), "lambdas": list(self.lambdas)}
