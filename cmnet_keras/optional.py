"""Optional dependencies: imported on use, with an error naming the pip extra that brings each,
and TensorFlow for the TensorFlow-only features, with an error naming the feature under another backend."""

import importlib

# Top-level module -> (the distributions that provide it, the extras of setup.py that bring them).
OPTIONAL = {
    "cv2": ("opencv-contrib-python", ("preprocess",)),
    "mediapipe": ("mediapipe", ("preprocess",)),
    "skimage": ("scikit-image", ("preprocess",)),
    "keras_tuner": ("keras-tuner", ("tuning",)),
    "tensorboard": ("tensorboard", ("tuning",)),
    "tensorflow": ("tensorflow-cpu or tensorflow[and-cuda]", ("cpu", "gpu")),
}


def require(module):
    """`importlib.import_module(module)`, or an ImportError naming the extra that installs it.

    Args:
        module: a dotted module name whose top-level package is a key of `OPTIONAL`.

    Raises:
        ImportError: `module`, or an optional package it imports, is not installed; any
            other import failure is raised unchanged.
    """
    if module.split(".")[0] not in OPTIONAL:
        raise ValueError(f"{module!r} is not an optional dependency; known: {sorted(OPTIONAL)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in OPTIONAL:
            raise
        distribution, extras = OPTIONAL[missing]
        brackets = " or ".join(f"[{extra}]" for extra in extras)
        installs = " or ".join(f'"cmnet-keras[{extra}]"' for extra in extras)
        needed_by = "" if module.split(".")[0] == missing else f" (imported by {module})"
        raise ImportError(
            f"No module named {missing!r}{needed_by}: it comes with {distribution}, in the "
            f"cmnet-keras extra {brackets}. Install it: pip install {installs} "
            f'(in a checkout: pip install -e ".[{extras[0]}]")',
            name=missing,
        ) from error


class TensorFlowOnlyError(ValueError):
    """A TensorFlow-only feature was asked for under another Keras backend."""


def tensorflow_only(feature):
    """TensorFlow for `feature` (e.g. "SavedModel export"), which runs under the TensorFlow backend only.

    Raises:
        TensorFlowOnlyError: the Keras backend is another one (a one-line message naming `feature`).
        ImportError: TensorFlow is not installed (`require`).
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise TensorFlowOnlyError(f"{feature} is TensorFlow-only: run it with KERAS_BACKEND=tensorflow "
                                  f"(the backend is {backend!r})")
    return require("tensorflow")
