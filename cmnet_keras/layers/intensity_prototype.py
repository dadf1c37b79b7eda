"""Intensity tendency prototype (paper eqs. 2-4)."""

import math

import numpy as np
import keras
from keras import ops

from cmnet_keras.layers import replica_random


def onset_apex_moments(frames, apex, epsilon):
    """Mean and unit std of the On-A segment (frames before the apex), Eq. 2.

    With 0-based frame i and N1 = apex frames before the apex:
    mean = eps + i (1 - eps) / N1, std = (1 - eps) / (3 N1) (times eta_n later).
    N1 = 0 gives finite placeholder values; the caller masks them out.

    Args:
        frames: [N] float frame indices 0..N-1.
        apex: [B, 1] float apex index.
        epsilon: intensity at onset and offset.
    """
    n1 = ops.maximum(apex, 1.0)
    mean = epsilon + frames * (1.0 - epsilon) / n1
    return mean, (1.0 - epsilon) / (3.0 * n1)


def apex_offset_moments(frames, apex, num_frames, epsilon):
    """Mean and unit std of the A-Off segment (frames after the apex), Eq. 3.

    With N2 = N - 1 - apex: mean = 1 - (i - apex) (1 - eps) / N2,
    std = (1 - eps) / (3 N2). N2 = 0 gives finite placeholders (masked by the caller).
    """
    n2 = ops.maximum(num_frames - 1.0 - apex, 1.0)
    mean = 1.0 - (frames - apex) * (1.0 - epsilon) / n2
    return mean, (1.0 - epsilon) / (3.0 * n2)


def apex_moments(apex, num_frames, epsilon):
    """Mean and unit std at the apex, Eq. 4.

    mean = 1, std = min((1 - eps) / (3 N1), (1 - eps) / (3 N2)) over the
    segments that exist (N1 = 0 or N2 = 0 drops that segment's term).
    """
    n1 = apex
    n2 = num_frames - 1.0 - apex
    longest = ops.maximum(n1, n2)  # the min std belongs to the longer segment
    std = (1.0 - epsilon) / (3.0 * ops.maximum(longest, 1.0))
    return ops.ones_like(apex), std


def _as_numpy_if_host(x):
    """Python/numpy values become numpy arrays (checkable); tensors pass through."""
    return np.asarray(x) if isinstance(x, (list, tuple, int, np.integer, np.ndarray)) else x


@keras.saving.register_keras_serializable(package="cmnet_keras")
class IntensityPrototype(keras.layers.Layer):
    """Per-frame Gaussian intensity prototype with a learnable eta (eqs. 2-4).

    Rises from mean eps at the onset (frame 0) to 1 at the apex and falls back
    to eps at the offset (frame N - 1); std = (1 - eps) / (3 N1 or 3 N2) * eta_n
    with eta = sigmoid(raw) in (0, 1), learnable.

    Args:
        num_frames: N, >= 2.
        epsilon: onset/offset intensity, in (0, 1).
        eta_init: initial eta for every frame, in (0, 1).
        seed: int or None, seeds the reparameterised samples.

    Call args:
        apex: [B] int, 0-based apex index in [0, N - 1].

    Returns:
        q = mean + std * normal, [B, N] (gradients reach eta); under
        tf.distribute each replica draws its own noise (`replica_random`).
    """

    def __init__(self, num_frames=16, epsilon=0.2, eta_init=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(num_frames) != num_frames or num_frames < 2:
            raise ValueError(f"num_frames must be an integer >= 2, got {num_frames!r}")
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
        if not 0.0 < eta_init < 1.0:
            raise ValueError(f"eta_init must be in (0, 1), got {eta_init!r}")
        self.num_frames = int(num_frames)
        self.epsilon = epsilon
        self.eta_init = eta_init
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Created here (its shape is known): the layer may first run inside a traced train step.
        self.eta_logit = self.add_weight(
            name="eta_logit",
            shape=(self.num_frames,),
            initializer=keras.initializers.Constant(math.log(eta_init / (1.0 - eta_init))),
        )
        self.built = True

    @property
    def eta(self):
        """eta_n in (0, 1), [N]."""
        return ops.sigmoid(self.eta_logit)

    def _check_apex(self, apex):
        if len(apex.shape) != 1:
            raise ValueError(f"apex must be [B] (one index per clip), got shape {tuple(apex.shape)}")
        if isinstance(apex, np.ndarray):
            bad = apex[(apex < 0) | (apex > self.num_frames - 1)]
            if bad.size:
                raise ValueError(
                    f"apex must be in [0, {self.num_frames - 1}] (num_frames={self.num_frames}), "
                    f"got {bad.tolist()}"
                )

    def prototype_moments(self, apex):
        """Per-frame mean and std of the prototype, eqs. 2-4.

        Args:
            apex: [B] int, 0-based apex index.

        Returns:
            (mean, std), each [B, N].
        """
        apex = _as_numpy_if_host(apex)
        self._check_apex(apex)
        dtype = self.compute_dtype
        apex = ops.cast(ops.reshape(apex, (-1, 1)), dtype)  # [B, 1]
        frames = ops.cast(ops.arange(self.num_frames), dtype)[None, :]  # [1, N]
        n = float(self.num_frames)
        rise_mean, rise_std = onset_apex_moments(frames, apex, self.epsilon)
        fall_mean, fall_std = apex_offset_moments(frames, apex, n, self.epsilon)
        peak_mean, peak_std = apex_moments(apex, n, self.epsilon)
        before, after = frames < apex, frames > apex
        mean = ops.where(before, rise_mean, ops.where(after, fall_mean, peak_mean))
        std = ops.where(before, rise_std, ops.where(after, fall_std, peak_std))
        return mean, std * ops.cast(self.eta, dtype)[None, :]

    def __call__(self, apex, *args, **kwargs):
        # Checked before Keras turns numpy input into tensors.
        apex = _as_numpy_if_host(apex)
        self._check_apex(apex)
        return super().__call__(apex, *args, **kwargs)

    def call(self, apex):
        mean, std = self.prototype_moments(apex)
        noise = replica_random.normal(ops.shape(mean), self.seed_generator, dtype=mean.dtype)
        return mean + std * noise

    def compute_output_spec(self, apex):
        return keras.KerasTensor((apex.shape[0], self.num_frames), dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "num_frames": self.num_frames,
            "epsilon": self.epsilon,
            "eta_init": self.eta_init,
            "seed": self.seed,
        }
