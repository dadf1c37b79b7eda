"""The fused batch norm of `cmnet_keras.runtime` against a numpy re-derivation of batch normalisation."""

import keras
import numpy as np
import tensorflow as tf

from cmnet_keras.runtime import fused_batch_norm

EPSILON, MOMENTUM = 1e-3, 0.9


def _layer(channels):
    layer = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPSILON)
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


def _train_call(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) * upstream)
        outputs = layer(x, training=True)  # a second call: the moving statistics move twice
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return outputs, grads


def test_fused_batch_norm_matches_numpy_outputs_gradients_and_moving_statistics():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, 5, 6, 3)) * 3 + 2).astype("float32")
    upstream = rng.normal(size=x.shape).astype("float32")
    layer = _layer(3)
    start = [np.asarray(v, dtype=np.float64)
             for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)]
    with fused_batch_norm():
        outputs, (d_x, d_gamma, d_beta) = _train_call(layer, x, upstream)
    want, want_dx, want_dgamma, want_dbeta, mean1, variance1 = _numpy_batch_norm(x.astype(np.float64), upstream, *start)
    np.testing.assert_allclose(outputs, want, atol=1e-5)
    np.testing.assert_allclose(d_x, want_dx, atol=1e-4)
    np.testing.assert_allclose(d_gamma, want_dgamma, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d_beta, want_dbeta, rtol=1e-5, atol=1e-5)
    batch_mean, batch_variance = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(layer.moving_mean, MOMENTUM * mean1 + (1 - MOMENTUM) * batch_mean, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, MOMENTUM * variance1 + (1 - MOMENTUM) * batch_variance,
                               rtol=1e-5)


def test_fused_batch_norm_leaves_inference_to_keras_and_restores_the_layer_class():
    keras_call = keras.layers.BatchNormalization.call
    x = np.random.default_rng(2).normal(size=(2, 5, 6, 4)).astype("float32")
    layer = _layer(4)
    mean, variance = np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)
    with fused_batch_norm():
        assert keras.layers.BatchNormalization.call is not keras_call
        outputs = layer(x, training=False)
    assert keras.layers.BatchNormalization.call is keras_call
    want = (x - mean) / np.sqrt(variance + EPSILON) * np.asarray(layer.gamma) + np.asarray(layer.beta)
    np.testing.assert_allclose(outputs, want, atol=1e-5)
    np.testing.assert_array_equal(layer.moving_mean, mean)  # inference moves nothing
