"""Command-line options shared by the training commands (`train`, `ablation`, `grid`), and their exit codes.

The parsers are built from `cmnet_keras.options` alone: Keras and TensorFlow load after parsing.
"""

import os
import sys
import traceback
import warnings

from cmnet_keras import console
from cmnet_keras.options import (CLIP_SETS, COMPOSITES, OPTIMIZERS, PRESET_NAMES, SAMPLERS, STRATEGIES,
                                 TENDENCY_NAMES)


def add_ffe_weights_argument(parser):
    """Adds `--ffe-weights` (the `ffe_weights` config field) to an `argparse.ArgumentParser`."""
    parser.add_argument("--ffe-weights", metavar="imagenet|PATH",
                        help="initial FFE weights: 'imagenet' (torchvision's ResNet-18, downloaded once), a "
                             "torchvision .pth state dict or a .weights.h5 of our FFE (default: from scratch); "
                             "needs the paper's FFE size (--preset paper)")


def add_training_arguments(parser):
    """Adds the options of one LOSO run to an `argparse.ArgumentParser`."""
    add_data_arguments(parser)
    add_config_arguments(parser)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="seed of every random draw and the data order")
    seeds.add_argument("--seeds", type=int, nargs="+", metavar="S",
                       help="one run per seed (<out>/seed<S>/), with mean ± std over the seeds")
    parser.add_argument("--folds", help="fold numbers to run, e.g. 0-12 (default: all)")
    parser.add_argument("--validation-subjects", type=int, default=0,
                        help="training subjects per fold used for validation curves (never the test subject)")
    parser.add_argument("--class-weight", choices=("balanced",),
                        help="weight each clip's L_C by scikit-learn's balanced class weights of the fold's "
                             "training labels (default: unweighted)")
    parser.add_argument("--strategy", default="none", choices=STRATEGIES, help="tf.distribute strategy")
    parser.add_argument("--mixed-precision", nargs="?", const="float16", choices=("float16", "bfloat16"),
                        help="mixed precision: float16 (the default of the bare flag; with loss scaling) or bfloat16")
    parser.add_argument("--checkpoint-every", type=int, default=5, metavar="E",
                        help="save a resumable fold checkpoint every E epochs (and after the last)")
    add_verbose_argument(parser)
    return parser


def add_data_arguments(parser, source=None):
    """Adds `--cache`, the options of a composite and `--data-dir` (the data of a run, `run_data`).

    Args:
        parser: an `argparse.ArgumentParser`.
        source: the group of `parser` that `--cache` goes in (default: `parser` itself), e.g. one exclusive
            with another source.
    """
    (source or parser).add_argument(
        "--cache", nargs="+", metavar="DIR",
        help="preprocessed cache folder (default: the embedded dataset); several: their composite "
             "(--composite), LOSO over the subjects of all")
    add_composite_arguments(parser)
    parser.add_argument("--data-dir", default="data", help="where the embedded dataset and its cache live")


def add_config_arguments(parser, lambdas=True):
    """Adds the options that override fields of the preset's CMNetConfig (`preset_config` reads them).

    Args:
        parser: an `argparse.ArgumentParser`.
        lambdas: also `--lambdas` (left out by a search that sets them).
    """
    parser.add_argument("--preset", default="demo", choices=PRESET_NAMES, help="model size preset")
    parser.add_argument("--epochs", type=int, help="epochs per fold (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="global batch size (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="initial learning rate (default: the preset's)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help="default: the preset's (paper: sgd; demo: adamw)")
    parser.add_argument("--clip-flip-rate", type=float, metavar="P",
                        help="probability of flipping a training clip left-right (default: the preset's, 0)")
    add_ffe_weights_argument(parser)
    parser.add_argument("--sampler", choices=SAMPLERS, help="negative sampler of L_ID (Table 2)")
    if lambdas:
        parser.add_argument("--lambdas", type=float, nargs=3, metavar=("L_ID", "L_WRST", "L_C"),
                            help="loss weights of eq. 10, summing to 1 (Table 3)")
    parser.add_argument("--tendency", choices=TENDENCY_NAMES,
                        help="tendency calibration: paper (the paper's L_Wrst and ICE) or calibrated (soft "
                             "Spearman + rank sum, k started in range, the ICE on the change from the onset "
                             "frame); default: the preset's")


def add_verbose_argument(parser):
    """Adds `--verbose` (Keras' progress bar mode) to an `argparse.ArgumentParser`."""
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                        help="Keras progress bar mode (0: also no progress lines of a composite's building)")


def add_composite_arguments(parser):
    """Adds the options of a composite of several caches (`cmnet_keras.data.composite`)."""
    parser.add_argument("--composite", choices=COMPOSITES,
                        help="megc2019: the MEGC 2019 composite (CASME II + SAMM + SMIC-HS, 3 classes) of the "
                             "--cache folders; the default with several caches")
    parser.add_argument("--composite-clips", choices=CLIP_SETS,
                        help="challenge: the challenge's 442 clips (default); table: the published list's 441 rows "
                             "(without SAMM 032_3_1)")
    parser.add_argument("--allow-missing-datasets", action="store_true",
                        help="run a composite on the datasets whose caches are given (default: stop, naming the rest)")


def add_cross_dataset_arguments(parser):
    """Adds `--train-cache` and `--test-cache` (a cross-dataset run) to an `argparse.ArgumentParser`."""
    parser.add_argument("--train-cache", nargs="+", metavar="DIR",
                        help="cross-dataset: caches to train on (with --test-cache; instead of --cache)")
    parser.add_argument("--test-cache", metavar="DIR",
                        help="cross-dataset: the cache to test on; all its subjects are held out (one fold)")


def config_from_args(args):
    """CMNetConfig from the options of `add_training_arguments` (also checks `--seeds`)."""
    if args.seeds:
        from cmnet_keras.training.seeds import check_seeds

        check_seeds(args.seeds)
    return preset_config(args, seed=args.seeds[0] if args.seeds else args.seed, lambdas=args.lambdas)


def preset_config(args, **fields):
    """CMNetConfig of `--preset` with the options of `add_config_arguments` and `fields`; None values unset."""
    from cmnet_keras.config import TENDENCY, get_config

    overrides = {**(TENDENCY[args.tendency] if args.tendency else {}), "epochs": args.epochs,
                 "batch_size": args.batch_size, "learning_rate": args.learning_rate, "optimizer": args.optimizer,
                 "clip_flip_rate": args.clip_flip_rate, "sampler": args.sampler, "ffe_weights": args.ffe_weights,
                 **fields}
    return get_config(args.preset, **{field: value for field, value in overrides.items() if value is not None})


def preset_label(preset, config):
    """The preset's name and the fields `config` changes in it besides the seed, e.g. "demo (clip_flip_rate=0.5)"."""
    from cmnet_keras.config import get_config

    reference = get_config(preset).to_dict()
    changed = [f"{k}={v}" for k, v in config.to_dict().items() if k != "seed" and v != reference[k]]
    return preset + (f" ({', '.join(changed)})" if changed else "")


def run_data(args, default_cache):
    """The `training.sources.RunData` of parsed options (`--cache`, the composite's, the cross-dataset ones).

    Args:
        args: parsed options of `add_training_arguments` (or `tuning.grid`'s), with `--out`; `--verbose 0`
            also keeps the building of a composite quiet.
        default_cache: called for the cache without `--cache` (the embedded dataset).
    """
    from cmnet_keras.training.sources import run_data as resolve

    return resolve(args.out, caches=args.cache, name=args.composite, clips=args.composite_clips,
                   allow_missing=args.allow_missing_datasets, train_caches=getattr(args, "train_cache", None),
                   test_cache=getattr(args, "test_cache", None), folds=args.folds, default_cache=default_cache,
                   progress=args.verbose > 0)


def run_options(args, data, command):
    """The `records.RunOptions` of parsed options, the run's `RunData` and its command line."""
    from cmnet_keras.records import RunOptions

    return RunOptions(validation_subjects=args.validation_subjects, strategy=args.strategy,
                      mixed_precision=args.mixed_precision, verbose=args.verbose,
                      checkpoint_every=args.checkpoint_every, class_weight=args.class_weight, command=command,
                      **data.loso_options())


def prepare_run(parser, args, config, command):
    """(cache, `records.RunOptions`) for parsed options and the command line; exits with code 2 on bad options
    or files (`prepare_data`)."""
    data = prepare_data(parser, args, config)
    try:
        return data.cache_dir, run_options(args, data, command)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")


def prepare_data(parser, args, config):
    """The `RunData` of parsed options (`run_data`); exits with code 2 on bad options or files.

    Also when `<out>` holds runs made with another composite, another process
    holds the cache's preprocessing lock, the `--ffe-weights` file is missing or
    refused (`pretrained.check_ffe_weights`), or the preset does not fit the cache.
    """
    from cmnet_keras.data.cache import CacheLockedError
    from cmnet_keras.data.cache_fit import check_config_fits
    from cmnet_keras.embedded_cache import ensure_embedded_cache
    from cmnet_keras.pretrained import check_ffe_weights

    try:
        check_ffe_weights(config.ffe_weights)
        data = run_data(args, lambda: ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir))
        check_config_fits(config, data.cache_dir)
        return data
    except (ValueError, OSError, CacheLockedError) as error:
        parser.exit(2, f"error: {error}\n")


def exit_on_error(main):
    """Runs a command's `main()` (which returns or exits with its code); an uncaught error is exit code 1 at once.

    Exit codes of every command: 0 done, 2 bad input (arguments, files, settings; a one-line error),
    3 done but some clips failed (named in the summary), 1 a bug (the traceback). On the console,
    native libraries' log lines are dropped and warnings are one line (`console`).

    `os._exit` does not wait for tf.data's input threads, which can keep a
    failed process alive forever. Every file of a run is written atomically, so
    nothing is lost by skipping the interpreter's shutdown.
    """
    warnings.showwarning = console.show_warning
    console.filter_native_logs()
    try:
        code = main()
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # KeyboardInterrupt too: the same threads would hold the process
        traceback.print_exc()
        sys.stdout.flush()
        console.flush()
        os._exit(1)
    sys.stdout.flush()
    console.flush()
    sys.exit(code)
