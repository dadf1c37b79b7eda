"""Extend: maps each scalar intensity k(n) back to a vector of the texture width."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="cmnet_keras")
class Extend(layers.Layer):
    """A Dense(units) applied to a scalar per position: `[...] -> [..., units]`.

    Args:
        units: output width (the texture width D of the facial feature encoder).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"Extend needs units >= 1, got {units}")
        self.units = int(units)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(1, self.units), initializer="glorot_uniform", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, k):
        return ops.matmul(ops.expand_dims(k, -1), self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
