"""Wilcoxon rank-sum loss with differentiable ranks (paper eqs. 5-9)."""

import math

import keras
from keras import ops

from cmnet_keras.losses._reduction import check_reduction, reduce_per_clip

P_MODES = ("density", "two_sided")


def _check_temperature(temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def check_p_mode(mode):
    """Raises ValueError unless `mode` is one of `P_MODES`."""
    if mode not in P_MODES:
        raise ValueError(f"p_mode must be one of {P_MODES}, got {mode!r}")


def soft_rank(x, temperature=0.01):
    """Differentiable ranks along the last axis (Eqs. 5-6).

    rank_i = 1 + sum_{j != i} sigmoid((x_i - x_j) / temperature). As the
    temperature goes to 0 this is the average rank of `scipy.stats.rankdata`
    (ties share the mean of their ranks).

    Args:
        x: [..., L] values.
        temperature: beta > 0.
    """
    _check_temperature(temperature)
    x = ops.convert_to_tensor(x)
    pairwise = ops.sigmoid((ops.expand_dims(x, -1) - ops.expand_dims(x, -2)) / temperature)
    # The j == i term is sigmoid(0) = 0.5.
    return 0.5 + ops.sum(pairwise, axis=-1)


def rank_sum_statistic(q, k, temperature=0.01):
    """Rank sums T1 of q and T2 of k over the 2N pooled values, Eqs. 5-6.

    Uses sum_i soft_rank(k)_i = N (N + 1) / 2 + sum_{i, j} sigmoid((k_i - q_j) / beta):
    the pairs within k contribute a constant, so only the k-q pairs are formed.
    Same value as summing `soft_rank` of the pooled values, but its gradient has
    no float32 cancellation between the within-k terms.

    Args:
        q: [B, N] prototype sample.
        k: [B, N] intensity values of the network.
        temperature: soft-rank temperature beta.

    Returns:
        (T1, T2), each [B].
    """
    _check_temperature(temperature)
    n_q, n_k = q.shape[-1], k.shape[-1]
    cross = ops.sigmoid((ops.expand_dims(k, -1) - ops.expand_dims(q, -2)) / temperature)
    t2 = n_k * (n_k + 1) / 2.0 + ops.sum(cross, axis=(-2, -1))
    total = (n_q + n_k) * (n_q + n_k + 1) / 2.0
    return total - t2, t2


def rank_sum_z(q, k, temperature=0.01):
    """Z = (T2 - mu_T) / sigma_T, Eq. 7.

    mu_T = N (2N + 1) / 2 and sigma_T = sqrt(N^2 (2N + 1) / 12) for N values in
    each sample (the rank sum of k follows N(mu_T, sigma_T) under H0).

    Returns:
        Z [B].
    """
    n = q.shape[-1]
    if n is None or k.shape[-1] != n:
        raise ValueError(
            f"q and k must have the same static length N; got shapes "
            f"q={tuple(q.shape)}, k={tuple(k.shape)}"
        )
    mu = n * (2 * n + 1) / 2.0
    sigma = math.sqrt(n * n * (2 * n + 1) / 12.0)
    _, t2 = rank_sum_statistic(q, k, temperature)
    return (t2 - mu) / sigma


def rank_sum_p_value(z, mode="density"):
    """p from Z, Eq. 8.

    Args:
        z: Z statistic.
        mode: "density" = the paper's p = exp(-Z^2 / 2) / sqrt(2 pi) (the normal
            density); "two_sided" = the p-value 2 (1 - Phi(|Z|)).
    """
    check_p_mode(mode)
    if mode == "density":
        return ops.exp(-0.5 * ops.square(z)) / math.sqrt(2.0 * math.pi)
    # 2 (1 - Phi(|Z|)) = erfc(|Z| / sqrt 2); erfc keeps precision where p << 1.
    return ops.erfc(ops.abs(z) / math.sqrt(2.0))


def wilcoxon_rank_sum_loss(
    q, k, alpha=0.05, xi=0.01, temperature=0.01, p_mode="density", reduction="mean"
):
    """Wilcoxon rank-sum test loss max(0, xi - (p - alpha)), Eq. 9.

    Args:
        q: [B, N] prototype sample (S1).
        k: [B, N] intensity values of the network (S2).
        alpha: significance level.
        xi: margin.
        temperature: soft-rank temperature beta.
        p_mode: "density" (paper) or "two_sided", see `rank_sum_p_value`.
        reduction: "mean" -> scalar over the batch; "none" -> [B].
    """
    check_reduction(reduction)
    check_p_mode(p_mode)
    p = rank_sum_p_value(rank_sum_z(q, k, temperature), p_mode)
    return reduce_per_clip(ops.relu(xi - (p - alpha)), reduction)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class WilcoxonRankSumLoss(keras.losses.Loss):
    """Eq. 9 as a Keras loss: `y_true` = prototype sample q [B, N], `y_pred` = k [B, N].

    Args:
        alpha: significance level.
        xi: margin.
        temperature: soft-rank temperature beta, > 0.
        p_mode: "density" (paper) or "two_sided".
    """

    def __init__(
        self,
        alpha=0.05,
        xi=0.01,
        temperature=0.01,
        p_mode="density",
        name="wrst_loss",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        _check_temperature(temperature)
        check_p_mode(p_mode)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = alpha
        self.xi = xi
        self.temperature = temperature
        self.p_mode = p_mode

    def call(self, y_true, y_pred):
        return wilcoxon_rank_sum_loss(
            y_true,
            y_pred,
            alpha=self.alpha,
            xi=self.xi,
            temperature=self.temperature,
            p_mode=self.p_mode,
            reduction="none",
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "xi": self.xi,
            "temperature": self.temperature,
            "p_mode": self.p_mode,
        }
