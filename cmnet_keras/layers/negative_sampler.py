"""Negative sampler of the intensity distillation loss (paper Fig. 3)."""

import keras
from keras import ops

from cmnet_keras.layers import replica_random
from cmnet_keras.options import SAMPLERS



def check_sampler(mode):
    """Raises ValueError unless `mode` is one of `SAMPLERS`."""
    if mode not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {mode!r}")


def other_frames(num_frames):
    """[N, N-1] int32 table: row n lists the frames other than n, in order."""
    slots = ops.arange(num_frames - 1, dtype="int32")
    anchors = ops.arange(num_frames, dtype="int32")[:, None]
    return slots[None, :] + ops.cast(slots[None, :] >= anchors, "int32")


def gather_negatives(z, indices):
    """Gathers negative features: z [B, N, D], indices [B, N, M] -> [B, N, M, D].

    A one-hot matmul, so gradients flow to `z` on every backend.
    """
    one_hot = ops.one_hot(indices, ops.shape(z)[1], dtype=z.dtype)  # [B, N, M, N]
    return ops.einsum("bnmk,bkd->bnmd", one_hot, z)


@keras.saving.register_keras_serializable(package="cmnet_keras")
class NegativeSampler(keras.layers.Layer):
    """Picks M negatives among the other frames of each anchor frame.

    Modes (paper Fig. 3): "deterministic" = all N - 1 other frames (M must be
    N - 1); "random" = M uniform draws with replacement from the other frames;
    "probabilistic" = M draws from softmax(cos(z_n, z_j) / tau) over the other
    frames j. The anchor is never picked. Indices are discrete: no gradient.
    Under tf.distribute each replica draws its own (`replica_random`).

    Args:
        mode: one of `SAMPLERS`.
        num_negatives: M.
        tau: softmax temperature of the probabilistic mode, > 0.
        seed: int or None, seeds the draws.

    Call args:
        z: [B, N, D] per-frame features.

    Returns:
        int32 indices [B, N, M] into the frame axis of `z`.
    """

    def __init__(self, mode="probabilistic", num_negatives=15, tau=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_sampler(mode)
        if int(num_negatives) != num_negatives or num_negatives < 1:
            raise ValueError(f"num_negatives must be an integer >= 1, got {num_negatives!r}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        self.mode = mode
        self.num_negatives = int(num_negatives)
        self.tau = tau
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _check_frames(self, num_frames):
        if num_frames is None:
            raise ValueError("NegativeSampler needs a static frame axis, got z of shape [B, None, D]")
        if num_frames < 2:
            raise ValueError(f"NegativeSampler needs at least 2 frames, got N={num_frames}")
        if self.mode == "deterministic" and self.num_negatives != num_frames - 1:
            raise ValueError(
                f"deterministic sampling takes all N - 1 = {num_frames - 1} other frames, "
                f"got num_negatives={self.num_negatives}"
            )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"NegativeSampler expects z of shape [B, N, D], got {tuple(input_shape)}")
        self._check_frames(input_shape[1])

    def call(self, z):
        z = ops.stop_gradient(z)
        batch, num_frames = ops.shape(z)[0], z.shape[1]
        others = ops.broadcast_to(other_frames(num_frames)[None], (batch, num_frames, num_frames - 1))
        if self.mode == "deterministic":
            return others
        if self.mode == "random":
            logits = ops.zeros((batch * num_frames, num_frames - 1), dtype=z.dtype)
        else:
            unit = ops.normalize(z, axis=-1)
            cosine = ops.einsum("bnd,bkd->bnk", unit, unit)  # [B, N, N]
            logits = ops.reshape(ops.take_along_axis(cosine, others, axis=2) / self.tau, (-1, num_frames - 1))
        slots = replica_random.categorical(logits, self.num_negatives, self.seed_generator)
        slots = ops.reshape(slots, (batch, num_frames, self.num_negatives))
        return ops.take_along_axis(others, slots, axis=2)

    def compute_output_spec(self, z):
        return keras.KerasTensor((z.shape[0], z.shape[1], self.num_negatives), dtype="int32")

    def get_config(self):
        return {
            **super().get_config(),
            "mode": self.mode,
            "num_negatives": self.num_negatives,
            "tau": self.tau,
            "seed": self.seed,
        }
