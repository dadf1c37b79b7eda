"""Training-time view augmentation of the intensity clues encoder (SimCLR-style)."""

import math

import keras
from keras import layers, ops

from cmnet_keras.layers.facial_feature_encoder import fold_frames

_GRAY = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _gray(x):
    return ops.sum(x * ops.convert_to_tensor(_GRAY, x.dtype), axis=-1, keepdims=True)


def _blend(x, other, factor):
    """Per-sample `other + factor * (x - other)` clipped to [0, 1]; factor [S]."""
    return ops.clip(other + factor[:, None, None, None] * (x - other), 0.0, 1.0)


def _hue_matrices(turns):
    """Per-sample [S, 3, 3] RGB matrices rotating chroma in YIQ by `turns` of a circle."""
    to_yiq = ops.convert_to_tensor(_RGB_TO_YIQ, turns.dtype)
    angle = 2.0 * math.pi * turns
    cos, sin = ops.cos(angle), ops.sin(angle)
    one, zero = ops.ones_like(angle), ops.zeros_like(angle)
    rotation = ops.stack(
        [ops.stack([one, zero, zero], -1), ops.stack([zero, cos, -sin], -1), ops.stack([zero, sin, cos], -1)],
        axis=1,
    )
    matrix = ops.einsum("ij,sjk,kl->sil", ops.inv(to_yiq), rotation, to_yiq)
    return ops.transpose(matrix, (0, 2, 1))


@keras.saving.register_keras_serializable(package="cmnet_keras")
class ViewAugmentation(layers.Layer):
    """ColorJitter, RandomGrayscale and GaussianBlur with per-image random parameters.

    SimCLR's recipe (Chen et al. 2020) with strength s: with probability
    `jitter_rate` brightness, contrast, saturation factors in [1 - 0.8s, 1 + 0.8s]
    and a hue shift in [-0.2s, 0.2s] turns (a YIQ chroma rotation), in that order;
    grayscale with probability `grayscale_rate`; with probability `blur_rate` a
    Gaussian blur (kernel 10% of the image side, reflect padding) with sigma
    uniform in `blur_sigma`. Images are `[..., H, W, 3]` in [0, 1]; identity
    unless `training`.

    Args:
        jitter_strength: s, the colour jitter strength.
        grayscale_rate: probability of grayscale.
        blur_sigma: (min, max) blur sigma in pixels.
        jitter_rate: probability of colour jitter.
        blur_rate: probability of blur.
        seed: seed of the layer's random stream.
    """

    def __init__(self, jitter_strength=0.5, grayscale_rate=0.2, blur_sigma=(0.1, 2.0),
                 jitter_rate=0.8, blur_rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("grayscale_rate", grayscale_rate), ("jitter_rate", jitter_rate), ("blur_rate", blur_rate)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ViewAugmentation {name} must be in [0, 1], got {value}")
        if jitter_strength < 0:
            raise ValueError(f"ViewAugmentation jitter_strength must be >= 0, got {jitter_strength}")
        blur_sigma = tuple(float(v) for v in blur_sigma)
        if len(blur_sigma) != 2 or not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(f"ViewAugmentation blur_sigma must be (min, max) with 0 < min <= max, got {blur_sigma}")
        self.jitter_strength = float(jitter_strength)
        self.grayscale_rate = float(grayscale_rate)
        self.blur_sigma = blur_sigma
        self.jitter_rate = float(jitter_rate)
        self.blur_rate = float(blur_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        x, _ = fold_frames(images)
        x = ops.cast(x, "float32")  # augment in float32 also under a mixed-precision policy
        x = self._color_jitter(x)
        x = self._grayscale(x)
        x = self._blur(x)
        return ops.cast(ops.reshape(x, ops.shape(images)), images.dtype)

    def _uniform(self, count, low, high):
        return keras.random.uniform((count,), low, high, seed=self.seed_generator)

    def _chance(self, count, rate):
        return ops.cast(keras.random.uniform((count,), seed=self.seed_generator) < rate, "float32")

    def _color_jitter(self, x):
        count, s = ops.shape(x)[0], self.jitter_strength
        apply = self._chance(count, self.jitter_rate)

        def factor(spread):
            return 1.0 + apply * (self._uniform(count, max(0.0, 1.0 - spread), 1.0 + spread) - 1.0)

        x = ops.clip(x * factor(0.8 * s)[:, None, None, None], 0.0, 1.0)
        x = _blend(x, ops.mean(_gray(x), axis=(1, 2, 3), keepdims=True), factor(0.8 * s))
        x = _blend(x, _gray(x), factor(0.8 * s))
        turns = apply * self._uniform(count, -0.2 * s, 0.2 * s)
        return ops.clip(ops.einsum("shwc,scd->shwd", x, _hue_matrices(turns)), 0.0, 1.0)

    def _grayscale(self, x):
        apply = self._chance(ops.shape(x)[0], self.grayscale_rate)
        return _blend(x, _gray(x), 1.0 - apply)

    def _blur(self, x):
        count, height, width, channels = ops.shape(x)
        size = max(3, int(0.1 * min(x.shape[1], x.shape[2])) // 2 * 2 + 1)
        sigma = self._uniform(count, *self.blur_sigma)
        taps = ops.arange(size, dtype="float32") - (size - 1) / 2
        kernel = ops.exp(-0.5 * (taps[None, :] / sigma[:, None]) ** 2)
        kernel = kernel / ops.sum(kernel, axis=1, keepdims=True)
        identity = ops.cast(ops.equal(taps, 0.0), "float32")[None, :]
        apply = self._chance(count, self.blur_rate)[:, None]
        kernel = apply * kernel + (1.0 - apply) * identity
        # Samples go to the channel axis: one depthwise conv blurs each with its own kernel.
        kernel = ops.reshape(ops.repeat(kernel, channels, axis=0), (-1, size))  # [S*C, K]
        y = ops.reshape(ops.transpose(x, (1, 2, 0, 3)), (1, height, width, -1))
        pad = size // 2
        y = ops.pad(y, ((0, 0), (pad, pad), (0, 0), (0, 0)), mode="reflect")
        y = ops.depthwise_conv(y, ops.transpose(kernel)[:, None, :, None], padding="valid")
        y = ops.pad(y, ((0, 0), (0, 0), (pad, pad), (0, 0)), mode="reflect")
        y = ops.depthwise_conv(y, ops.transpose(kernel)[None, :, :, None], padding="valid")
        return ops.transpose(ops.reshape(y, (height, width, -1, channels)), (2, 0, 1, 3))

    def get_config(self):
        return {
            **super().get_config(),
            "jitter_strength": self.jitter_strength,
            "grayscale_rate": self.grayscale_rate,
            "blur_sigma": list(self.blur_sigma),
            "jitter_rate": self.jitter_rate,
            "blur_rate": self.blur_rate,
            "seed": self.seed,
        }
