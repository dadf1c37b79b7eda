"""BatchNormalization that trains through TensorFlow's fused kernel, where TensorFlow can."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="cmnet_keras")
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose TensorFlow training call is one fused op.

    Keras 3 normalises with `ops.moments` and `ops.batch_normalization`: some
    ten element-wise passes over the activations forward and backward, which at
    the demo preset cost as much as the convolutions (BENCHMARKS.md, "Profile
    of one step"). On the TensorFlow backend a training call on 4-D
    channels-last float32 inputs runs one `FusedBatchNormV3` (oneDNN's kernel
    on CPU) and its fused gradient instead: the same batch statistics (biased
    variance), outputs, gradients and moving averages up to float rounding.
    Every other call (inference, masks, float16 or bfloat16, renorm,
    synchronized, no scale or center, JAX and PyTorch) is Keras's own code, so
    a trained model predicts exactly as one built of `BatchNormalization`.

    It takes the arguments of `keras.layers.BatchNormalization`, and its config
    is that layer's. It keeps that layer's class name because Keras saves the
    layers of a list under their class names: models and checkpoints saved
    with `keras.layers.BatchNormalization` in the encoders load into it.
    """

    def _fused(self, inputs, training, mask):
        return (keras.backend.backend() == "tensorflow" and bool(training) and self.trainable and mask is None
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and not (self.renorm or self.synchronized) and self.scale and self.center)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * (count - 1.0) / count  # the op returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs
