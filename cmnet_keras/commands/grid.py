"""Grid search over the loss weights λ of Eq. 10 with KerasTuner.

Every trial is one point (λ1, λ2, λ3 = 1 - λ1 - λ2) of a grid with step
`--step` restricted to the simplex (all λ >= 0, summing to 1), trained with
LOSO on a preprocessed clip cache, optionally on a subset of the folds for
quicker searches. The objective (`--objective`) is by default nested: in each
outer fold, `--validation-subjects` of the training subjects are held out and
scored (mean accuracy over the folds); the test subject is never read, so the
λ chosen can then be tested on it without bias. `--objective loso-test` scores
on the held-out test subjects as the paper did: a choice made on the test data,
and every table says so. The paper's choice (0.07, 0.71, 0.22) is a
grid point for `--step 0.01` (5151 points; 66 for the default 0.1). A trial
costs (folds x epochs) of LOSO training: with the `demo` preset on the
embedded dataset about 10 s per fold and epoch on a 2-core CPU, so the first
command below (6 points, 2 folds, 5 epochs) takes about 10 minutes.

    python -m tuning.grid --embedded --preset demo --epochs 5 --step 0.5 \\
        --folds 0-1 --out tuning_runs/demo
    python -m tuning.grid --cache data/casme2_cache --preset paper \\
        --epochs 100 --step 0.1 --out tuning_runs/casme2

Written to `--out`: KerasTuner's project (`oracle.json`, `trial_*/`), the
search settings (`search.json`), `trials.csv` and `trials.md` (one row per
trial: λ, status, LOSO accuracy, per-fold accuracies named by the subjects
scored, error of a failed trial) and `best.json` (the best λ and its score).
The best trial is a function of the finished trials alone: the highest score;
among equal scores (to 9 decimals) the higher validation UF1, then the λ
nearest the paper's (0.07, 0.71, 0.22), then the earlier grid point; so a
rerun of a finished search rewrites the same tables.

Resume: running the same command again continues the search: finished trials
are kept, an interrupted trial is run again (its LOSO run resumes after the
last finished fold and epoch), the remaining grid points follow.
A different dataset, preset, epoch count, step, seed or fold subset for the
same `--out` is refused (pass `--overwrite` to start afresh).

Exit codes: 0 done, 1 no trial completed (or too many failed in a row, or
the chief is gone), 2 bad arguments, settings or files (`cmnet_keras.train`'s).
`--train-cache`/`--test-cache` (a cross-dataset run) are not options of the
search.

Failed trials: an exception in a trial marks it FAILED (KerasTuner's status);
the error is printed when the trial ends and shown in the tables. After
`--max-consecutive-failures` failed trials in a row (default 3) the search
stops with an error, the tables are still written.

Distributed search (KerasTuner's chief/worker mode): start the same command
with the same `--out` (a shared filesystem, or the same path on each machine)
on one chief and any number of workers. The chief only hands out grid points
and collects the scores; the workers train::

    # chief (machine A, 10.0.0.1): serves the oracle on port 8000
    KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=0.0.0.0 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x
    # workers (each with a unique id)
    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x
    KERASTUNER_TUNER_ID=tuner1 KERASTUNER_ORACLE_IP=10.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x

The chief returns once every grid point has been run and writes the tables;
workers write none. With a shared `--out` the chief's tables also hold each
trial's per-fold accuracies and time (else only the scores; the trial folders
stay on the workers). Needs `grpcio` (a keras-tuner extra) on every machine.
Workers may start before the chief: keras-tuner waits up to 60 minutes for
it. A worker whose connection the finished chief closes exits with an error
saying so.
"""

import argparse
import os
import sys

from cmnet_keras.commands import cli
from cmnet_keras.options import OBJECTIVES


def _parser():
    parser = argparse.ArgumentParser(prog="python -m tuning.grid", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--embedded", action="store_true",
                        help="the embedded real-face dataset (the default without --cache; generated and "
                             "preprocessed on first use)")
    cli.add_data_arguments(parser, source)
    cli.add_config_arguments(parser, lambdas=False)
    parser.add_argument("--step", type=float, default=0.1, help="grid step of λ1 and λ2 (default 0.1)")
    folds = parser.add_mutually_exclusive_group()
    folds.add_argument("--folds", help="fold numbers, e.g. 0-3 or 0,2,5-7 (default: all)")
    folds.add_argument("--max-folds", type=int, help="only the first N folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw and the data order")
    parser.add_argument("--objective", default="nested", choices=sorted(OBJECTIVES),
                        help="nested (default): score on validation subjects drawn from each outer fold's training "
                             "subjects; loso-test: the paper's procedure, scored on the held-out test subjects")
    parser.add_argument("--validation-subjects", type=int, default=1,
                        help="validation subjects per outer fold for the nested objective (default 1)")
    parser.add_argument("--max-trials", type=int,
                        help="total trial budget, earlier trials included (default: the whole grid)")
    parser.add_argument("--max-consecutive-failures", type=int, default=3,
                        help="stop after this many failed trials in a row (default 3)")
    parser.add_argument("--out", required=True, help="search folder, e.g. tuning_runs/NAME (rerun to continue)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing search in --out")
    cli.add_verbose_argument(parser)
    return parser


def _fold_numbers(args, data):
    from cmnet_keras.data.cache import read_index
    from cmnet_keras.data.folds import fold_subjects

    if args.max_folds is None:
        return data.folds
    if args.max_folds < 1:
        raise ValueError(f"--max-folds must be >= 1, got {args.max_folds}")
    return list(range(min(args.max_folds, len(fold_subjects(read_index(data.cache_dir))))))


def main(argv=None):
    """Runs the search; returns 0, or 1 when no trial completed or the chief is gone.

    Bad options, files or settings end the process with exit code 2 (like
    `cmnet_keras.train`); errors while training propagate (exit code 1 through
    `cmnet_keras.commands.cli.exit_on_error`).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    from cmnet_keras.data.cache import CacheLockedError

    try:  # the [tuning] extra: a one-line error naming it
        from tuning.search import OBJECTIVE, SearchOptions, is_worker, require_tensorboard, run_search
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        require_tensorboard()
        from cmnet_keras.data.cache import cache_fingerprint
        from cmnet_keras.training import config_for_cache

        config = cli.preset_config(args, seed=args.seed)
        data = cli.prepare_data(parser, args, config)
        config = config_for_cache(config, data.cache_dir)
        folds = _fold_numbers(args, data)
        settings = {"cache_fingerprint": cache_fingerprint(data.cache_dir), "preset": args.preset}
        options = SearchOptions(step=args.step, folds=folds, objective=args.objective,
                                validation_subjects=args.validation_subjects, max_trials=args.max_trials,
                                max_consecutive_failures=args.max_consecutive_failures, overwrite=args.overwrite,
                                verbose=args.verbose)
        _, best = run_search(config, data.cache_dir, args.out, options, settings=settings)
    except (ValueError, ImportError, OSError, CacheLockedError) as e:
        parser.exit(2, f"error: {e}\n")
    except RuntimeError as e:  # keras-tuner: too many failed trials in a row
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if not (is_worker() and type(e).__module__.startswith("grpc")):
            raise
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
        print(f"error: cannot reach the KerasTuner chief at {address} (search finished, or chief not started): "
              f"{getattr(e, 'details', lambda: e)()}", file=sys.stderr)
        return 1
    if best is not None:
        print(f"Best λ = {tuple(best['lambdas'])}: {OBJECTIVE} = {best[OBJECTIVE]:.4f} ({best['objective']}); "
              f"tables in {args.out}")
    elif not is_worker():
        print(f"No trial completed; see {args.out}/trials.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from cmnet_keras.commands.cli import exit_on_error

    exit_on_error(main)
