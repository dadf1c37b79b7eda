"""Tendency losses on the intensity k: the rank-sum loss (eqs. 5-9), an order-aware
soft Spearman loss (not in the paper), or their sum."""

import keras
from keras import ops

from cmnet_keras.losses._reduction import check_reduction, reduce_per_clip
from cmnet_keras.losses.wilcoxon import WilcoxonRankSumLoss, soft_rank

TENDENCY_LOSSES = ("rank_sum", "spearman", "both")
# Added to each sum of squared centred soft ranks in `soft_spearman` (one rank squared): at a constant k (the
# calibrated in-range start) the gradient stays finite, where dividing by a floored norm gave 3e10, which
# filled Adam's second moment of the squeeze kernel and froze it for the whole run (docs/tendency.md).
RANK_FLOOR = 1.0


def check_tendency_loss(name):
    """Raises ValueError unless `name` is one of `TENDENCY_LOSSES`."""
    if name not in TENDENCY_LOSSES:
        raise ValueError(f"tendency_loss must be one of {TENDENCY_LOSSES}, got {name!r}")


def soft_spearman(q, k, temperature=0.01, temperature_mode="absolute"):
    """Soft Spearman's rho between k and q over the frames.

    The Pearson correlation of `soft_rank(k)` and `soft_rank(q)` (the soft ranks
    of eqs. 5-6, each over its own N frames, beta from `rank_temperature` of
    those N values), with `RANK_FLOOR` added to each sum of squared centred
    ranks. As beta goes to 0 this is `scipy.stats.spearmanr` times
    S / (S + 1), S = N (N^2 - 1) / 12 for distinct values (0.997 at N = 16).

    Args:
        q: [B, N] prototype (sample or mean).
        k: [B, N] intensity values of the network.
        temperature: soft-rank temperature, > 0.
        temperature_mode: "absolute" or "relative".

    Returns:
        rho [B]; 0 where k's (or q's) soft ranks are constant.
    """
    rank_q = soft_rank(q, temperature, temperature_mode)
    rank_k = soft_rank(k, temperature, temperature_mode)
    rank_q = rank_q - ops.mean(rank_q, axis=-1, keepdims=True)
    rank_k = rank_k - ops.mean(rank_k, axis=-1, keepdims=True)
    spread_q = ops.sum(ops.square(rank_q), axis=-1) + RANK_FLOOR
    spread_k = ops.sum(ops.square(rank_k), axis=-1) + RANK_FLOOR
    return ops.sum(rank_q * rank_k, axis=-1) / ops.sqrt(spread_q * spread_k)


def spearman_tendency_loss(q, k, temperature=0.01, temperature_mode="absolute", reduction="mean"):
    """1 - soft Spearman rho(k, q) per clip (`soft_spearman`); 0 when k rises and falls as q.

    Args:
        q: [B, N] prototype.
        k: [B, N] intensity values.
        temperature: soft-rank temperature, > 0.
        temperature_mode: "absolute" or "relative".
        reduction: "mean" -> scalar over the batch; "none" -> [B].
    """
    check_reduction(reduction)
    return reduce_per_clip(1.0 - soft_spearman(q, k, temperature, temperature_mode), reduction)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class TendencyLoss(WilcoxonRankSumLoss):
    """The lambda2 term of eq. 10: `y_true` = prototype q [B, N], `y_pred` = k [B, N].

    Args:
        tendency_loss: "rank_sum" (the paper's eq. 9, `WilcoxonRankSumLoss`),
            "spearman" (`spearman_tendency_loss`) or "both" (their sum).
        **kwargs: `WilcoxonRankSumLoss` arguments (alpha, xi, temperature,
            p_mode, temperature_mode, name, reduction, dtype); the temperature
            is shared by both losses.
    """

    def __init__(self, tendency_loss="rank_sum", **kwargs):
        check_tendency_loss(tendency_loss)
        super().__init__(**kwargs)
        self.tendency_loss = tendency_loss

    def call(self, y_true, y_pred):
        terms = []
        if self.tendency_loss in ("rank_sum", "both"):
            terms.append(super().call(y_true, y_pred))
        if self.tendency_loss in ("spearman", "both"):
            terms.append(spearman_tendency_loss(y_true, y_pred, self.temperature, self.temperature_mode, "none"))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def get_config(self):
        return {**super().get_config(), "tendency_loss": self.tendency_loss}
