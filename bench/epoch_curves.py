"""Training and training-subject validation curves per epoch, to choose the demo's training settings.

Trains the first folds of the embedded dataset with `--validation-subjects`
training subjects held out for validation and prints, per epoch, the mean over
folds of the training loss and accuracy and of the validation loss and
accuracy. Only these are printed: the held-out test subject's results are
never shown, so no choice made from this output looks at them. `--optimizer`
and `--clip-flip-rate` change the demo preset's, to compare training settings
on the same folds; the last line is the mean validation accuracy over the last
`--last` epochs, the figure such a comparison is decided on.

Usage:
    PYTHONPATH=. python bench/epoch_curves.py --data-dir /tmp/cmnet-data --folds 2 --epochs 30
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_step import machine  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from cmnet_keras.config import OPTIMIZERS  # noqa: E402
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--folds", type=int, default=2, help="the first folds to run")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--validation-subjects", type=int, default=2)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the demo preset's")
    parser.add_argument("--clip-flip-rate", type=float, help="default: the demo preset's")
    parser.add_argument("--last", type=int, default=5, help="epochs averaged in the last line")
    args = parser.parse_args(argv)

    from cmnet_keras.embedded_cache import ensure_embedded_cache
    from cmnet_keras.training import loso
    from cmnet_keras.config import get_config
    from cmnet_keras.data.folds import loso_folds
    from cmnet_keras.records import RunOptions

    overrides = {k: v for k, v in (("optimizer", args.optimizer), ("clip_flip_rate", args.clip_flip_rate))
                 if v is not None}
    config = get_config("demo", epochs=args.epochs, **overrides)
    cache_dir = ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir)
    config = loso.config_for_cache(config, cache_dir)
    before, start = machine(), time.perf_counter()
    histories, compiled = [], {}
    with tempfile.TemporaryDirectory() as out:
        folds = loso_folds(cache_dir, batch_size=config.batch_size, seed=config.seed,
                           validation_subjects=args.validation_subjects, epochs=range(config.epochs))
        for number, fold in zip(range(args.folds), folds):
            result = loso.train_fold(fold, number, Path(out) / f"{number:02d}", cache_dir, config,
                                      RunOptions(verbose=0, checkpoint_every=args.epochs), compiled=compiled)
            histories.append(result.history)  # the training curves only
    print(f"\n{before['cpu']}; load {before['load']} -> {machine()['load']}; {args.folds} folds, "
          f"{args.validation_subjects} validation subjects, optimizer {config.optimizer}, clip_flip_rate "
          f"{config.clip_flip_rate}, {time.perf_counter() - start:.0f} s\n")
    print("| epoch | " + " | ".join(CURVES) + " |")
    print("| --: |" + " --: |" * len(CURVES))
    for epoch in range(args.epochs):
        values = [np.mean([h[key][epoch] for h in histories]) for key in CURVES]
        print(f"| {epoch + 1} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    last = [np.mean(h["val_accuracy"][-args.last:]) for h in histories]
    print(f"\nvalidation accuracy over epochs {args.epochs - args.last + 1}-{args.epochs}: "
          f"{np.mean(last):.3f} (per fold: {' '.join(f'{v:.3f}' for v in last)})")


if __name__ == "__main__":
    main()
