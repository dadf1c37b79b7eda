"""tf.data input pipeline over a preprocessed clip cache (TF-only module).

Yields exactly what the model takes:
`({"frames": uint8 [B, N, S, S, 3], "apex": int32 [B]}, label int32 [B])`.
Subject ids stay in the index (`read_index`) so callers split by subject (LOSO)
and pass the subset as `index`. Clips are read by TensorFlow ops only (no Python
in the parallel map): `read_file` + `decode_raw`, the byte length checked
against meta.json's shape, so a truncated file is an error naming it. A pass in
one fixed order (`make_epochs_dataset`) takes it from `batches.clip_order`: the
backend-neutral path (`data.batches`) yields the same batches.
"""

import functools

import numpy as np
import tensorflow as tf

from cmnet_keras.data import batches


def make_dataset(cache_dir, index=None, batch_size=8, shuffle=False, seed=0, repeat=False, drop_remainder=False,
                 reshuffle=True):
    """Builds a batched, prefetched tf.data.Dataset of cached clips.

    Args:
        cache_dir: folder written by `cmnet_keras.preprocess`.
        index: DataFrame subset of `cache.read_index(cache_dir)` (default: all clips).
        batch_size: clips per batch.
        shuffle: shuffle the clip order (seeded by `seed`).
        reshuffle: with `shuffle`, a new order on every pass over the dataset, TensorFlow's
            (False: the seed's one order on every pass, `batches.clip_order`, as the numpy path's).
        seed: shuffle seed.
        repeat: repeat forever.
        drop_remainder: drop a last smaller batch.
    """
    clips = batches.clip_table(cache_dir, index, batch_size)
    if shuffle and not reshuffle:
        clips = clips.take(batches.clip_order(len(clips.paths), seed))
    shape = clips.shape

    def load(path, apex, label):
        data = tf.io.read_file(path)  # a missing file: NotFoundError naming it
        length = tf.strings.length(data)
        check = tf.debugging.Assert(
            tf.equal(length, int(np.prod(shape))),
            ["Cache clip file", path, "has", length, f"bytes, expected {int(np.prod(shape))} for frames {shape}: "
             "truncated or not from this cache; rerun python -m cmnet_keras.preprocess to redo it"],
        )
        with tf.control_dependencies([check]):
            frames = tf.reshape(tf.io.decode_raw(data, tf.uint8), shape)
        return {"frames": frames, "apex": apex}, label

    dataset = tf.data.Dataset.from_tensor_slices((clips.paths, clips.apex, clips.label))
    if shuffle and reshuffle:
        dataset = dataset.shuffle(len(clips.paths), seed=seed)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # Under tf.distribute with several workers: each keeps its replicas' share of every batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_epochs_dataset(cache_dir, index, batch_size, seeds, min_batch=1):
    """Several training epochs as one finite dataset: one pass over `index` per seed, in `batches.clip_order` of its seed.

    Epoch e's clip order depends on its own seed only, so a run resumed at any
    epoch sees the same batches as an uninterrupted one, also when the dataset is
    iterated more than once: under tf.distribute, Keras's `fit` first reads one
    batch from a pass of its own (to build the model), then trains on a new pass. A last batch of an
    epoch smaller than `min_batch` (the replica count under tf.distribute, so
    that no replica gets an empty batch) is dropped: `batches.epoch_steps` counts the rest.
    """
    batches.check_epochs(seeds, batch_size, min_batch)
    passes = [make_dataset(cache_dir, index=index, batch_size=batch_size, shuffle=True, seed=s, reshuffle=False)
              for s in seeds]
    dataset = functools.reduce(tf.data.Dataset.concatenate, passes)
    if min_batch > 1:
        dataset = dataset.filter(lambda inputs, label: tf.shape(label)[0] >= min_batch)
    return dataset

