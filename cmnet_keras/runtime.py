"""TensorFlow runtime choices that make CPU training faster without changing what is computed (TF-only module)."""

import contextlib

import keras


@contextlib.contextmanager
def fused_batch_norm():
    """Trains `keras.layers.BatchNormalization` through TF's fused kernel while the context is open.

    Keras 3 normalises with `tf.nn.moments` and `tf.nn.batch_normalization`:
    some ten element-wise passes over the activations forward and backward,
    which at the demo preset cost as much as the convolutions. Inside this
    context a training call on NHWC float32 inputs runs one `FusedBatchNormV3`
    (oneDNN's kernel) and its fused gradient instead: the same batch statistics
    (biased variance), outputs and moving averages up to float rounding; other
    calls (inference, masks, float16, renorm, synchronized) keep Keras's code.
    Models traced inside the context keep the fused ops after it closes.
    Under the JAX and PyTorch backends it changes nothing.
    """
    if keras.backend.backend() != "tensorflow":
        yield
        return
    import tensorflow as tf

    layer_class = keras.layers.BatchNormalization
    keras_call = layer_class.call

    def call(self, inputs, training=None, mask=None):
        if (not (training and self.trainable) or mask is not None or len(inputs.shape) != 4
                or self.axis not in (-1, 3) or inputs.dtype != tf.float32 or self.renorm or self.synchronized
                or not (self.scale and self.center)):
            return keras_call(self, inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * (count - 1.0) / count  # the op returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    layer_class.call = call
    try:
        yield
    finally:
        layer_class.call = keras_call
