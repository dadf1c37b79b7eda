"""The CMNet model."""

from cmnet_keras.models.cmnet import CMNet, build_cmnet

__all__ = ["CMNet", "build_cmnet"]
