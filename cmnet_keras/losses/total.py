"""Total CMNet loss (paper eq. 10)."""

import keras


def check_lambdas(lambdas, sum_to_one=True):
    """Raises ValueError unless `lambdas` are 3 non-negative weights, not all 0, summing to 1
    (unless `sum_to_one` is False: the paper's Table 3 keeps the weights of the losses it does not
    remove); returns them as floats."""
    values = tuple(float(v) for v in lambdas)
    if len(values) != 3 or any(v < 0 for v in values) or not any(values):
        raise ValueError(f"lambdas must be 3 non-negative weights, not all 0, got {tuple(lambdas)}")
    if sum_to_one and abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"lambdas must sum to 1 (eq. 10), got {values} summing to {sum(values):.6g}; "
                         "an ablation that keeps the other weights sets lambda_ablation=True")
    return values


def total_loss(id_loss, wrst_loss, ce_loss, lambdas=(0.07, 0.71, 0.22), sum_to_one=True):
    """L = lambda1 L_ID + lambda2 L_Wrst + lambda3 L_C, Eq. 10.

    Args:
        id_loss: intensity distillation loss (eq. 1).
        wrst_loss: Wilcoxon rank-sum loss (eq. 9).
        ce_loss: classification loss L_C.
        lambdas: (lambda1, lambda2, lambda3), non-negative, summing to 1 unless `sum_to_one` is False.
        sum_to_one: see `check_lambdas`.
    """
    l1, l2, l3 = check_lambdas(lambdas, sum_to_one)
    return l1 * id_loss + l2 * wrst_loss + l3 * ce_loss


@keras.saving.register_keras_serializable(package="cmnet_keras")
class TotalLoss(keras.losses.Loss):
    """Eq. 10 as a Keras loss over per-clip terms.

    `y_true` is unused; `y_pred` is a dict of per-clip terms [B]: "id_loss",
    "wrst_loss", "ce_loss". Reduced as every Keras loss is: with
    "sum_over_batch_size", the mean over the clips, divided by the replica count
    under tf.distribute (whose replica gradients are summed).

    Args:
        lambdas: (lambda1, lambda2, lambda3), non-negative, summing to 1 unless `sum_to_one` is False.
        sum_to_one: whether the lambdas must sum to 1 (False only for the paper's loss ablation).
    """

    def __init__(self, lambdas=(0.07, 0.71, 0.22), sum_to_one=True, name="loss", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.lambdas = check_lambdas(lambdas, sum_to_one)
        self.sum_to_one = bool(sum_to_one)

    def call(self, y_true, y_pred):
        return total_loss(y_pred["id_loss"], y_pred["wrst_loss"], y_pred["ce_loss"], self.lambdas, self.sum_to_one)

    def get_config(self):
        return {**super().get_config(), "lambdas": list(self.lambdas), "sum_to_one": self.sum_to_one}
