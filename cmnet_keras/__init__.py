"""cmnet-keras: CMNet (Wei et al., AAAI 2023) for micro-expression recognition in Keras 3."""

from cmnet_keras.config import PRESETS, CMNetConfig, get_config

__version__ = "0.1.0"

__all__ = ["CMNetConfig", "PRESETS", "get_config", "__version__"]
