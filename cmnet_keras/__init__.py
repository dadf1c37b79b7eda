"""cmnet-keras: CMNet (Wei et al., AAAI 2023) for micro-expression recognition in Keras 3.

Importing the package registers every custom layer, loss and the model with
Keras, so `keras.models.load_model("model.keras")` works after `import cmnet_keras`.
"""

from cmnet_keras import console

console.configure_native_logs()  # before TensorFlow loads (with keras, below)

from cmnet_keras import layers, losses  # noqa: E402
from cmnet_keras.config import PRESETS, CMNetConfig, get_config  # noqa: E402
from cmnet_keras.models import CMNet, build_cmnet  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CMNet", "CMNetConfig", "PRESETS", "build_cmnet", "get_config", "layers", "losses", "__version__"]
