"""Per-fold and per-epoch overhead of the real LOSO training loop on the embedded dataset (demo preset).

Runs `train_fold` (the code `./run_demo.sh` runs) on the first folds for a few
epochs and times, from Keras callbacks: model build and fit set-up until the
first step, the first step (tracing), the steps, the gaps between epochs, the
checkpoint saves, and prediction plus result files after training. The second
fold reuses the first fold's compiled model, as a run does.

Usage:
    PYTHONPATH=. python bench/fit_overhead.py --data-dir /tmp/cmnet-data      # generates the dataset on first use
    PYTHONPATH=. python bench/fit_overhead.py --data-dir /tmp/cmnet-data --patch gray_by_slices \
        --python-seeds-only
"""

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_step import PATCHES, cpu_seconds, machine, median, patches  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed_checkpoint_class(base, events):
    """`base` (the loop's EpochCheckpoint) that also appends (event, time) to `events`."""

    class Timed(base):
        def on_train_begin(self, logs=None):
            events.append(("train_begin", time.perf_counter()))

        def on_train_batch_begin(self, batch, logs=None):
            events.append(("batch_begin", time.perf_counter()))

        def on_train_batch_end(self, batch, logs=None):
            events.append(("batch_end", time.perf_counter()))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", time.perf_counter()))
            super().on_epoch_end(epoch, logs)
            events.append(("epoch_saved", time.perf_counter()))

    return Timed


@contextlib.contextmanager
def python_seeds_only():
    """Prototype for the fold loop: `keras.utils.set_random_seed` seeds Python and NumPy only.

    The real one also calls `tf.random.set_seed`, which clears TF's kernel cache
    (`TFE_ContextClearCaches`), so the reused train and predict functions are
    instantiated again every fold. Initial weights stay the same (Keras
    initializers draw their seeds from Python's `random`); the tf.data shuffle
    orders change, since they mix in TF's global seed.
    """
    import keras

    original = keras.utils.set_random_seed

    def set_random_seed(seed):
        random.seed(seed)
        np.random.seed(seed)

    keras.utils.set_random_seed = set_random_seed
    try:
        yield
    finally:
        keras.utils.set_random_seed = original


def summarise(events, start, end):
    """Seconds of each phase of one `train_fold` call from its callback events."""
    begins = [t for name, t in events if name == "batch_begin"]
    steps = [b - a for (n1, a), (n2, b) in zip(events, events[1:]) if n1 == "batch_begin" and n2 == "batch_end"]
    gaps = [b - a for (n1, a), (n2, b) in zip(events, events[1:]) if n1 == "epoch_saved" and n2 == "batch_begin"]
    saves = [b - a for (n1, a), (n2, b) in zip(events, events[1:]) if n1 == "epoch_end" and n2 == "epoch_saved"]
    train_begin = next(t for name, t in events if name == "train_begin")
    last = [t for name, t in events if name == "epoch_saved"][-1]
    return {
        "build_to_fit_s": train_begin - start,
        "fit_to_first_step_s": begins[0] - train_begin,
        "first_step_s": steps[0],
        "step_median_s": median(steps[1:]),
        "steps": len(steps),
        "epoch_gap_median_s": median(gaps) if gaps else 0.0,
        "epoch_end_median_s": median(saves),
        "epoch_end_max_s": max(saves),
        "after_training_s": end - last,
        "fold_s": end - start,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data",
                        help="where the embedded dataset and its cache are (made if absent)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2, help="the first folds to run")
    parser.add_argument("--checkpoint-every", type=int, default=2)
    parser.add_argument("--patch", nargs="*", default=[], choices=list(PATCHES),
                        help="train under these patches (bench/profile_step.py PATCHES)")
    parser.add_argument("--python-seeds-only", action="store_true",
                        help="folds seed Python and NumPy only, not TF (`python_seeds_only`)")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.folds < 1:
        parser.error(f"need epochs >= 2 and folds >= 1, got {args.epochs}, {args.folds}")

    from cmnet_keras.embedded_cache import ensure_embedded_cache
    from cmnet_keras.training import loso, run_dir
    from cmnet_keras.config import get_config
    from cmnet_keras.data.folds import loso_folds
    from cmnet_keras.records import RunOptions

    config = get_config("demo", epochs=args.epochs)
    cache_dir = ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir)
    config = loso.config_for_cache(config, cache_dir)
    before = machine()
    events = []
    run_dir.EpochCheckpoint = timed_checkpoint_class(run_dir.EpochCheckpoint, events)
    rows, compiled = [], {}
    seeds = python_seeds_only() if args.python_seeds_only else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as out, patches(args.patch), seeds:
        folds = loso_folds(cache_dir, batch_size=config.batch_size, seed=config.seed, epochs=range(config.epochs))
        for number, fold in zip(range(args.folds), folds):
            events.clear()
            start, cpu = time.perf_counter(), cpu_seconds()
            loso.train_fold(fold, number, Path(out) / f"{number:02d}", cache_dir, config,
                             RunOptions(verbose=0, checkpoint_every=args.checkpoint_every), compiled=compiled)
            rows.append({**summarise(events, start, time.perf_counter()), "cpu_s": cpu_seconds() - cpu})
    print(f"\n{before['cpu']}, {before['cores']} cores, avx512f={before['avx512f']}; load {before['load']} -> "
          f"{machine()['load']}; demo preset, {args.epochs} epochs, checkpoint every {args.checkpoint_every}, "
          f"patches {args.patch}, Python seeds only {args.python_seeds_only}\n")
    keys = list(rows[0])
    print("| fold | " + " | ".join(keys) + " |")
    print("| --- |" + " --: |" * len(keys))
    for number, row in enumerate(rows):
        print(f"| {number} | " + " | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k])
                                           for k in keys) + " |")


if __name__ == "__main__":
    main()
