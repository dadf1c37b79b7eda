"""The CMNet model: forward passes, losses, training, serialization, bad inputs."""

import contextlib
import math
import types

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats

from cmnet_keras import get_config
from cmnet_keras.config import CMNetConfig
from cmnet_keras.data.folds import LOSOFold
from cmnet_keras.losses import intensity_distillation_loss
from cmnet_keras.models import CMNet, build_cmnet
from cmnet_keras.models.cmnet import onset_difference

TINY = get_config("tiny")
HISTORY_KEYS = {"loss", "id_loss", "wrst_loss", "ce_loss", "accuracy"}


def _batch(batch=2, seed=0, size=32):
    rng = np.random.default_rng(seed)
    x = {
        "frames": rng.integers(0, 256, (batch, 16, size, size, 3)).astype("uint8"),
        "apex": rng.integers(0, 16, (batch,)).astype("int32"),
    }
    return x, rng.integers(0, 5, (batch,)).astype("int32")


def _numpy(tree):
    return {k: keras.ops.convert_to_numpy(v) for k, v in tree.items()}


def test_inference_outputs_probabilities_and_intensity_curve():
    model = build_cmnet(TINY, compile=False)
    x, _ = _batch(3)
    out = _numpy(model(x))
    assert set(out) == {"probs", "intensity"}
    assert out["probs"].shape == (3, 5) and out["intensity"].shape == (3, 16)
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, atol=1e-5)
    # Frames are scaled /255 inside: uint8 and float 0..255 inputs agree; apex is optional.
    as_float = _numpy(model({"frames": x["frames"].astype("float32")}))
    np.testing.assert_allclose(as_float["probs"], out["probs"], atol=1e-6)


def _count_frames(model, x, training):
    seen = {}
    for name in ("ffe", "ice"):
        layer = getattr(model, name)
        original = layer.call

        def call(frames, training=False, name=name, original=original):
            seen[name] = int(np.prod(frames.shape[:-3]))
            return original(frames, training=training)

        layer.call = call
    model(x, training=training)
    return seen


@pytest.mark.parametrize(
    "lambdas, training, ice_frames",
    [((0.07, 0.71, 0.22), True, 3 * 16), ((0.07, 0.71, 0.22), False, 16), ((0.0, 0.0, 1.0), True, 16)],
)
def test_encoders_see_n_frames_and_ice_3n_only_when_distilling(lambdas, training, ice_frames):
    model = build_cmnet(TINY.replace(lambdas=lambdas), compile=False)
    x, _ = _batch(2)
    assert _count_frames(model, x, training) == {"ffe": 2 * 16, "ice": 2 * ice_frames}


def test_training_outputs_carry_views_negatives_and_prototype():
    model = build_cmnet(TINY.replace(sampler="deterministic"), compile=False)
    x, _ = _batch(2)
    out = model(x, training=True)
    z1, z2 = out["views"]
    assert tuple(z1.shape) == tuple(z2.shape) == (2, 16, TINY.ice_dim)
    assert tuple(out["negatives"].shape) == (2, 16, 15, TINY.ice_dim)
    assert tuple(out["prototype"].shape) == (2, 16)
    # Negatives are the un-augmented z of the other frames: squeeze(negatives) = k elsewhere.
    k = keras.ops.convert_to_numpy(out["intensity"])
    k_neg = keras.ops.convert_to_numpy(model.squeeze(out["negatives"]))
    for n in range(16):
        np.testing.assert_allclose(k_neg[:, n], np.delete(k, n, axis=1), rtol=1e-4, atol=1e-5)
    plain = build_cmnet(TINY.replace(lambdas=(0.0, 0.0, 1.0)), compile=False)
    assert set(plain(x, training=True)) == {"probs", "intensity"}


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
def test_total_loss_gradients_reach_every_part():
    import tensorflow as tf

    model = build_cmnet(TINY)
    x, y = _batch(2)
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x, y, y_pred, training=True)
    names = [v.path for v in model.trainable_variables]
    grads = dict(zip(names, tape.gradient(loss, model.trainable_variables)))
    for part in ("ffe/", "ice/", "squeeze/", "extend/", "lstm/", "classifier/"):
        norms = [float(tf.norm(g)) for n, g in grads.items() if f"/{part}" in f"/{n}" and g is not None]
        assert norms and max(norms) > 0, part
        assert all(np.isfinite(norms)), part


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape")
@pytest.mark.parametrize("path", ["views", "negatives"])
def test_id_loss_reaches_the_ice_through_the_views_and_through_the_negatives(path):
    """Eq. 1 with the other path's gradient stopped: each path alone gives the ICE non-zero gradients."""
    import tensorflow as tf

    model = build_cmnet(TINY.replace(sampler="deterministic"))
    x, _ = _batch(2)
    ice = model.ice.trainable_variables
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        (z1, z2), negatives = out["views"], out["negatives"]
        if path == "views":
            negatives = tf.stop_gradient(negatives)
        else:
            z1, z2 = tf.stop_gradient(z1), tf.stop_gradient(z2)
        id_loss = intensity_distillation_loss(z1, z2, negatives, TINY.tau)
    grads = tape.gradient(id_loss, ice + model.ffe.trainable_variables + model.lstm.trainable_variables)
    ice_grads, other = grads[: len(ice)], grads[len(ice):]
    kernels = [g for v, g in zip(ice, ice_grads) if "kernel" in v.path]
    assert len(kernels) == len(TINY.ice_filters) + 1  # every conv and the projection
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 1e-7 for g in kernels)
    assert all(g is None for g in other)  # L_ID reaches the ICE only


def _history_lowers_loss(history):
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0]


@pytest.mark.backend
def test_fit_on_a_tiny_batch_lowers_the_loss_and_logs_every_term():
    keras.utils.set_random_seed(0)
    # Without augmentation (random views make L_ID noisy over 6 steps) every step is deterministic.
    cfg = TINY.replace(learning_rate=0.05, sampler="deterministic", jitter_rate=0.0, grayscale_rate=0.0, blur_rate=0.0)
    model = build_cmnet(cfg)
    x, y = _batch(2)
    history = model.fit(x, y, batch_size=2, epochs=6, verbose=0)
    assert HISTORY_KEYS <= set(history.history)
    _history_lowers_loss(history)
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0


def prototype_means(apex, frames=16, eps=0.2):
    """Eqs. 2-4 means, one row per apex (0-based frames)."""
    i = np.arange(frames)
    return np.stack([np.where(i < a, eps + i * (1 - eps) / max(a, 1),
                              np.where(i > a, 1 - (i - a) * (1 - eps) / max(frames - 1 - a, 1), 1.0)) for a in apex])


def numpy_wrst(q, k, alpha=0.05, xi=0.01, beta=0.01):
    """Eqs. 5-9 per clip with soft ranks 0.5 + sum_j sigmoid((x_i - x_j) / beta) over the pooled 2N values."""
    n = q.shape[1]
    pooled = np.concatenate([q, k], axis=1).astype(np.float64)
    ranks = 0.5 + scipy.special.expit((pooled[:, :, None] - pooled[:, None, :]) / beta).sum(-1)
    z = (ranks[:, n:].sum(1) - n * (2 * n + 1) / 2) / math.sqrt(n * n * (2 * n + 1) / 12)
    return np.maximum(0.0, xi - (np.exp(-z * z / 2) / math.sqrt(2 * math.pi) - alpha))


@pytest.mark.backend
def test_evaluate_with_sample_weights_equals_numpy_eq_10():
    """L_C weighted (sum_i w_i L_C,i / B), L_Wrst on the prototype means unweighted, L_ID 0 without views."""
    keras.utils.set_random_seed(0)
    model = build_cmnet(TINY)
    x, y = _batch(3)
    x["apex"] = np.array([2, 8, 13], "int32")
    kernel, bias = model.squeeze.get_weights()
    # k = 0.35 on every frame, partly below the prototype: 0 < L_Wrst < alpha + xi, where it depends on the ranks.
    model.squeeze.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.35)])
    out = _numpy(model.predict(x, verbose=0))
    w = np.array([2.0, 0.5, 1.0], "float32")
    ce = -np.log(out["probs"][np.arange(3), y].astype(np.float64))
    wrst = numpy_wrst(prototype_means(x["apex"]), out["intensity"])
    assert (wrst > 0.03).all() and (wrst < 0.045).all()
    logs = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert logs["id_loss"] == 0
    assert logs["ce_loss"] == pytest.approx((w * ce).sum() / 3, rel=1e-5)
    assert logs["wrst_loss"] == pytest.approx(wrst.mean(), rel=1e-4)
    assert logs["loss"] == pytest.approx(0.71 * wrst.mean() + 0.22 * (w * ce).sum() / 3, rel=1e-4)


def mean_abs_z(model, x, training=False):
    """Mean over clips of |Z| of scipy's rank-sum test of k against the numpy prototype mean."""
    k = keras.ops.convert_to_numpy(model(x, training=training)["intensity"])
    q = prototype_means(x["apex"])
    return np.mean([abs(scipy.stats.ranksums(kb, qb).statistic) for kb, qb in zip(k, q)])


# The loss sees k of the training pass (batch statistics); at the default init the tiny model's k
# already overlaps the prototype there, so the squeeze bias first moves every k below [epsilon, 1].
# From there the absolute beta = 0.01 leaves the loss's gradient ~1e-13 (10 AdamW steps change
# nothing); the relative beta = 0.5 std of the pooled values moves k into the prototype's distribution.
@pytest.mark.backend
@pytest.mark.parametrize("mode, temperature, moves", [("absolute", 0.01, False), ("relative", 0.5, True)])
def test_rank_sum_loss_alone_moves_k_from_below_into_the_prototype(mode, temperature, moves):
    keras.utils.set_random_seed(0)
    cfg = TINY.replace(lambdas=(0.0, 1.0, 0.0), optimizer="adamw", learning_rate=1e-2,
                       rank_temperature_mode=mode, rank_temperature=temperature)
    model = build_cmnet(cfg)
    x, y = _batch(4)
    x["apex"] = np.array([3, 6, 9, 12], "int32")
    k = keras.ops.convert_to_numpy(model(x, training=True)["intensity"])
    kernel, bias = model.squeeze.get_weights()
    model.squeeze.set_weights([kernel, bias - (k.max() - 0.1)])
    assert mean_abs_z(model, x, training=True) == pytest.approx(4.82, abs=0.01)  # every k below every q
    model.fit(x, y, batch_size=4, epochs=10, verbose=0)
    assert (mean_abs_z(model, x, training=True) < 1.95) == moves


@pytest.mark.backend
def test_squeeze_init_in_range_starts_k_at_the_middle_of_the_prototype_range():
    keras.utils.set_random_seed(0)
    x, _ = _batch(4)
    x["apex"] = np.array([3, 6, 9, 12], "int32")
    model = build_cmnet(TINY.replace(squeeze_bias_init=0.6, squeeze_kernel_init="zeros"), compile=False)
    for training in (False, True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=training)["intensity"]), 0.6)
        assert mean_abs_z(model, x, training) < 1.95


@pytest.mark.backend
def test_difference_ice_sees_only_the_change_from_the_onset_frame():
    x, _ = _batch(2)
    assert np.allclose(keras.ops.convert_to_numpy(onset_difference(np.array([[[0.2]], [[0.7]]])[None])),
                       [[[[0.5]], [[0.75]]]])
    model = build_cmnet(TINY.replace(ice_input="difference"), compile=False)
    still = {"frames": np.repeat(x["frames"][:, :1], 16, axis=1), "apex": x["apex"]}
    k = keras.ops.convert_to_numpy(model(still)["intensity"])
    # Every frame equals the onset: one mid-grey ICE input, so one k for every frame of every clip.
    np.testing.assert_allclose(k, k[0, 0], atol=1e-6)
    brighter = dict(still, frames=still["frames"] // 2 + 100)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(brighter)["intensity"]), k, atol=1e-6)
    moving = keras.ops.convert_to_numpy(model(x)["intensity"])
    assert np.ptp(moving[:, 1:]) > 1e-4 and np.allclose(moving[:, 0], k[0, 0], atol=1e-6)


@pytest.mark.backend
def test_class_weight_weights_the_classification_loss_of_the_step():
    keras.utils.set_random_seed(0)
    model = build_cmnet(TINY.replace(lambdas=(0.0, 0.0, 1.0)))
    x, y = _batch(4)
    y = np.array([0, 1, 1, 3], "int32")
    probs = keras.ops.convert_to_numpy(model(x, training=True)["probs"])  # batch statistics, as in the step
    class_weight = {0: 3.0, 1: 0.5, 2: 1.0, 3: 2.0, 4: 1.0}
    w = np.array([class_weight[c] for c in y])
    expected = (w * -np.log(probs[np.arange(4), y].astype(np.float64))).sum() / 4
    history = model.fit(x, y, class_weight=class_weight, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert history["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert history["ce_loss"][0] == pytest.approx(expected, rel=1e-4)


@pytest.mark.backend
def test_compute_loss_keeps_regularisation_losses():
    model = build_cmnet(TINY, compile=False)
    x, y = _batch(2)
    y_pred = model(x, training=False)
    plain = float(keras.ops.convert_to_numpy(model.compute_loss(x, y, y_pred, training=False)))
    model.classifier.kernel.regularizer = keras.regularizers.L2(0.1)
    regularised = float(keras.ops.convert_to_numpy(model.compute_loss(x, y, y_pred, training=False)))
    kernel = keras.ops.convert_to_numpy(model.classifier.kernel).astype(np.float64)
    assert regularised - plain == pytest.approx(0.1 * (kernel**2).sum(), rel=1e-4)


def test_classification_only_model_skips_the_auxiliary_terms():
    keras.utils.set_random_seed(0)
    model = build_cmnet(TINY.replace(lambdas=(0.0, 0.0, 1.0), learning_rate=0.05))
    x, y = _batch(2)
    history = model.fit(x, y, batch_size=2, epochs=4, verbose=0)
    assert history.history["id_loss"][-1] == 0 and history.history["wrst_loss"][-1] == 0
    np.testing.assert_allclose(history.history["loss"], history.history["ce_loss"], rtol=1e-5)
    _history_lowers_loss(history)


def test_intensity_prototype_means_follow_eqs_2_to_4():
    model = build_cmnet(TINY, compile=False)
    means = keras.ops.convert_to_numpy(model.intensity_prototype(np.array([0, 5, 15])))
    eps, frames = 0.2, np.arange(16)
    expected = np.stack(
        [
            1 - frames * (1 - eps) / 15,
            np.where(frames <= 5, eps + frames * (1 - eps) / 5, 1 - (frames - 5) * (1 - eps) / 10),
            eps + frames * (1 - eps) / 15,
        ]
    )
    np.testing.assert_allclose(means, expected, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="LOSOFold datasets are tf.data")
def test_fit_and_evaluate_accept_a_loso_fold():
    import tensorflow as tf

    x, y = _batch(4)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    fold = LOSOFold(subject="sub01", train=ds, test=ds.take(1), validation=ds.take(1))
    model = build_cmnet(TINY)
    history = model.fit(fold, epochs=1, verbose=0, shuffle=False)
    assert {"val_loss", "val_ce_loss", "val_accuracy"} <= set(history.history)
    on_fold = model.evaluate(fold, verbose=0, return_dict=True)
    on_test = model.evaluate(ds.take(1), verbose=0, return_dict=True)
    assert on_fold == pytest.approx(on_test)
    # Any object with train, test and validation attributes is a fold.
    duck = types.SimpleNamespace(train=ds, test=ds.skip(1), validation=None)
    assert model.evaluate(duck, verbose=0, return_dict=True) == pytest.approx(
        model.evaluate(ds.skip(1), verbose=0, return_dict=True))
    assert "val_loss" not in model.fit(duck, epochs=1, verbose=0).history


@pytest.mark.backend
def test_save_and_load_reproduce_predictions_exactly(tmp_path):
    model = build_cmnet(TINY.replace(learning_rate=0.05), steps_per_epoch=2)
    x, y = _batch(2)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)  # moves BN statistics and eta off init
    path = tmp_path / "cmnet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CMNet)
    assert CMNetConfig(**{k: v for k, v in loaded.get_config().items() if k in TINY.to_dict()}) == model.config
    expected, got = _numpy(model.predict(x, verbose=0)), _numpy(loaded.predict(x, verbose=0))
    for key in ("probs", "intensity"):
        np.testing.assert_array_equal(got[key], expected[key])
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    schedule = loaded.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "ExponentialDecay"
    assert schedule["config"]["decay_steps"] == 2 * 50 and schedule["config"]["decay_rate"] == 0.5


def test_get_config_returns_every_config_field():
    config = CMNet(**TINY.to_dict()).get_config()
    assert {k: config[k] for k in TINY.to_dict()} == TINY.to_dict()


def test_default_optimizer_halves_the_learning_rate_every_n_epochs():
    from cmnet_keras.optimizers import default_optimizer

    opt = default_optimizer(get_config("paper"), steps_per_epoch=10)
    values = []
    for step in (0, 499, 500, 999, 1000):
        opt.iterations.assign(step)
        values.append(float(keras.ops.convert_to_numpy(opt.learning_rate)))
    np.testing.assert_allclose(values, [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4], rtol=1e-6)
    assert opt.momentum == 0.9 and opt.weight_decay == 1e-4
    constant = default_optimizer(get_config("paper"))
    assert float(keras.ops.convert_to_numpy(constant.learning_rate)) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="got 0"):
        default_optimizer(get_config("paper"), steps_per_epoch=0)


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda x: {**x, "frames": x["frames"][:, :8]}, r"\[B, 16, H, W, 3\] \(num_frames=16\), got shape \(2, 8, 32, 32, 3\)"),
        (lambda x: {**x, "frames": x["frames"][..., :1]}, r"got shape \(2, 16, 32, 32, 1\)"),
        (lambda x: {**x, "apex": np.array([3, 16])}, r"apex must be in \[0, 15\], got \[16\]"),
        (lambda x: {**x, "apex": np.array([-1, 2])}, r"got \[-1\]"),
        (lambda x: {**x, "apex": np.zeros((2, 1), "int32")}, r"apex must be \[B\].*got shape \(2, 1\)"),
        (lambda x: x["frames"], "expects a dict"),
    ],
)
def test_bad_inputs_raise_errors_naming_the_value(make_input, message):
    model = build_cmnet(TINY)
    x, y = _batch(2)
    bad = make_input(x)
    with pytest.raises(ValueError, match=message):
        model(bad)
    if isinstance(bad, dict):
        with pytest.raises(ValueError, match=message):
            model.fit(bad, y, verbose=0)


def test_training_without_apex_names_the_missing_input():
    model = build_cmnet(TINY)
    x, _ = _batch(2)
    with pytest.raises(ValueError, match="apex"):
        model({"frames": x["frames"]}, training=True)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(sampler="nearest"), "sampler must be one of .*'nearest'"),
        (dict(lambdas=(0.5, 0.5, 0.5)), r"lambdas must sum to 1 .*\(0.5, 0.5, 0.5\)"),
        (dict(num_frames=2), "num_frames must be >= 3, got 2"),
        (dict(num_negatives=4), "deterministic sampling .* got num_negatives=4"),
        (dict(ice_input="flow"), r"ice_input must be one of \('frame', 'difference'\), got 'flow'"),
    ],
)
def test_bad_config_values_raise_errors_naming_the_value(change, message):
    values = {**TINY.to_dict(), **change}
    if change.get("num_negatives"):
        values["sampler"] = "deterministic"
    with pytest.raises(ValueError, match=message):
        build_cmnet(CMNetConfig(**values), compile=False)


@contextlib.contextmanager
def global_policy(name):
    """Sets the global dtype policy; restores the one it found."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_mixed_precision_dtypes_and_agreement_with_float32():
    keras.utils.set_random_seed(0)
    reference = build_cmnet(TINY, compile=False)
    with global_policy("mixed_float16"):
        model = build_cmnet(TINY)
        model.set_weights(reference.get_weights())
        x, y = _batch(batch=4)
        half = _numpy(model(x))
        train = model(x, training=True)
        history = model.fit(x, y, epochs=1, batch_size=2, verbose=0).history
        probs = model.predict(x, verbose=0)["probs"]
    assert keras.mixed_precision.global_policy().name == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}  # variables stay float32
    dtypes = {k: [str(keras.ops.dtype(t)) for t in keras.tree.flatten(v)] for k, v in train.items()}
    assert dtypes == {"probs": ["float32"], "intensity": ["float16"], "views": ["float16", "float16"],
                      "negatives": ["float16"], "prototype": ["float16"]}
    # float16 keeps 11 significant bits (relative step 2^-10 ~ 1e-3): 2e-3 on probabilities and k (|k| < 1).
    full = _numpy(reference(x))
    assert half["intensity"].dtype == np.float16 and full["intensity"].dtype == np.float32
    for key in ("probs", "intensity"):
        np.testing.assert_allclose(half[key].astype(np.float32), full[key], atol=2e-3, rtol=0)
    assert all(np.isfinite(history[k][0]) for k in ("loss", "id_loss", "wrst_loss", "ce_loss"))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
