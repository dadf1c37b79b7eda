"""Losses (eqs. 1, 5-10) against scipy, scikit-learn and numpy re-derivations."""

import math

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
from keras import ops
from sklearn.metrics import log_loss

from cmnet_keras.losses import (
    ClassificationLoss,
    IntensityDistillationLoss,
    TendencyLoss,
    TotalLoss,
    WilcoxonRankSumLoss,
    classification_loss,
    intensity_distillation_loss,
    rank_sum_p_value,
    rank_sum_statistic,
    rank_sum_z,
    soft_rank,
    soft_spearman,
    spearman_tendency_loss,
    total_loss,
    wilcoxon_rank_sum_loss,
)

N = 16


def np_(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def tied_samples(seed, batch=4, n=N):
    """q, k on a 0.1 grid: many ties, distinct values at least 0.1 apart."""
    rng = np.random.default_rng(seed)
    q = np.round(rng.normal(0.6, 0.3, (batch, n)), 1)
    k = np.round(rng.normal(0.4, 0.3, (batch, n)), 1)
    return q.astype("float32"), k.astype("float32")


def numpy_wilcoxon(q, k, alpha, xi, mode):
    """Eqs. 5-9 with hard ranks: returns Z, p, loss per clip."""
    n = q.shape[-1]
    mu = n * (2 * n + 1) / 2
    sigma = math.sqrt(n**2 * (2 * n + 1) / 12)
    t2 = np.array([scipy.stats.rankdata(np.concatenate([a, b]))[n:].sum() for a, b in zip(q, k)])
    z = (t2 - mu) / sigma
    if mode == "density":
        p = np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    else:
        p = 2 * scipy.stats.norm.sf(np.abs(z))
    return z, p, np.maximum(0.0, xi - (p - alpha))


# Distinct tied values are >= 0.1 apart, so with beta = 1e-4 every sigmoid is
# exactly 0, 0.5 or 1 up to exp(-1000): soft ranks equal hard ranks to float32
# rounding of sums of 32 terms (tolerance 1e-4).
@pytest.mark.backend
def test_soft_rank_equals_scipy_rankdata_with_ties():
    q, k = tied_samples(0)
    pooled = np.concatenate([q, k], axis=-1)
    assert any(len(np.unique(row)) < row.size for row in pooled)  # ties present
    expected = np.stack([scipy.stats.rankdata(row) for row in pooled])
    np.testing.assert_allclose(np_(soft_rank(pooled, 1e-4)), expected, atol=1e-4)


@pytest.mark.backend
def test_z_and_two_sided_p_equal_scipy_ranksums():
    q, k = tied_samples(1)
    reference = [scipy.stats.ranksums(kb, qb) for qb, kb in zip(q, k)]
    z = rank_sum_z(ops.convert_to_tensor(q), ops.convert_to_tensor(k), 1e-4)
    np.testing.assert_allclose(np_(z), [r.statistic for r in reference], atol=1e-4)
    np.testing.assert_allclose(
        np_(rank_sum_p_value(z, "two_sided")), [r.pvalue for r in reference], rtol=1e-3
    )


def test_rank_sums_equal_scipy_rankdata_sums():
    q, k = tied_samples(2)
    t1, t2 = rank_sum_statistic(ops.convert_to_tensor(q), ops.convert_to_tensor(k), 1e-4)
    ranks = np.stack([scipy.stats.rankdata(row) for row in np.concatenate([q, k], axis=-1)])
    np.testing.assert_allclose(np_(t1), ranks[:, :N].sum(-1), atol=1e-3)
    np.testing.assert_allclose(np_(t2), ranks[:, N:].sum(-1), atol=1e-3)


def test_rank_sum_of_k_is_the_sum_of_its_soft_ranks_at_any_temperature():
    rng = np.random.default_rng(8)
    q, k = rng.normal(size=(2, 3, N)).astype("float32")
    pooled = np.concatenate([q, k], axis=-1)
    for beta in (0.05, 1.0):
        _, t2 = rank_sum_statistic(ops.convert_to_tensor(q), ops.convert_to_tensor(k), beta)
        np.testing.assert_allclose(np_(t2), np_(soft_rank(pooled, beta))[:, N:].sum(-1), rtol=1e-5)


@pytest.mark.parametrize("mode", ["density", "two_sided"])
def test_p_and_loss_equal_numpy_eqs_7_to_9(mode):
    # Rows 0-1 overlap (p > alpha + xi, loss 0), rows 2-3 are shifted (loss > 0).
    q, k = tied_samples(3)
    k[2:] = np.round(k[2:] - 1.0, 1)  # re-rounded: float32 ties stay exact
    z_ref, p_ref, loss_ref = numpy_wilcoxon(q, k, alpha=0.05, xi=0.01, mode=mode)
    assert (loss_ref == 0).any() and (loss_ref > 0).any()
    qt, kt = ops.convert_to_tensor(q), ops.convert_to_tensor(k)
    z = rank_sum_z(qt, kt, 1e-4)
    np.testing.assert_allclose(np_(z), z_ref, atol=1e-4)
    np.testing.assert_allclose(np_(rank_sum_p_value(z, mode)), p_ref, rtol=1e-3)  # p down to ~1e-6
    per_clip = wilcoxon_rank_sum_loss(qt, kt, 0.05, 0.01, 1e-4, mode, reduction="none")
    np.testing.assert_allclose(np_(per_clip), loss_ref, atol=1e-6)
    mean = wilcoxon_rank_sum_loss(qt, kt, alpha=0.05, xi=0.01, temperature=1e-4, p_mode=mode)
    np.testing.assert_allclose(float(mean), loss_ref.mean(), atol=1e-6)
    layer = WilcoxonRankSumLoss(temperature=1e-4, p_mode=mode)
    np.testing.assert_allclose(float(layer(q, k)), loss_ref.mean(), atol=1e-6)


@pytest.mark.backend
def test_all_k_below_q_gives_hand_computed_statistic():
    """docs/design.md: k below the whole prototype range -> T2 = 1+...+16 = 136, Z = -4.82."""
    q = np.linspace(0.2, 1.0, N, dtype="float32")[None]
    k = np.zeros((1, N), "float32")
    t1, t2 = rank_sum_statistic(ops.convert_to_tensor(q), ops.convert_to_tensor(k), 0.01)
    assert float(t2[0]) == pytest.approx(136.0, abs=1e-3)
    assert float(t1[0]) == pytest.approx(sum(range(17, 33)), abs=1e-3)
    z = float(rank_sum_z(ops.convert_to_tensor(q), ops.convert_to_tensor(k), 0.01)[0])
    assert z == pytest.approx((136 - 264) / math.sqrt(704), abs=1e-4)
    assert z == pytest.approx(-4.82, abs=5e-3)
    p = float(rank_sum_p_value(z, "density"))
    assert p == pytest.approx(math.exp(-z * z / 2) / math.sqrt(2 * math.pi), rel=1e-4)
    assert float(wilcoxon_rank_sum_loss(q, k)) == pytest.approx(0.06 - p, abs=1e-7)


def test_wrst_gradient_equals_analytic_and_nearly_vanishes_when_k_is_below_q():
    """dL/dk_i = Z p / sigma_T * sum_j sigmoid'((k_i - q_j) / beta) / beta (density p, loss > 0).

    Documents the paper's loss at init: with k below all q (beta = 0.01) it is ~1e-13.
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("GradientTape needs the TensorFlow backend")
    beta, sigma = 0.01, math.sqrt(N**2 * (2 * N + 1) / 12)
    q64 = np.linspace(0.2, 1.0, N)
    q = tf.constant(q64[None].astype("float32"))
    grads = {}
    for name, start in [("below", 0.0), ("overlapping", 0.25)]:
        k = tf.Variable(np.full((1, N), start, "float32"))
        with tf.GradientTape() as tape:
            loss = wilcoxon_rank_sum_loss(q, k, temperature=beta)
        grads[name] = tape.gradient(loss, k).numpy()[0]
        s = scipy.special.expit((start - q64) / beta)
        t2 = N * (N + 1) / 2 + N * s.sum()
        z = (t2 - N * (2 * N + 1) / 2) / sigma
        p = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
        expected = z * p / sigma * (s * (1 - s)).sum() / beta
        np.testing.assert_allclose(grads[name], np.full(N, expected), rtol=1e-3)
    assert np.abs(grads["below"]).max() < 1e-12
    assert np.abs(grads["overlapping"]).max() > 1e-4


def distinct_samples(seed, batch=4, n=N):
    """q, k without ties: shuffled grids 0.05 apart (scaled for k), so beta = 1e-3 gives hard ranks."""
    rng = np.random.default_rng(seed)
    q = np.stack([rng.permutation(n) for _ in range(batch)]) * 0.05 + 0.2
    k = np.stack([rng.permutation(n) for _ in range(batch)]) * 0.03 - 0.1
    return q.astype("float32"), k.astype("float32")


def gradient(fn, x):
    """d sum(fn(x)) / dx under the active backend, as numpy."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = ops.sum(fn(x))
        return np_(tape.gradient(value, x))
    if backend == "jax":
        import jax

        return np_(jax.grad(lambda v: ops.sum(fn(v)))(ops.convert_to_tensor(x)))
    import torch

    x = torch.tensor(x, requires_grad=True)
    ops.sum(fn(x)).backward()
    return np_(x.grad)


@pytest.mark.backend
def test_relative_temperature_equals_numpy_rederivation_and_is_scale_free():
    """"relative": beta = temperature * std of the 2N pooled values (population std), per clip."""
    rng = np.random.default_rng(11)
    q, k = rng.normal(0.6, 0.2, (3, N)), rng.normal(0.3, 0.1, (3, N))
    beta = 0.1 * np.concatenate([q, k], axis=-1).std(axis=-1)
    t2_ref = N * (N + 1) / 2 + scipy.special.expit((k[:, :, None] - q[:, None, :]) / beta[:, None, None]).sum((1, 2))
    t2 = {}
    for scale, shift in [(1.0, 0.0), (7.0, -3.0)]:
        qs, ks = (ops.convert_to_tensor((v * scale + shift).astype("float32")) for v in (q, k))
        t2[scale] = np_(rank_sum_statistic(qs, ks, 0.1, temperature_mode="relative")[1])
    np.testing.assert_allclose(t2[1.0], t2_ref, rtol=1e-5)
    np.testing.assert_allclose(t2[7.0], t2_ref, rtol=1e-4)
    absolute = np_(rank_sum_statistic(ops.convert_to_tensor(q / 7.0), ops.convert_to_tensor(k / 7.0), 0.1)[1])
    assert np.abs(absolute - t2_ref).max() > 1.0  # the absolute beta is not scale-free
    # soft_rank uses the same beta over the values it ranks.
    pooled = np.concatenate([q, k], axis=-1)
    expected = 0.5 + scipy.special.expit((pooled[:, :, None] - pooled[:, None, :]) / beta[:, None, None]).sum(-1)
    np.testing.assert_allclose(np_(soft_rank(pooled.astype("float32"), 0.1, "relative")), expected, rtol=1e-5)


@pytest.mark.backend
@pytest.mark.parametrize("mode, temperature", [("absolute", 1e-3), ("relative", 1e-3)])
def test_soft_spearman_equals_scipy_spearmanr_at_low_temperature(mode, temperature):
    q, k = distinct_samples(12)
    for x in (q, k):
        expected = np.stack([scipy.stats.rankdata(row) for row in x])
        np.testing.assert_allclose(np_(soft_rank(x, temperature, mode)), expected, atol=1e-3)
    n = q.shape[-1]
    spread = n * (n * n - 1) / 12  # sum of squared centred ranks of n distinct values
    expected = [scipy.stats.spearmanr(kb, qb).statistic * spread / (spread + 1) for qb, kb in zip(q, k)]
    np.testing.assert_allclose(np_(soft_spearman(q, k, temperature, mode)), expected, atol=1e-3)
    np.testing.assert_allclose(np_(spearman_tendency_loss(q, k, temperature, mode, "none")),
                               1.0 - np.array(expected), atol=1e-3)


@pytest.mark.backend
def test_soft_spearman_gradient_at_a_constant_k_is_the_hand_derived_one():
    """At k constant (the calibrated start), soft_rank's Jacobian is (1/4 beta)(N I - 1 1^T) and d rho /
    d rank_k = r_q / sqrt((S_q + 1) * 1), r_q the centred soft ranks of q: d rho / dk = N r_q / (4 beta sqrt(S_q + 1)),
    tens, where dividing by a floored norm gave ~1e8 (docs/tendency.md)."""
    q, _ = distinct_samples(15, batch=2)
    k = np.full_like(q, 0.6)
    beta = 0.05
    grad = gradient(lambda v: soft_spearman(q, v, beta, "absolute"), k)
    ranks = 0.5 + scipy.special.expit((q[:, :, None] - q[:, None, :]) / beta).sum(-1)  # eqs. 5-6 on q
    centred = ranks - ranks.mean(-1, keepdims=True)
    n = q.shape[-1]
    expected = n * centred / (4 * beta * np.sqrt((centred**2).sum(-1, keepdims=True) + 1))
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["absolute", "relative"])
def test_spearman_loss_gradient_is_nonzero_and_raises_rho(mode):
    q, k = distinct_samples(13, batch=2)
    grad = gradient(lambda v: spearman_tendency_loss(q, v, 0.05, mode, "none"), k)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 1e-3
    before = np_(soft_spearman(q, k, 0.05, mode))
    after = np_(soft_spearman(q, (k - 1e-3 * grad / np.abs(grad).max()).astype("float32"), 0.05, mode))
    assert np.all(after > before)


@pytest.mark.backend
def test_tendency_loss_is_the_rank_sum_loss_the_spearman_loss_or_their_sum():
    q, k = tied_samples(14)
    k[:2] -= 1.0  # two clips with a rank-sum loss > 0
    rank_sum = np_(wilcoxon_rank_sum_loss(q, k, temperature=0.05, reduction="none"))
    spearman = np_(spearman_tendency_loss(q, k, 0.05, reduction="none"))
    assert (rank_sum > 0).any() and (spearman > 0).any()
    for name, expected in [("rank_sum", rank_sum), ("spearman", spearman), ("both", rank_sum + spearman)]:
        loss = TendencyLoss(name, temperature=0.05, reduction="none")
        np.testing.assert_allclose(np_(loss(q, k)), expected, rtol=1e-6)


def numpy_id_loss(z1, z2, negatives, tau):
    """Eq. 1 as printed, one frame at a time, in float64."""

    def unit(v):
        return v / np.linalg.norm(v)

    def sim(a, b):
        return np.exp(unit(a) @ unit(b) / tau)

    batch, frames = z1.shape[:2]
    losses = []
    for b in range(batch):
        total = 0.0
        for n in range(frames):
            pos = sim(z1[b, n], z2[b, n])
            for view in (z1[b, n], z2[b, n]):
                neg = sum(sim(view, m) for m in negatives[b, n])
                total += np.log(pos / (pos + neg))
        losses.append(-total / frames)
    return np.array(losses)


@pytest.mark.backend
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_id_loss_equals_numpy_loop(tau):
    rng = np.random.default_rng(4)
    z1, z2 = rng.normal(size=(2, 3, 5, 8))
    negatives = rng.normal(size=(3, 5, 4, 8))
    expected = numpy_id_loss(z1, z2, negatives, tau)
    args = [ops.convert_to_tensor(a.astype("float32")) for a in (z1, z2, negatives)]
    np.testing.assert_allclose(
        np_(intensity_distillation_loss(*args, tau=tau, reduction="none")), expected, rtol=1e-4
    )
    assert float(intensity_distillation_loss(*args, tau=tau)) == pytest.approx(expected.mean(), rel=1e-4)
    loss = IntensityDistillationLoss(tau=tau)
    dummy = np.zeros(3, "float32")
    assert float(loss(dummy, dict(zip(("z1", "z2", "negatives"), args)))) == pytest.approx(
        expected.mean(), rel=1e-4
    )
    assert float(loss(dummy, tuple(args))) == pytest.approx(expected.mean(), rel=1e-4)


def test_id_loss_is_finite_where_exp_overflows_float32():
    # tau = 0.01: exp(1/tau) = exp(100) > float32 max; logsumexp must stay finite.
    rng = np.random.default_rng(5)
    z1 = rng.normal(size=(2, 4, 6))
    z2 = z1 + 0.05 * rng.normal(size=z1.shape)
    negatives = rng.normal(size=(2, 4, 3, 6))
    expected = numpy_id_loss(z1, z2, negatives, 0.01)
    got = intensity_distillation_loss(
        *(ops.convert_to_tensor(a.astype("float32")) for a in (z1, z2, negatives)), tau=0.01, reduction="none"
    )
    assert np.isfinite(np_(got)).all()
    np.testing.assert_allclose(np_(got), expected, rtol=1e-3, atol=1e-4)


@pytest.mark.backend
def test_classification_loss_equals_sklearn_log_loss():
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.ones(5), size=7).astype("float32")
    labels = rng.integers(0, 5, size=7)
    expected = log_loss(labels, probs, labels=range(5))
    assert float(classification_loss(labels, probs)) == pytest.approx(expected, rel=1e-5)
    assert float(ClassificationLoss()(labels, probs)) == pytest.approx(expected, rel=1e-5)


def test_classification_loss_clips_zero_probability():
    probs = np.array([[0.0, 1.0]], "float32")
    assert float(classification_loss(np.array([0]), probs)) == pytest.approx(-math.log(1e-7), rel=1e-3)


def test_total_loss_is_the_lambda_weighted_sum():
    assert float(total_loss(1.0, 2.0, 3.0)) == pytest.approx(0.07 * 1 + 0.71 * 2 + 0.22 * 3)
    assert float(total_loss(1.0, 2.0, 3.0, lambdas=(0.0, 0.0, 1.0))) == pytest.approx(3.0)


@pytest.mark.backend
def test_total_loss_class_reduces_per_clip_terms_to_the_mean_of_eq_10():
    terms = {"id_loss": [1.0, 3.0, 2.0], "wrst_loss": [0.0, 0.5, 0.1], "ce_loss": [2.0, 1.0, 4.0]}
    expected = np.mean([0.2 * i + 0.3 * w + 0.5 * c for i, w, c in zip(*terms.values())])
    loss = TotalLoss(lambdas=(0.2, 0.3, 0.5))
    arrays = {k: np.array(v, "float32") for k, v in terms.items()}
    assert float(loss(np.zeros(3), arrays)) == pytest.approx(expected, rel=1e-6)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is TotalLoss and restored.lambdas == (0.2, 0.3, 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        TotalLoss(lambdas=(0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    "lambdas, message",
    [((0.5, 0.5, 0.5), r"sum to 1.*1\.5"), ((0.5, 0.5), r"\(0\.5, 0\.5\)"), ((1.2, -0.2, 0.0), "-0.2")],
)
def test_total_loss_rejects_bad_lambdas(lambdas, message):
    with pytest.raises(ValueError, match=message):
        total_loss(1.0, 1.0, 1.0, lambdas=lambdas)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: WilcoxonRankSumLoss(p_mode="one_sided"), "'one_sided'"),
        (lambda: WilcoxonRankSumLoss(temperature=0.0), "temperature must be > 0, got 0.0"),
        (lambda: IntensityDistillationLoss(tau=-1.0), "tau must be > 0, got -1.0"),
        (lambda: ClassificationLoss(clip=0.7), "0.7"),
        (lambda: rank_sum_p_value(0.0, "gaussian"), "'gaussian'"),
        (lambda: soft_rank(np.zeros(3), temperature=-0.5), "-0.5"),
        (lambda: soft_rank(np.zeros(3), temperature_mode="scaled"), "temperature_mode .*'scaled'"),
        (lambda: TendencyLoss("kendall"), "tendency_loss must be one of .*'kendall'"),
        (lambda: TendencyLoss(temperature=-1.0), "temperature must be > 0, got -1.0"),
        (lambda: wilcoxon_rank_sum_loss(np.zeros((1, 4)), np.zeros((1, 4)), reduction="sum"), "'sum'"),
        (lambda: rank_sum_z(np.zeros((1, 4)), np.zeros((1, 5))), r"\(1, 5\)"),
        (
            lambda: intensity_distillation_loss(np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((2, 4, 3))),
            r"z1=\(2, 4\)",
        ),
    ],
)
def test_bad_arguments_name_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize(
    "loss",
    [
        IntensityDistillationLoss(tau=0.3, name="id"),
        WilcoxonRankSumLoss(alpha=0.1, xi=0.02, temperature=0.05, p_mode="two_sided", reduction="sum",
                            temperature_mode="relative"),
        TendencyLoss("both", alpha=0.1, temperature=0.5, temperature_mode="relative"),
        ClassificationLoss(clip=1e-5),
    ],
)
def test_loss_serialization_round_trip(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    rng = np.random.default_rng(7)
    if isinstance(loss, IntensityDistillationLoss):
        y_true, y_pred = np.zeros(2), tuple(rng.normal(size=s).astype("float32") for s in [(2, 4, 3), (2, 4, 3), (2, 4, 2, 3)])
    elif isinstance(loss, (WilcoxonRankSumLoss, TendencyLoss)):
        y_true, y_pred = rng.normal(size=(2, 6)).astype("float32"), rng.normal(size=(2, 6)).astype("float32")
    else:
        y_true, y_pred = np.array([0, 2]), rng.dirichlet(np.ones(3), size=2).astype("float32")
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)), rel=1e-6)


def test_total_loss_of_a_loss_ablation_keeps_the_weights():
    terms = {"id_loss": np.array([0.3, 0.5]), "wrst_loss": np.array([0.04, 0.06]), "ce_loss": np.array([1.2, 0.8])}
    loss = TotalLoss((0.0, 0.71, 0.22), sum_to_one=False)
    assert float(loss(np.zeros(2), terms)) == pytest.approx(0.71 * 0.05 + 0.22 * 1.0)  # means over the 2 clips
    assert TotalLoss.from_config(loss.get_config()).lambdas == (0.0, 0.71, 0.22)
    with pytest.raises(ValueError, match="sum to 1"):
        TotalLoss((0.0, 0.71, 0.22))
    with pytest.raises(ValueError, match="not all 0"):
        TotalLoss((0.0, 0.0, 0.0), sum_to_one=False)
