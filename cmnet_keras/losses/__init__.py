"""CMNet losses: intensity distillation (eq. 1), Wilcoxon rank sum (eqs. 5-9),
the tendency term (rank sum and/or soft Spearman), classification and the total loss (eq. 10)."""

from cmnet_keras.losses.classification import ClassificationLoss, classification_loss
from cmnet_keras.losses.intensity_distillation import (
    IntensityDistillationLoss,
    intensity_distillation_loss,
)
from cmnet_keras.losses.tendency import (
    TENDENCY_LOSSES,
    TendencyLoss,
    check_tendency_loss,
    soft_spearman,
    spearman_tendency_loss,
)
from cmnet_keras.losses.total import TotalLoss, check_lambdas, total_loss
from cmnet_keras.losses.wilcoxon import (
    P_MODES,
    TEMPERATURE_MODES,
    WilcoxonRankSumLoss,
    check_temperature_mode,
    rank_sum_p_value,
    rank_sum_statistic,
    rank_sum_z,
    rank_temperature,
    soft_rank,
    wilcoxon_rank_sum_loss,
)

__all__ = [
    "P_MODES",
    "TEMPERATURE_MODES",
    "TENDENCY_LOSSES",
    "ClassificationLoss",
    "IntensityDistillationLoss",
    "TendencyLoss",
    "TotalLoss",
    "WilcoxonRankSumLoss",
    "check_lambdas",
    "check_temperature_mode",
    "check_tendency_loss",
    "classification_loss",
    "intensity_distillation_loss",
    "rank_sum_p_value",
    "rank_sum_statistic",
    "rank_sum_z",
    "rank_temperature",
    "soft_rank",
    "soft_spearman",
    "spearman_tendency_loss",
    "total_loss",
    "wilcoxon_rank_sum_loss",
]
