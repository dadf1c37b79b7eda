"""The input path of the Keras backend: every reader of clips for training and evaluation goes through here.

TensorFlow reads through tf.data (`data.pipeline`: parallel reads, tf.distribute's
sharding); JAX and PyTorch through a numpy `PyDataset` (`data.batches`), so that
they never import TensorFlow. Both yield the same batches in the same order for
the same seed, except `make_dataset(shuffle=True)`'s new order on every pass.
"""

import importlib

import keras

from cmnet_keras.data.batches import epoch_steps  # noqa: F401  (the callers' one import of the input path)


def input_module():
    """`data.pipeline` under the TensorFlow backend, else `data.batches` (imported on first use)."""
    name = "pipeline" if keras.backend.backend() == "tensorflow" else "batches"
    return importlib.import_module(f"cmnet_keras.data.{name}")


def make_dataset(cache_dir, index=None, batch_size=8, shuffle=False, seed=0, drop_remainder=False, reshuffle=True):
    """Batches of cached clips from the backend's input path (see `data.pipeline.make_dataset`)."""
    return input_module().make_dataset(cache_dir, index=index, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                       drop_remainder=drop_remainder, reshuffle=reshuffle)


def make_epochs_dataset(cache_dir, index, batch_size, seeds, min_batch=1):
    """Several epochs in a row from the backend's input path (see `data.pipeline.make_epochs_dataset`)."""
    return input_module().make_epochs_dataset(cache_dir, index, batch_size, seeds, min_batch)
