"""The CMNet model: forward passes, losses, training, serialization, bad inputs."""

import keras
import numpy as np
import pytest

from cmnet_keras import get_config
from cmnet_keras.config import CMNetConfig
from cmnet_keras.data.folds import LOSOFold
from cmnet_keras.models import CMNet, build_cmnet

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
    # L_ID alone reaches the ICE through both the views and the reused negatives.
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        model.compute_loss(x, y, y_pred, training=True)
        id_loss = model.id_loss_tracker.result()
    assert float(id_loss) > 0


def _history_lowers_loss(history):
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss))
    assert loss[-1] < loss[0]


@pytest.mark.jax
def test_fit_on_a_tiny_batch_lowers_the_loss_and_logs_every_term():
    keras.utils.set_random_seed(0)
    cfg = TINY.replace(learning_rate=0.05, sampler="deterministic")
    model = build_cmnet(cfg)
    x, y = _batch(2)
    history = model.fit(x, y, batch_size=2, epochs=6, verbose=0)
    assert HISTORY_KEYS <= set(history.history)
    _history_lowers_loss(history)
    logs = {k: v[-1] for k, v in history.history.items()}
    assert logs["id_loss"] > 0 and logs["wrst_loss"] > 0 and logs["ce_loss"] > 0
    expected = 0.07 * logs["id_loss"] + 0.71 * logs["wrst_loss"] + 0.22 * logs["ce_loss"]
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    assert 0.0 <= logs["accuracy"] <= 1.0


def test_classification_only_model_skips_the_auxiliary_terms():
    keras.utils.set_random_seed(0)
    model = build_cmnet(TINY.replace(lambdas=(0.0, 0.0, 1.0), learning_rate=0.05))
    x, y = _batch(2)
    history = model.fit(x, y, batch_size=2, epochs=4, verbose=0)
    assert history.history["id_loss"][-1] == 0 and history.history["wrst_loss"][-1] == 0
    np.testing.assert_allclose(history.history["loss"], history.history["ce_loss"], rtol=1e-5)
    _history_lowers_loss(history)


def test_evaluate_reports_wrst_with_the_prototype_mean_and_no_id_term():
    model = build_cmnet(TINY)
    x, y = _batch(2)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert HISTORY_KEYS <= set(logs)
    assert logs["id_loss"] == 0
    np.testing.assert_allclose(logs["loss"], 0.71 * logs["wrst_loss"] + 0.22 * logs["ce_loss"], rtol=1e-5)


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


@pytest.mark.jax
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
    ],
)
def test_bad_config_values_raise_errors_naming_the_value(change, message):
    values = {**TINY.to_dict(), **change}
    if change.get("num_negatives"):
        values["sampler"] = "deterministic"
    with pytest.raises(ValueError, match=message):
        build_cmnet(CMNetConfig(**values), compile=False)


def test_mixed_precision_trains_with_float32_losses_and_probabilities():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_cmnet(get_config("tiny"))
        x, y = _batch(batch=4)
        history = model.fit(x, y, epochs=1, batch_size=2, verbose=0).history
        probs = model.predict(x, verbose=0)["probs"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(history[k][0]) for k in ("loss", "id_loss", "wrst_loss", "ce_loss"))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
