"""Squeeze: maps each intensity feature z(n) to a scalar intensity k(n)."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="cmnet_keras")
class Squeeze(layers.Layer):
    """A Dense(1) over the last axis, dropped: `[..., D] -> [...]`."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 1), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

    def call(self, z):
        return ops.squeeze(ops.matmul(z, self.kernel) + self.bias, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1]
