"""Total CMNet loss (paper eq. 10)."""


def check_lambdas(lambdas):
    """Raises ValueError unless `lambdas` are 3 non-negative weights summing to 1."""
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
