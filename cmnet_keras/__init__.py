"""cmnet-keras: CMNet (Wei et al., AAAI 2023) for micro-expression recognition in Keras 3.

Keras loads on first use of an attribute below (`cmnet_keras.CMNet`,
`get_config`, ...), so the command lines parse their options, and answer
`--help`, without it. Using any of them, or importing the package after Keras
(`import keras, cmnet_keras`), registers every custom layer, loss and the
model with Keras, so `keras.models.load_model("model.keras")` works.
"""

import importlib
import sys

from cmnet_keras import console
from cmnet_keras.version import __version__

console.configure_native_logs()  # before TensorFlow loads

# Attribute -> the module that defines it.
_LAZY = {"layers": "cmnet_keras.layers", "losses": "cmnet_keras.losses", "PRESETS": "cmnet_keras.config",
         "CMNetConfig": "cmnet_keras.config", "get_config": "cmnet_keras.config",
         "CMNet": "cmnet_keras.models", "build_cmnet": "cmnet_keras.models"}

__all__ = ["CMNet", "CMNetConfig", "PRESETS", "build_cmnet", "get_config", "layers", "losses", "__version__"]


def __getattr__(name):
    """Imports the model, layers and losses (and so Keras) on first use of one of `_LAZY`."""
    if name not in _LAZY:
        raise AttributeError(f"module 'cmnet_keras' has no attribute {name!r}")
    importlib.import_module("cmnet_keras.models")  # registers the model, its layers and losses
    module = importlib.import_module(_LAZY[name])
    return module if module.__name__ == f"cmnet_keras.{name}" else getattr(module, name)


if "keras" in sys.modules:  # Keras is loaded already: register at once, as the package always did
    importlib.import_module("cmnet_keras.models")
