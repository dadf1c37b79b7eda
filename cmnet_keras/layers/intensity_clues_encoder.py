"""Intensity clues encoder (ICE): a small CNN giving one intensity feature z per frame."""

import keras
from keras import layers

from cmnet_keras.layers.facial_feature_encoder import (
    batch_normalization,
    build_sequence,
    call_sequence,
    fold_frames,
    unfold_frames,
)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class IntensityCluesEncoder(layers.Layer):
    """Stages of 3x3 stride-2 conv-BN-ReLU, global average pool, Dense(output_dim).

    Frames `[..., H, W, 3]` are folded into the batch axis and encoded in one
    pass (the model feeds the N frames and their 2N augmented views together).

    Args:
        filters: conv filters per stage.
        output_dim: width of the intensity feature z.
        bn_momentum: momentum of the BatchNormalization moving statistics.
        sync_batchnorm: BatchNormalization over all tf.distribute replicas (TensorFlow only).
    """

    def __init__(self, filters=(32, 64, 128, 128), output_dim=128, bn_momentum=0.9, sync_batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        filters = tuple(int(f) for f in filters)
        if not filters or min(filters) < 1 or output_dim < 1:
            raise ValueError(f"IntensityCluesEncoder needs filters >= 1 and output_dim >= 1, got filters={filters}, output_dim={output_dim}")
        self.filters = filters
        self.output_dim = int(output_dim)
        self.bn_momentum = float(bn_momentum)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.stages = []
        for f in filters:
            self.stages += [
                layers.Conv2D(f, 3, 2, padding="same", use_bias=False, kernel_initializer="he_normal"),
                batch_normalization(self.bn_momentum, self.sync_batchnorm),
                layers.ReLU(),
            ]
        self.pool = layers.GlobalAveragePooling2D()
        self.project = layers.Dense(self.output_dim)

    def build(self, input_shape):
        build_sequence([*self.stages, self.pool, self.project], input_shape)

    def call(self, frames, training=False):
        x, inner = fold_frames(frames)
        return unfold_frames(call_sequence([*self.stages, self.pool, self.project], x, training), inner)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-3], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "filters": list(self.filters), "output_dim": self.output_dim,
                "bn_momentum": self.bn_momentum, "sync_batchnorm": self.sync_batchnorm}
