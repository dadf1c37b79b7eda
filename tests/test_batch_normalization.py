"""The encoders' fused BatchNormalization against a numpy re-derivation of batch normalisation, and its saving."""

import keras
import numpy as np
import pytest

from cmnet_keras.layers import FacialFeatureEncoder, fused_batch_normalization
from cmnet_keras.layers.fused_batch_normalization import BatchNormalization

EPSILON, MOMENTUM = 1e-3, 0.9


def _layer(channels):
    layer = BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
    layer.build((None, 5, 6, channels))
    rng = np.random.default_rng(1)
    layer.gamma.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    layer.beta.assign(rng.normal(size=channels).astype("float32"))
    layer.moving_mean.assign(rng.normal(size=channels).astype("float32"))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
    return layer


def _numpy_batch_norm(x, upstream, gamma, beta, moving_mean, moving_variance):
    """Output, gradients (x, gamma, beta) of sum(upstream * BN(x)) and the new moving statistics."""
    axes = (0, 1, 2)
    mean, variance = x.mean(axes), x.var(axes)
    normed = (x - mean) / np.sqrt(variance + EPSILON)
    d_normed = upstream * gamma
    d_x = (d_normed - d_normed.mean(axes) - normed * (d_normed * normed).mean(axes)) / np.sqrt(variance + EPSILON)
    return (normed * gamma + beta, d_x, (upstream * normed).sum(axes), upstream.sum(axes),
            MOMENTUM * moving_mean + (1 - MOMENTUM) * mean, MOMENTUM * moving_variance + (1 - MOMENTUM) * variance)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(4, 5, 6, 3)) * 3 + 2).astype("float32")
    return x, rng.normal(size=x.shape).astype("float32")


def _start(layer):
    return [np.asarray(v, dtype=np.float64) for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)]


def test_training_call_matches_numpy_outputs_gradients_and_moving_statistics():
    import tensorflow as tf

    x, upstream = _inputs()
    layer = _layer(3)
    start = _start(layer)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
        outputs = layer(x, training=True)  # a second call: the moving statistics move twice
    d_x, d_gamma, d_beta = tape.gradient(loss, [x, layer.gamma, layer.beta])
    x = x.numpy()
    want, want_dx, want_dgamma, want_dbeta, mean1, variance1 = _numpy_batch_norm(x.astype(np.float64), upstream,
                                                                                 *start)
    np.testing.assert_allclose(outputs, want, atol=1e-5)
    np.testing.assert_allclose(d_x, want_dx, atol=1e-4)
    np.testing.assert_allclose(d_gamma, want_dgamma, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d_beta, want_dbeta, rtol=1e-5, atol=1e-5)
    batch_mean, batch_variance = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(layer.moving_mean, MOMENTUM * mean1 + (1 - MOMENTUM) * batch_mean, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, MOMENTUM * variance1 + (1 - MOMENTUM) * batch_variance,
                               rtol=1e-5)


def _op_types(layer, x, training):
    import tensorflow as tf

    graph = tf.function(lambda v: layer(v, training=training)).get_concrete_function(tf.constant(x)).graph
    return {op.type for op in graph.get_operations()}


def test_training_runs_the_fused_kernel_and_inference_keras_code():
    x, _ = _inputs()
    layer = _layer(3)
    assert "FusedBatchNormV3" in _op_types(layer, x, training=True)
    assert not {"FusedBatchNormV3", "Mean"} & _op_types(layer, x, training=False)
    half = BatchNormalization(dtype="mixed_float16")  # float16 inputs: Keras's code
    assert "FusedBatchNormV3" not in _op_types(half, x, training=True)


@pytest.mark.backend
def test_every_backend_trains_and_infers_like_numpy():
    """Under JAX and PyTorch (Keras's code) as under TensorFlow (the fused kernel)."""
    x, upstream = _inputs(2)
    layer = _layer(3)
    start = _start(layer)
    outputs = keras.ops.convert_to_numpy(layer(x, training=True))
    want, *_, mean, variance = _numpy_batch_norm(x.astype(np.float64), upstream, *start)
    np.testing.assert_allclose(outputs, want, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), mean, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_variance), variance, rtol=1e-5)
    gamma, beta = start[:2]
    inferred = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_allclose(inferred, (x - mean) / np.sqrt(variance + EPSILON) * gamma + beta, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.moving_mean), mean, atol=1e-5)  # inference: unmoved


@pytest.mark.backend
def test_config_round_trip_and_the_encoders_use_it():
    layer = BatchNormalization(momentum=0.7, epsilon=1e-5)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "cmnet_keras>BatchNormalization"
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is BatchNormalization and clone.get_config() == layer.get_config()
    ffe = FacialFeatureEncoder(4, (1, 1))
    ffe.build((None, 16, 16, 3))
    normalisations = [x for x in ffe._flatten_layers() if isinstance(x, keras.layers.BatchNormalization)]
    assert len(normalisations) == 6 and all(type(x) is BatchNormalization for x in normalisations)


@pytest.mark.backend
def test_a_model_saved_with_keras_batch_normalization_loads_and_predicts_the_same(tmp_path, monkeypatch):
    """The encoders as they were before this layer (Keras's class) save files that load into this one."""
    with monkeypatch.context() as patch:
        patch.setattr(fused_batch_normalization, "BatchNormalization", keras.layers.BatchNormalization)
        inputs = keras.Input((2, 16, 16, 3))
        model = keras.Model(inputs, FacialFeatureEncoder(4, (1, 1))(inputs))
    x = np.random.default_rng(3).uniform(size=(2, 2, 16, 16, 3)).astype("float32")
    model(x, training=True)  # moves the moving statistics off their initial values
    assert {type(x) for x in model._flatten_layers()} & {keras.layers.BatchNormalization, BatchNormalization} == {
        keras.layers.BatchNormalization}
    model.save(tmp_path / "old.keras")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    assert BatchNormalization in {type(x) for x in loaded._flatten_layers()}
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
                                  keras.ops.convert_to_numpy(model.predict(x, verbose=0)))
