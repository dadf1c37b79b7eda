"""Backend-neutral input path over a preprocessed clip cache: a `keras.utils.PyDataset` read with numpy.

The input of training and evaluation under JAX and PyTorch (`data.inputs` picks
it; tf.data, `data.pipeline`, stays for TensorFlow and tf.distribute). It yields
what `data.pipeline` yields, batch for batch for the same seed: both take their
clip order from `clip_orders`. Clips are read in the thread that asks for a batch
(one worker, no multiprocessing: no Python runs in parallel reader threads), each
a ~200 KB raw uint8 file (`cache.read_frames`: its length checked against
meta.json's shape, a missing or truncated file named in the error).
"""

import dataclasses
import os
import pathlib

import keras
import numpy as np

from cmnet_keras.data import cache


@dataclasses.dataclass(frozen=True)
class ClipTable:
    """The clips of a cache index to read: absolute `paths`, int32 `apex` and `label`, the frames' `shape`."""

    paths: np.ndarray
    apex: np.ndarray
    label: np.ndarray
    shape: tuple

    def take(self, rows):
        """The table's clips at positions `rows`, in that order."""
        rows = np.asarray(rows, np.int64)
        return ClipTable(self.paths[rows], self.apex[rows], self.label[rows], self.shape)

    def read(self, rows):
        """`({"frames": uint8 [B, N, S, S, 3], "apex": int32 [B]}, label int32 [B])` of the clips at `rows`."""
        frames = np.stack([cache.read_frames(self.paths[r], self.shape) for r in rows])
        return {"frames": frames, "apex": self.apex[rows]}, self.label[rows]


def clip_table(cache_dir, index=None, batch_size=1):
    """The `ClipTable` of `index` (default: every clip of the cache), its rows checked.

    Raises:
        ValueError: `batch_size` < 1, an empty index, missing columns or an apex outside the clip.
        cache.CacheError: the index lists a file of the old (.npz) cache format.
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
    paths = np.array([os.path.join(os.path.abspath(cache_dir), str(f)) for f in index["file"]])
    apex = np.asarray(index["apex"], np.int32)
    label = np.asarray(index["label"], np.int32)
    bad = np.flatnonzero((apex < 0) | (apex >= num_frames))
    if len(bad):
        raise ValueError(f"apex outside 0..{num_frames - 1} for {index['file'].iloc[bad[0]]}: {apex[bad[0]]}")
    legacy = [p for p in paths if not p.endswith(cache.FRAMES_SUFFIX)]
    if legacy:
        raise cache.CacheError(f"index of {cache_dir} lists {legacy[0]}, not a {cache.FRAMES_SUFFIX} clip file; "
                               "rerun python -m cmnet_keras.preprocess with the same --out to rebuild the cache")
    return ClipTable(paths, apex, label, (num_frames, size, size, 3))


def clip_orders(num_clips, seed):
    """The clip orders of successive shuffled passes for `seed` (an endless iterator of permutations).

    Both input paths take their order from here: a pass in one fixed order is the first one.
    """
    rng = np.random.default_rng(int(seed))
    while True:
        yield rng.permutation(int(num_clips))


def clip_order(num_clips, seed):
    """The order of a pass shuffled by `seed`: the first of `clip_orders`."""
    return next(clip_orders(num_clips, seed))


def check_epochs(seeds, batch_size, min_batch):
    """Raises ValueError unless there are epoch `seeds` and 1 <= `min_batch` <= `batch_size` (`make_epochs_dataset`)."""
    if not seeds:
        raise ValueError("seeds is empty: no epochs to build")
    if not 1 <= min_batch <= batch_size:
        raise ValueError(f"min_batch must be in 1..batch_size={batch_size}, got {min_batch}")


def epoch_steps(num_clips, batch_size, min_batch=1):
    """Batches per epoch of `make_epochs_dataset`: the full ones and a last one of at least `min_batch` clips."""
    full, rest = divmod(int(num_clips), int(batch_size))
    return full + (1 if rest >= max(min_batch, 1) else 0)


class ClipBatches(keras.utils.PyDataset):
    """Batches of a `ClipTable` over passes in given orders; a last batch of a pass under `min_batch` is dropped.

    `next_pass`, if given, returns the order of the pass that follows each
    epoch's end (a new order on every pass); otherwise every pass over the
    dataset yields the same batches.
    """

    def __init__(self, clips, passes, batch_size, min_batch=1, next_pass=None):
        super().__init__()  # one worker, no multiprocessing: batches are read in the thread that asks
        self._clips, self._batch_size, self._min_batch, self._next_pass = clips, batch_size, min_batch, next_pass
        self._batches = self._split(passes)

    def _split(self, passes):
        size = self._batch_size
        return [rows for order in passes for rows in (order[i:i + size] for i in range(0, len(order), size))
                if len(rows) >= self._min_batch]

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        return self._clips.read(self._batches[index])

    def on_epoch_end(self):
        if self._next_pass is not None:
            self._batches = self._split([self._next_pass()])


def make_dataset(cache_dir, index=None, batch_size=8, shuffle=False, seed=0, drop_remainder=False, reshuffle=True):
    """A `ClipBatches` of cached clips: `data.pipeline.make_dataset` without TensorFlow (and without `repeat`).

    Args:
        cache_dir: folder written by `cmnet_keras.preprocess`.
        index: DataFrame subset of `cache.read_index(cache_dir)` (default: all clips).
        batch_size: clips per batch.
        shuffle: shuffle the clip order (`clip_orders` of `seed`).
        reshuffle: with `shuffle`, a new order after every epoch (False: the seed's one order on every pass).
        seed: shuffle seed.
        drop_remainder: drop a last smaller batch.
    """
    clips = clip_table(cache_dir, index, batch_size)
    count = len(clips.paths)
    orders = clip_orders(count, seed) if shuffle else None
    first = np.arange(count) if orders is None else next(orders)
    return ClipBatches(clips, [first], batch_size, min_batch=batch_size if drop_remainder else 1,
                       next_pass=(lambda: next(orders)) if shuffle and reshuffle else None)


def make_epochs_dataset(cache_dir, index, batch_size, seeds, min_batch=1):
    """Several training epochs as one finite dataset: one pass over `index` per seed, in `clip_order` of its seed.

    As `data.pipeline.make_epochs_dataset`: epoch e's order depends on its own
    seed only (a resumed run sees the batches of an uninterrupted one); a last
    batch of an epoch smaller than `min_batch` is dropped (`epoch_steps` counts the rest).
    """
    check_epochs(seeds, batch_size, min_batch)
    clips = clip_table(cache_dir, index, batch_size)
    return ClipBatches(clips, [clip_order(len(clips.paths), s) for s in seeds], batch_size, min_batch)
