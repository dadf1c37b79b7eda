"""Random draws that differ between tf.distribute replicas: each replica its own stream.

A layer's `keras.random.SeedGenerator` is mirrored under `tf.distribute`, so every
replica would draw the same numbers (the same augmentations, negatives and prototype
noise for different clips). These draws take one sample per replica from the shared
generator and keep the replica's own. Outside a multi-replica `tf.distribute` context,
and under JAX and PyTorch (whose data-parallel step sees the whole batch), they are the
plain `keras.random` draws.
"""

import keras
from keras import ops


def replica_context():
    """(replica id, replica count) of the current tf.distribute replica; (0, 1) elsewhere."""
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def uniform(shape, seed, minval=0.0, maxval=1.0, dtype=None):
    """`keras.random.uniform(shape, ...)`, a different draw on each replica."""
    replica, count = replica_context()
    if count == 1:
        return keras.random.uniform(shape, minval, maxval, dtype=dtype, seed=seed)
    return ops.take(keras.random.uniform((count, *shape), minval, maxval, dtype=dtype, seed=seed), replica, axis=0)


def normal(shape, seed, dtype=None):
    """`keras.random.normal(shape, ...)`, a different draw on each replica."""
    replica, count = replica_context()
    if count == 1:
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    return ops.take(keras.random.normal((count, *shape), dtype=dtype, seed=seed), replica, axis=0)


def categorical(logits, num_samples, seed):
    """`keras.random.categorical(logits, num_samples)` [R, num_samples], a different draw on each replica."""
    replica, count = replica_context()
    draws = keras.random.categorical(logits, num_samples * count, seed=seed)
    if count == 1:
        return draws
    return ops.take(ops.reshape(draws, (-1, count, num_samples)), replica, axis=1)
