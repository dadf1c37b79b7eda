"""CMNet layers, one concern per module; all written with `keras.ops` (the batch norm adds a TF-only fused kernel)."""

from cmnet_keras.layers.clip_flip import ClipFlip
from cmnet_keras.layers.extend import Extend
from cmnet_keras.layers.facial_feature_encoder import BasicBlock, FacialFeatureEncoder
from cmnet_keras.layers.intensity_clues_encoder import IntensityCluesEncoder
from cmnet_keras.layers.intensity_prototype import IntensityPrototype
from cmnet_keras.layers.negative_sampler import NegativeSampler, gather_negatives
from cmnet_keras.layers.squeeze import Squeeze
from cmnet_keras.layers.view_augmentation import ViewAugmentation

__all__ = [
    "BasicBlock",
    "ClipFlip",
    "Extend",
    "FacialFeatureEncoder",
    "IntensityCluesEncoder",
    "IntensityPrototype",
    "NegativeSampler",
    "Squeeze",
    "ViewAugmentation",
    "gather_negatives",
]
