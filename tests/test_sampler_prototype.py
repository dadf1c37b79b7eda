"""Negative sampler and intensity prototype (eqs. 2-4) against numpy and scipy."""

import keras
import numpy as np
import pytest
import scipy.stats
from keras import ops

from cmnet_keras.layers.intensity_prototype import IntensityPrototype
from cmnet_keras.layers.negative_sampler import NegativeSampler, gather_negatives

# Chi-square tests use fixed seeds; each must reject uniformity/softmax only below
# this level (many tests at once, so well below 0.05).
MIN_P = 1e-4


def features(seed, batch=2, frames=6, dim=3):
    return np.random.default_rng(seed).normal(size=(batch, frames, dim)).astype("float32")


# ---------------------------------------------------------------- sampler


@pytest.mark.backend
def test_deterministic_sampler_takes_exactly_the_15_others():
    indices = ops.convert_to_numpy(NegativeSampler("deterministic", num_negatives=15)(features(0, 3, 16, 4)))
    assert indices.shape == (3, 16, 15) and indices.dtype == np.int32
    for b in range(3):
        for n in range(16):
            assert sorted(indices[b, n]) == [j for j in range(16) if j != n]


def draw_counts(mode, z, num_draws, tau=0.5):
    indices = ops.convert_to_numpy(NegativeSampler(mode, num_negatives=num_draws, tau=tau, seed=3)(z))
    frames = z.shape[1]
    counts = np.stack([np.bincount(row, minlength=frames) for row in indices.reshape(-1, num_draws)])
    return counts.reshape(z.shape[0], frames, frames)


@pytest.mark.backend
def test_probabilistic_sampler_follows_softmax_of_cosine_and_never_picks_anchor():
    z, tau, draws = features(1), 0.5, 4000
    counts = draw_counts("probabilistic", z, draws, tau)
    unit = z.astype(np.float64) / np.linalg.norm(z.astype(np.float64), axis=-1, keepdims=True)
    for b in range(z.shape[0]):
        for n in range(z.shape[1]):
            assert counts[b, n, n] == 0
            others = [j for j in range(z.shape[1]) if j != n]
            logits = np.array([unit[b, n] @ unit[b, j] / tau for j in others])
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            result = scipy.stats.chisquare(counts[b, n, others], draws * probs)
            assert result.pvalue > MIN_P, (b, n, counts[b, n], probs)


def test_random_sampler_is_uniform_over_others_and_never_picks_anchor():
    z, draws = features(2), 3000
    counts = draw_counts("random", z, draws)
    for b in range(z.shape[0]):
        for n in range(z.shape[1]):
            assert counts[b, n, n] == 0
            others = [j for j in range(z.shape[1]) if j != n]
            assert scipy.stats.chisquare(counts[b, n, others]).pvalue > MIN_P


def test_samplers_differ_where_they_should():
    # With one frame far more similar to the anchor, the probabilistic sampler
    # prefers it; the random sampler does not.
    z = features(3, 1, 6, 3)
    z[0, 1] = z[0, 0] + 1e-3
    prob = draw_counts("probabilistic", z, 2000, tau=0.1)[0, 0]
    rand = draw_counts("random", z, 2000)[0, 0]
    assert prob[1] > 0.5 * 2000 and rand[1] < 0.3 * 2000


def test_gather_negatives_equals_numpy_indexing_and_passes_gradients():
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("GradientTape needs the TensorFlow backend")
    z = features(4, 2, 5, 3)
    indices = np.random.default_rng(4).integers(0, 5, size=(2, 5, 7)).astype("int32")
    zt = tf.Variable(z)
    with tf.GradientTape() as tape:
        gathered = gather_negatives(zt, indices)
        total = tf.reduce_sum(gathered)
    expected = np.stack([z[b][indices[b]] for b in range(2)])
    np.testing.assert_allclose(gathered.numpy(), expected, rtol=1e-6)
    uses = np.stack([np.bincount(indices[b].ravel(), minlength=5) for b in range(2)])
    np.testing.assert_allclose(tape.gradient(total, zt).numpy(), np.repeat(uses[..., None], 3, -1))


def test_sampler_symbolic_output_shape():
    out = NegativeSampler("random", num_negatives=4)(keras.Input((16, 8)))
    assert tuple(out.shape) == (None, 16, 4) and out.dtype == "int32"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: NegativeSampler("nearest"), "'nearest'"),
        (lambda: NegativeSampler("random", num_negatives=0), "num_negatives.*0"),
        (lambda: NegativeSampler("random", tau=0.0), "tau must be > 0, got 0.0"),
        (lambda: NegativeSampler("deterministic", num_negatives=5)(features(0, 1, 16, 2)), "num_negatives=5"),
        (lambda: NegativeSampler("random")(np.zeros((2, 16), "float32")), r"\(2, 16\)"),
    ],
)
def test_sampler_bad_arguments_name_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("mode", ["deterministic", "random", "probabilistic"])
def test_sampler_serialization_round_trip(mode):
    sampler = NegativeSampler(mode, num_negatives=5, tau=0.2, seed=11, name="neg")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sampler))
    assert type(restored) is NegativeSampler
    assert restored.get_config() == sampler.get_config()
    z = features(5)
    np.testing.assert_array_equal(ops.convert_to_numpy(restored(z)), ops.convert_to_numpy(sampler(z)))


# -------------------------------------------------------------- prototype


def paper_moments(apex0, frames=16, eps=0.2, eta=0.5):
    """Eqs. 2-4 with the paper's 1-based frame n; apex at n = N1 + 1."""
    n1, n2 = apex0, frames - 1 - apex0
    mean, std = np.zeros(frames), np.zeros(frames)
    for n in range(1, frames + 1):
        if n <= n1:  # On-A, eq. 2
            mean[n - 1] = eps + (n - 1) * (1 - eps) / n1
            std[n - 1] = (1 - eps) / (3 * n1) * eta
        elif n == n1 + 1:  # apex, eq. 4 (min over the segments that exist)
            mean[n - 1] = 1.0
            std[n - 1] = min((1 - eps) / (3 * m) for m in (n1, n2) if m > 0) * eta
        else:  # A-Off, eq. 3
            mean[n - 1] = 1 - (n - n1 - 1) * (1 - eps) / n2
            std[n - 1] = (1 - eps) / (3 * n2) * eta
    return mean, std


@pytest.mark.backend
def test_prototype_moments_equal_eqs_2_to_4_at_first_middle_last_apex():
    apexes = [0, 6, 15]
    mean, std = IntensityPrototype(num_frames=16, epsilon=0.2, eta_init=0.5).prototype_moments(np.array(apexes))
    for row, apex in enumerate(apexes):
        ref_mean, ref_std = paper_moments(apex)
        np.testing.assert_allclose(ops.convert_to_numpy(mean)[row], ref_mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ops.convert_to_numpy(std)[row], ref_std, rtol=1e-5)
    assert ops.convert_to_numpy(mean)[0, 0] == pytest.approx(1.0)  # apex at onset
    assert ops.convert_to_numpy(mean)[2, 15] == pytest.approx(1.0)  # apex at offset


@pytest.mark.backend
@pytest.mark.parametrize("apex", [0, 9, 15])
def test_prototype_samples_have_the_eq_moments(apex):
    draws = 20000
    q = ops.convert_to_numpy(IntensityPrototype(eta_init=0.7, seed=1)(np.full(draws, apex, "int32")))
    ref_mean, ref_std = paper_moments(apex, eta=0.7)
    # Mean: within 4 standard errors; std: within 4 standard errors of s (~ std / sqrt(2 n)).
    np.testing.assert_array_less(np.abs(q.mean(0) - ref_mean), 4 * ref_std / np.sqrt(draws))
    np.testing.assert_array_less(np.abs(q.std(0) - ref_std), 4 * ref_std / np.sqrt(2 * draws))


def test_prototype_gradient_on_eta_equals_numpy_moments_and_finite_difference():
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        pytest.skip("GradientTape needs the TensorFlow backend")
    apex, eta = np.array([0, 7, 15], "int32"), 0.5
    layer = IntensityPrototype(eta_init=eta, seed=2)
    with tf.GradientTape() as tape:
        q = layer(apex)
        total = tf.reduce_sum(q)
    grad = tape.gradient(total, layer.eta_logit.value).numpy()
    # Independent moments (eqs. 2-4 in numpy): q = mean + unit_std * sigmoid(w) * noise,
    # so d sum(q) / dw_n = sum_b unit_std * eta (1 - eta) * noise.
    means, unit_stds = (np.stack(m) for m in zip(*(paper_moments(a, eta=1.0) for a in apex)))
    noise = (q.numpy() - means) / (unit_stds * eta)
    np.testing.assert_allclose(grad, (unit_stds * eta * (1 - eta) * noise).sum(0), rtol=1e-3, atol=1e-6)
    assert np.isfinite(grad).all() and np.abs(grad).min() > 1e-4

    def sum_at(logit):  # same seed, so the same noise
        shifted = IntensityPrototype(eta_init=eta, seed=2)
        shifted.eta_logit.assign(np.full(16, logit, "float32"))
        return ops.convert_to_numpy(shifted(apex)).astype(np.float64).sum(0)

    h = 1e-2
    finite_difference = (sum_at(h) - sum_at(-h)) / (2 * h)  # eta = 0.5: logit 0
    np.testing.assert_allclose(grad, finite_difference, rtol=1e-3, atol=1e-5)


@pytest.mark.backend
def test_prototype_gradient_reaches_eta_under_jax():
    if keras.backend.backend() != "jax":
        pytest.skip("jax.grad needs the JAX backend")
    import jax

    layer = IntensityPrototype(seed=2)
    apex = np.array([0, 15], "int32")

    def total(trainable):
        q, _ = layer.stateless_call(trainable, [v.value for v in layer.non_trainable_variables], apex)
        return q.sum()

    grad = jax.grad(total)([v.value for v in layer.trainable_variables])[0]
    assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)).min() > 0


def test_eta_starts_at_eta_init_and_stays_in_unit_interval():
    layer = IntensityPrototype(num_frames=8, eta_init=0.3)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.eta), np.full(8, 0.3), rtol=1e-6)
    layer.eta_logit.assign(np.linspace(-50, 50, 8).astype("float32"))
    eta = ops.convert_to_numpy(layer.eta)
    assert (eta >= 0).all() and (eta <= 1).all()


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: IntensityPrototype()([3, 16]), r"\[0, 15\].*\[16\]"),
        (lambda: IntensityPrototype().prototype_moments(np.array([-1])), r"\[-1\]"),
        (lambda: IntensityPrototype(num_frames=8).prototype_moments([8]), r"\[8\]"),
        (lambda: IntensityPrototype()(np.zeros((2, 1), "int32")), r"\(2, 1\)"),
        (lambda: IntensityPrototype(num_frames=1), "num_frames.*1"),
        (lambda: IntensityPrototype(epsilon=1.5), "epsilon.*1.5"),
        (lambda: IntensityPrototype(eta_init=0.0), "eta_init.*0.0"),
    ],
)
def test_prototype_bad_arguments_name_the_value(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_prototype_serialization_round_trip():
    layer = IntensityPrototype(num_frames=12, epsilon=0.1, eta_init=0.4, seed=5, name="proto")
    apex = np.array([0, 5, 11], "int32")
    layer.eta_logit.assign(np.linspace(-1, 1, 12).astype("float32"))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is IntensityPrototype
    assert restored.get_config() == layer.get_config()
    restored.set_weights(layer.get_weights())
    for a, b in zip(restored.prototype_moments(apex), layer.prototype_moments(apex)):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(restored(apex)), ops.convert_to_numpy(layer(apex)), rtol=1e-6)
