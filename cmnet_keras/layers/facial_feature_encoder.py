"""Facial feature encoder (FFE): a ResNet-18 trunk applied to every frame.

With `torchvision=True` the layout is torchvision's ResNet-18, layer for layer,
so that its ImageNet weights mean the same here (`cmnet_keras.pretrained`):
symmetric zero padding before every strided conv and the max pool (Keras's
"same" pads only after the last row and column when the stride is 2),
BatchNormalization epsilon 1e-5, and ImageNet mean/std input normalisation.
Trained from scratch it keeps Keras's "same" padding and epsilon (1.5-8% faster
at the demo size, and the demo's measured results).
"""

import keras
from keras import layers, ops

from cmnet_keras.layers import fused_batch_normalization

# torchvision's ResNet normalisation: BatchNorm2d's default epsilon, ImageNet RGB mean and std of [0, 1] pixels.
TORCH_BN_EPSILON = 1e-5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def batch_normalization(momentum, synchronized, epsilon=1e-3):
    """The encoders' (fused) `BatchNormalization`; `synchronized`: statistics over all tf.distribute replicas.

    Ignored under JAX and PyTorch, which have no such option (a JAX data-parallel step sees the global batch).
    `momentum` m equals PyTorch's BatchNorm momentum 1 - m.
    """
    synchronized = synchronized and keras.backend.backend() == "tensorflow"
    return fused_batch_normalization.BatchNormalization(momentum=momentum, epsilon=epsilon, synchronized=synchronized)


def bn_epsilon(torchvision):
    """BatchNormalization epsilon: PyTorch's 1e-5 for the torchvision layout, else Keras's 1e-3."""
    return TORCH_BN_EPSILON if torchvision else 1e-3


def torch_conv(filters, kernel_size, strides=1, torchvision=True):
    """A bias-free conv as `[ZeroPadding2D, Conv2D]` or `[Conv2D]`.

    `torchvision`: PyTorch's `Conv2d(padding=kernel_size // 2)`; with stride 1
    Keras's "same" pads the same way, and a 1x1 conv pads nothing. Else Keras's "same".
    """
    padded = torchvision and strides > 1 and kernel_size > 1
    conv = layers.Conv2D(filters, kernel_size, strides, padding="valid" if padded else "same", use_bias=False,
                         kernel_initializer="he_normal")
    return [layers.ZeroPadding2D(kernel_size // 2), conv] if padded else [conv]


@keras.saving.register_keras_serializable(package="cmnet_keras")
class BasicBlock(layers.Layer):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1 projection shortcut.

    Args:
        filters: output channels.
        strides: stride of the first conv (and of the projection).
        bn_momentum: momentum of the BatchNormalization moving statistics.
        sync_batchnorm: BatchNormalization over all tf.distribute replicas (TensorFlow only).
        torchvision: torchvision's padding and BatchNorm epsilon (see the module docstring).
    """

    def __init__(self, filters, strides=1, bn_momentum=0.9, sync_batchnorm=False, torchvision=False, **kwargs):
        super().__init__(**kwargs)
        if filters < 1 or strides < 1:
            raise ValueError(f"BasicBlock needs filters, strides >= 1, got {filters}, {strides}")
        self.filters = int(filters)
        self.strides = int(strides)
        self.bn_momentum = float(bn_momentum)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.torchvision = bool(torchvision)
        self.conv1 = torch_conv(filters, 3, self.strides, self.torchvision)  # [ZeroPadding2D,] Conv2D
        self.bn1 = self._batch_normalization()
        (self.conv2,) = torch_conv(filters, 3)
        self.bn2 = self._batch_normalization()
        self.project = None
        self.project_bn = None

    def _batch_normalization(self):
        return batch_normalization(self.bn_momentum, self.sync_batchnorm, bn_epsilon(self.torchvision))

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            (self.project,) = torch_conv(self.filters, 1, self.strides)
            self.project_bn = self._batch_normalization()
            self.project.build(input_shape)
            self.project_bn.build(self.project.compute_output_shape(input_shape))
        shape = input_shape
        for layer in self.conv1:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.bn1.build(shape)
        self.conv2.build(shape)
        self.bn2.build(shape)

    def call(self, x, training=False):
        y = ops.relu(self.bn1(call_sequence(self.conv1, x, training), training=training))
        y = self.bn2(self.conv2(y), training=training)
        shortcut = x if self.project is None else self.project_bn(self.project(x), training=training)
        return ops.relu(y + shortcut)

    def compute_output_shape(self, input_shape):
        for layer in self.conv1:
            input_shape = layer.compute_output_shape(input_shape)
        return input_shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "bn_momentum": self.bn_momentum, "sync_batchnorm": self.sync_batchnorm,
                "torchvision": self.torchvision}


def check_frames_shape(shape):
    """Raises ValueError unless `shape` is `[B, ..., H, W, C]` with static middle axes."""
    shape = tuple(shape)
    if len(shape) < 4:
        raise ValueError(f"Expected frames of rank >= 4 [..., H, W, C], got shape {shape}")
    if any(d is None for d in shape[1:-3]):
        raise ValueError(f"Axes between batch and H, W, C must be static, got shape {shape}")


def fold_frames(frames):
    """Folds every leading axis of `[..., H, W, C]` into one batch axis.

    Returns the folded `[S, H, W, C]` tensor and the static leading shape after
    the first axis, for `unfold_frames`.
    """
    check_frames_shape(frames.shape)
    return ops.reshape(frames, (-1, *frames.shape[-3:])), tuple(frames.shape[1:-3])


def unfold_frames(features, inner):
    """Inverse of `fold_frames` for per-frame feature vectors `[S, D]`."""
    return ops.reshape(features, (-1, *inner, features.shape[-1]))


def build_sequence(sequence, input_shape):
    """Builds `sequence` layer after layer on folded frames of `input_shape` `[..., H, W, C]`."""
    check_frames_shape(input_shape)
    shape = (None, *tuple(input_shape)[-3:])
    for layer in sequence:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)


def call_sequence(sequence, x, training):
    """Applies `sequence` to `x`, passing `training` to the layers that take it."""
    for layer in sequence:
        x = layer(x, training=training) if isinstance(layer, (layers.BatchNormalization, BasicBlock)) else layer(x)
    return x


@keras.saving.register_keras_serializable(package="cmnet_keras")
class FacialFeatureEncoder(layers.Layer):
    """ResNet-18 (He et al. 2016) without its classifier: one texture vector per frame.

    Frames of shape `[..., H, W, 3]`, RGB in [0, 1], are folded into the batch
    axis (B*T), encoded in one pass and unfolded to `[..., D]` with D = 8 * width.

    Args:
        width: stem width (64 in ResNet-18); stages use width, 2w, 4w, 8w.
        blocks: basic blocks per stage ((2, 2, 2, 2) in ResNet-18).
        bn_momentum: momentum of the BatchNormalization moving statistics.
        sync_batchnorm: BatchNormalization over all tf.distribute replicas (TensorFlow only).
        torchvision: torchvision's layout, and the ImageNet mean and std subtracted
            and divided per channel first, as its pretrained ResNets expect.
    """

    def __init__(self, width=64, blocks=(2, 2, 2, 2), bn_momentum=0.9, sync_batchnorm=False,
                 torchvision=False, **kwargs):
        super().__init__(**kwargs)
        blocks = tuple(int(b) for b in blocks)
        if width < 1 or not blocks or min(blocks) < 1:
            raise ValueError(f"FacialFeatureEncoder needs width >= 1 and blocks >= 1, got width={width}, blocks={blocks}")
        self.width = int(width)
        self.blocks = blocks
        self.bn_momentum = float(bn_momentum)
        self.sync_batchnorm = bool(sync_batchnorm)
        self.torchvision = bool(torchvision)
        self.output_dim = self.width * 2 ** (len(blocks) - 1)
        self.stem = [
            *torch_conv(self.width, 7, 2, self.torchvision),
            batch_normalization(self.bn_momentum, self.sync_batchnorm, bn_epsilon(self.torchvision)),
            layers.ReLU(),
            # Zeros pad like PyTorch's -inf here: the inputs are >= 0 after the ReLU.
            *([layers.ZeroPadding2D(1), layers.MaxPooling2D(3, 2)] if self.torchvision
              else [layers.MaxPooling2D(3, 2, padding="same")]),
        ]
        self.stages = [
            BasicBlock(self.width * 2**stage, 2 if stage > 0 and i == 0 else 1, self.bn_momentum, self.sync_batchnorm,
                       self.torchvision)
            for stage, count in enumerate(blocks)
            for i in range(count)
        ]
        self.pool = layers.GlobalAveragePooling2D()

    def build(self, input_shape):
        build_sequence([*self.stem, *self.stages, self.pool], input_shape)

    def call(self, frames, training=False):
        x, inner = fold_frames(frames)
        if self.torchvision:
            mean, std = (ops.cast(ops.convert_to_tensor(v), x.dtype) for v in (IMAGENET_MEAN, IMAGENET_STD))
            x = (x - mean) / std
        return unfold_frames(call_sequence([*self.stem, *self.stages, self.pool], x, training), inner)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-3], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "blocks": list(self.blocks),
                "bn_momentum": self.bn_momentum, "sync_batchnorm": self.sync_batchnorm,
                "torchvision": self.torchvision}
