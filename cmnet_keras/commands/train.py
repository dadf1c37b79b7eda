"""LOSO training and evaluation of CMNet: the main job.

    python -m cmnet_keras.train --preset demo --out runs/demo
    python -m cmnet_keras.train --cache caches/casme2 --preset paper --epochs 100 --out runs/casme2
    python -m cmnet_keras.train --cache caches/casme2 caches/samm_all caches/smic --out runs/megc2019
    python -m cmnet_keras.train --train-cache caches/casme2 caches/smic --test-cache caches/samm_all --out runs/to_samm

Without `--cache` the embedded real-face dataset is generated and preprocessed
on first use (`<data-dir>/embedded`, `<data-dir>/embedded_cache`). Several caches
make the MEGC 2019 composite (`cmnet_keras.data.composite`, in `<out>/composite`):
LOSO over the subjects of all, UF1 and UAR overall and per dataset. A
cross-dataset run trains on the --train-cache datasets and tests once on every
clip of the --test-cache one (their composite's clips). Rerunning the
same command resumes the run (`cmnet_keras.training.loso`). `--seeds 0 1 2` runs
one LOSO run per seed and writes mean ± std (`cmnet_keras.training.seeds`); the
final model (`--final-model`) uses the first seed. Exit codes: 0 done,
1 an error while training (the process exits, also while input threads run),
2 bad arguments, settings or files.
"""

import argparse
import sys

from cmnet_keras.commands import cli


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.train", description=__doc__.split("\n\n")[0])
    cli.add_training_arguments(parser)
    cli.add_cross_dataset_arguments(parser)
    parser.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    parser.add_argument("--final-model", action="store_true",
                        help="after LOSO, also train on every subject and save <out>/model.keras for deployment")
    args = parser.parse_args(argv)
    if args.final_model and args.test_cache:
        parser.error("--final-model trains on every clip: not with --test-cache (a cross-dataset run)")
    command = [sys.executable, "-m", "cmnet_keras.train", *(sys.argv[1:] if argv is None else argv)]
    try:
        config = cli.config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    from cmnet_keras.distribute import StrategyError, is_chief
    from cmnet_keras.files import OutputError
    from cmnet_keras.training import ConfigMismatchError, RunDirError, run_loso, train_final_model
    from cmnet_keras.training.seeds import run_seeds

    cache, options = cli.prepare_run(parser, args, config, command)
    try:
        if args.seeds:
            run_seeds(cache, config, args.out, args.seeds, options)
        else:
            run_loso(cache, config, args.out, options)
        if args.final_model and is_chief(args.strategy):  # one device, the chief alone
            train_final_model(cache, config, args.out, verbose=args.verbose)
    except (ConfigMismatchError, RunDirError, OutputError, StrategyError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    cli.exit_on_error(main)
