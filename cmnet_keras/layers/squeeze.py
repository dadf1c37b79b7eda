"""Squeeze: maps each intensity feature z(n) to a scalar intensity k(n)."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="cmnet_keras")
class Squeeze(layers.Layer):
    """A Dense(1) over the last axis, dropped: `[..., D] -> [...]`.

    Args:
        bias_init: initial bias (0 = Keras's default). With a "zeros" kernel, k
            starts at this value on every frame; e.g. (1 + epsilon) / 2 starts k
            inside the prototype's range [epsilon, 1].
        kernel_initializer: a Keras initializer (name or object) for the kernel.
    """

    def __init__(self, bias_init=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.bias_init = float(bias_init)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 1), initializer=self.kernel_initializer, name="kernel")
        self.bias = self.add_weight(
            shape=(1,), initializer=keras.initializers.Constant(self.bias_init), name="bias"
        )

    def call(self, z):
        return ops.squeeze(ops.matmul(z, self.kernel) + self.bias, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1]

    def get_config(self):
        return {
            **super().get_config(),
            "bias_init": self.bias_init,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
