"""CMNet losses: intensity distillation (eq. 1), Wilcoxon rank sum (eqs. 5-9),
classification and the total loss (eq. 10)."""

from cmnet_keras.losses.classification import ClassificationLoss, classification_loss
from cmnet_keras.losses.intensity_distillation import (
    IntensityDistillationLoss,
    intensity_distillation_loss,
)
from cmnet_keras.losses.total import TotalLoss, check_lambdas, total_loss
from cmnet_keras.losses.wilcoxon import (
    P_MODES,
    WilcoxonRankSumLoss,
    rank_sum_p_value,
    rank_sum_statistic,
    rank_sum_z,
    soft_rank,
    wilcoxon_rank_sum_loss,
)

__all__ = [
    "P_MODES",
    "ClassificationLoss",
    "IntensityDistillationLoss",
    "TotalLoss",
    "WilcoxonRankSumLoss",
    "check_lambdas",
    "classification_loss",
    "intensity_distillation_loss",
    "rank_sum_p_value",
    "rank_sum_statistic",
    "rank_sum_z",
    "soft_rank",
    "total_loss",
    "wilcoxon_rank_sum_loss",
]
