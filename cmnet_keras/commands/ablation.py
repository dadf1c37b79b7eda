"""The paper's ablations over LOSO: Table 2 (negative samplers) and Table 3 (losses).

    python -m cmnet_keras.ablation --table sampler --preset demo --out runs/table2
    python -m cmnet_keras.ablation --table losses --preset demo --out runs/table3
    python -m cmnet_keras.ablation --table tendency --preset demo --seeds 0 1 2 --out runs/tendency

Each row is a full LOSO run in `<out>/<row>/`, resumable like any run
(`cmnet_keras.training.ablation`); the table goes to `<out>/table.md` and `table.csv`.
`--train-cache A B --test-cache C` runs every row cross-dataset (as `cmnet_keras.train`).
"""

import argparse
import sys

from cmnet_keras.commands import cli
from cmnet_keras.options import TABLES


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, choices=TABLES,
                        help="sampler: Table 2; losses: Table 3; tendency: the paper's CMNet, the calibrated "
                             "tendency and the classification-only baseline, tested against the baseline")
    parser.add_argument("--renormalise", action="store_true",
                        help="Table 3: scale the remaining lambdas to sum to 1 (the paper keeps them as they are)")
    cli.add_training_arguments(parser)
    cli.add_cross_dataset_arguments(parser)
    parser.add_argument("--out", required=True, help="folder of the row runs and the table")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "cmnet_keras.ablation", *(sys.argv[1:] if argv is None else argv)]
    from cmnet_keras.distribute import StrategyError
    from cmnet_keras.files import OutputError
    from cmnet_keras.training import ConfigMismatchError, RunDirError
    from cmnet_keras.training.ablation import run_ablation, table_rows

    try:
        base = cli.config_from_args(args)
        table_rows(args.table, base)
    except ValueError as error:
        parser.error(str(error))
    cache, options = cli.prepare_run(parser, args, base, command)
    try:
        print(run_ablation(args.table, cache, base, args.out, seeds=args.seeds,
                           preset_name=cli.preset_label(args.preset, base), renormalise=args.renormalise,
                           options=options))
    except (ConfigMismatchError, RunDirError, OutputError, StrategyError) as error:
        parser.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    cli.exit_on_error(main)
