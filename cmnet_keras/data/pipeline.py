"""tf.data input pipeline over a preprocessed clip cache (TF-only module).

Yields exactly what the model takes:
`({"frames": uint8 [B, N, S, S, 3], "apex": int32 [B]}, label int32 [B])`.
Subject ids stay in the index (`read_index`) so callers split by subject (LOSO)
and pass the subset as `index`. Clips are read by TensorFlow ops only (no Python
in the parallel map): `read_file` + `decode_raw`, the byte length checked
against meta.json's shape, so a truncated file is an error naming it.
"""

import functools
import os
import pathlib

import numpy as np
import tensorflow as tf

from cmnet_keras.data import cache


def make_dataset(cache_dir, index=None, batch_size=8, shuffle=False, seed=0, repeat=False, drop_remainder=False,
                 reshuffle=True):
    """Builds a batched, prefetched tf.data.Dataset of cached clips.

    Args:
        cache_dir: folder written by `cmnet_keras.preprocess`.
        index: DataFrame subset of `cache.read_index(cache_dir)` (default: all clips).
        batch_size: clips per batch.
        shuffle: shuffle the clip order (seeded by `seed`).
        reshuffle: with `shuffle`, a new order on every pass over the dataset (False: the
            seed's one order on every pass).
        seed: shuffle seed.
        repeat: repeat forever.
        drop_remainder: drop a last smaller batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cache_dir = pathlib.Path(cache_dir)
    meta = cache.read_meta(cache_dir)
    index = cache.read_index(cache_dir) if index is None else index
    if len(index) == 0:
        raise ValueError(f"Empty index: no clips to read from {cache_dir}")
    missing = [c for c in ("file", "apex", "label") if c not in index.columns]
    if missing:
        raise ValueError(f"index lacks columns {missing}")
    num_frames, size = int(meta["num_frames"]), int(meta["image_size"])
    shape = (num_frames, size, size, 3)
    paths = [os.path.join(os.path.abspath(cache_dir), str(f)) for f in index["file"]]
    apex = np.asarray(index["apex"], np.int32)
    label = np.asarray(index["label"], np.int32)
    bad = np.flatnonzero((apex < 0) | (apex >= num_frames))
    if len(bad):
        raise ValueError(f"apex outside 0..{num_frames - 1} for {index['file'].iloc[bad[0]]}: {apex[bad[0]]}")
    legacy = [p for p in paths if not p.endswith(cache.FRAMES_SUFFIX)]
    if legacy:
        raise cache.CacheError(f"index of {cache_dir} lists {legacy[0]}, not a {cache.FRAMES_SUFFIX} clip file; "
                               "rerun python -m cmnet_keras.preprocess with the same --out to rebuild the cache")

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

    dataset = tf.data.Dataset.from_tensor_slices((paths, apex, label))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=reshuffle)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    # Under tf.distribute with several workers: each keeps its replicas' share of every batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def make_epochs_dataset(cache_dir, index, batch_size, seeds, min_batch=1):
    """Several training epochs as one finite dataset: one pass over `index` per seed, each shuffled by its seed.

    Epoch e's clip order depends on its own seed only, so a run resumed at any
    epoch sees the same batches as an uninterrupted one, also when the dataset is
    iterated more than once: under tf.distribute, Keras's `fit` first reads one
    batch from a pass of its own (to build the model), then trains on a new pass. A last batch of an
    epoch smaller than `min_batch` (the replica count under tf.distribute, so
    that no replica gets an empty batch) is dropped: `epoch_steps` counts the rest.
    """
    if not seeds:
        raise ValueError("seeds is empty: no epochs to build")
    if not 1 <= min_batch <= batch_size:
        raise ValueError(f"min_batch must be in 1..batch_size={batch_size}, got {min_batch}")
    passes = [make_dataset(cache_dir, index=index, batch_size=batch_size, shuffle=True, seed=s, reshuffle=False)
              for s in seeds]
    dataset = functools.reduce(tf.data.Dataset.concatenate, passes)
    if min_batch > 1:
        dataset = dataset.filter(lambda inputs, label: tf.shape(label)[0] >= min_batch)
    return dataset


def epoch_steps(num_clips, batch_size, min_batch=1):
    """Batches per epoch of `make_epochs_dataset`: the full ones and a last one of at least `min_batch` clips."""
    full, rest = divmod(int(num_clips), int(batch_size))
    return full + (1 if rest >= max(min_batch, 1) else 0)
