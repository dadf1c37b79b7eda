"""Wilcoxon rank-sum loss with differentiable ranks (paper eqs. 5-9)."""

import math

import keras
from keras import ops

from cmnet_keras.losses._reduction import check_reduction, reduce_per_clip

P_MODES = ("density", "two_sided")
TEMPERATURE_MODES = ("absolute", "relative")
# Floor of the spread in the "relative" mode: a constant sample gets beta > 0.
MIN_SPREAD = 1e-6


def check_temperature(temperature):
    """Raises ValueError unless the soft-rank temperature is > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


def check_temperature_mode(mode):
    """Raises ValueError unless `mode` is one of `TEMPERATURE_MODES`."""
    if mode not in TEMPERATURE_MODES:
        raise ValueError(f"temperature_mode must be one of {TEMPERATURE_MODES}, got {mode!r}")


def rank_temperature(x, temperature, mode="absolute"):
    """The soft-rank temperature beta of Eqs. 5-6 for the values `x` that are ranked together.

    "absolute": beta = temperature.
    "relative": beta = temperature * max(std(x), 1e-6), the population standard
    deviation of the L values of `x` along the last axis (per clip; for the
    rank sum, the 2N pooled values of q and k), without gradient. The soft
    ranks are then scale-free: scaling and shifting `x` leaves them unchanged.

    Args:
        x: [..., L] values.
        temperature: > 0.
        mode: one of `TEMPERATURE_MODES`.

    Returns:
        beta: a float, or [..., 1] for "relative".
    """
    check_temperature(temperature)
    check_temperature_mode(mode)
    if mode == "absolute":
        return temperature
    spread = ops.stop_gradient(ops.std(x, axis=-1, keepdims=True))
    return temperature * ops.maximum(spread, MIN_SPREAD)


def check_p_mode(mode):
    """Raises ValueError unless `mode` is one of `P_MODES`."""
    if mode not in P_MODES:
        raise ValueError(f"p_mode must be one of {P_MODES}, got {mode!r}")


def soft_rank(x, temperature=0.01, temperature_mode="absolute"):
    """Differentiable ranks along the last axis (Eqs. 5-6).

    rank_i = 1 + sum_{j != i} sigmoid((x_i - x_j) / beta), with beta from
    `rank_temperature(x, temperature, temperature_mode)`: `temperature` itself
    ("absolute") or temperature * max(std(x), 1e-6) ("relative"). As beta goes
    to 0 this is the average rank of `scipy.stats.rankdata` (ties share the mean
    of their ranks).

    Args:
        x: [..., L] values.
        temperature: > 0.
        temperature_mode: "absolute" or "relative".
    """
    x = ops.convert_to_tensor(x)
    beta = rank_temperature(x, temperature, temperature_mode)
    pairwise = ops.sigmoid((ops.expand_dims(x, -1) - ops.expand_dims(x, -2)) / _pairwise(beta))
    # The j == i term is sigmoid(0) = 0.5.
    return 0.5 + ops.sum(pairwise, axis=-1)


def _pairwise(beta):
    """beta of `rank_temperature` broadcast against [..., L, L] pairwise differences."""
    return beta if isinstance(beta, (int, float)) else ops.expand_dims(beta, -1)


def rank_sum_statistic(q, k, temperature=0.01, temperature_mode="absolute"):
    """Rank sums T1 of q and T2 of k over the 2N pooled values, Eqs. 5-6.

    beta = temperature ("absolute"), or ("relative")
    beta = temperature * max(std([q_1..q_N, k_1..k_N]), 1e-6) per clip, the
    population std of the 2N pooled values without gradient (`rank_temperature`).
    Uses sum_i soft_rank(k)_i = N (N + 1) / 2 + sum_{i, j} sigmoid((k_i - q_j) / beta):
    the pairs within k contribute a constant, so only the k-q pairs are formed.
    Same value as summing `soft_rank` of the pooled values, but its gradient has
    no float32 cancellation between the within-k terms.

    Args:
        q: [B, N] prototype sample.
        k: [B, N] intensity values of the network.
        temperature: soft-rank temperature (beta itself when "absolute").
        temperature_mode: "absolute" or "relative".

    Returns:
        (T1, T2), each [B].
    """
    n_q, n_k = q.shape[-1], k.shape[-1]
    beta = rank_temperature(ops.concatenate([q, k], axis=-1), temperature, temperature_mode)
    cross = ops.sigmoid((ops.expand_dims(k, -1) - ops.expand_dims(q, -2)) / _pairwise(beta))
    t2 = n_k * (n_k + 1) / 2.0 + ops.sum(cross, axis=(-2, -1))
    total = (n_q + n_k) * (n_q + n_k + 1) / 2.0
    return total - t2, t2


def rank_sum_z(q, k, temperature=0.01, temperature_mode="absolute"):
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
    _, t2 = rank_sum_statistic(q, k, temperature, temperature_mode)
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
    q, k, alpha=0.05, xi=0.01, temperature=0.01, p_mode="density", reduction="mean",
    temperature_mode="absolute",
):
    """Wilcoxon rank-sum test loss max(0, xi - (p - alpha)), Eq. 9.

    Args:
        q: [B, N] prototype sample (S1).
        k: [B, N] intensity values of the network (S2).
        alpha: significance level.
        xi: margin.
        temperature: soft-rank temperature, see `rank_temperature`.
        p_mode: "density" (paper) or "two_sided", see `rank_sum_p_value`.
        reduction: "mean" -> scalar over the batch; "none" -> [B].
        temperature_mode: "absolute" (beta = temperature) or "relative"
            (beta = temperature * std of the 2N pooled values).
    """
    check_reduction(reduction)
    check_p_mode(p_mode)
    p = rank_sum_p_value(rank_sum_z(q, k, temperature, temperature_mode), p_mode)
    return reduce_per_clip(ops.relu(xi - (p - alpha)), reduction)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class WilcoxonRankSumLoss(keras.losses.Loss):
    """Eq. 9 as a Keras loss: `y_true` = prototype sample q [B, N], `y_pred` = k [B, N].

    Args:
        alpha: significance level.
        xi: margin.
        temperature: soft-rank temperature, > 0.
        p_mode: "density" (paper) or "two_sided".
        temperature_mode: "absolute" or "relative", see `rank_temperature`.
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
        temperature_mode="absolute",
    ):
        check_temperature(temperature)
        check_p_mode(p_mode)
        check_temperature_mode(temperature_mode)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = alpha
        self.xi = xi
        self.temperature = temperature
        self.p_mode = p_mode
        self.temperature_mode = temperature_mode

    def call(self, y_true, y_pred):
        return wilcoxon_rank_sum_loss(
            y_true,
            y_pred,
            alpha=self.alpha,
            xi=self.xi,
            temperature=self.temperature,
            p_mode=self.p_mode,
            reduction="none",
            temperature_mode=self.temperature_mode,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "xi": self.xi,
            "temperature": self.temperature,
            "p_mode": self.p_mode,
            "temperature_mode": self.temperature_mode,
        }
