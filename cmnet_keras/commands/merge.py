"""Merges the per-fold results of LOSO runs split across machines into the final table.

    # machine A                                   # machine B
    python -m cmnet_keras.train --folds 0-12 \\     python -m cmnet_keras.train --folds 13-25 \\
        --out runs/casme2_a ...                       --out runs/casme2_b ...
    # anywhere, with both run directories copied over:
    python -m cmnet_keras.merge runs/casme2_a runs/casme2_b --out runs/casme2

The runs must have equal settings (config, seed, the same cache content,
validation subjects, precision); otherwise the merge is refused, naming the
differing fields. A fold present in several runs must have equal predictions
(`cmnet_keras.training.merge`).

Exit codes: 0 done, 2 bad input (a one-line error naming the run or field), 1 a bug (the traceback).
"""

import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of `cmnet_keras.train`")
    parser.add_argument("--out", required=True, help="folder for the merged results")
    args = parser.parse_args(argv)
    from cmnet_keras import reports
    from cmnet_keras.training.merge import merge_runs
    from cmnet_keras.training.run_dir import ConfigMismatchError

    try:
        results = merge_runs(args.runs, args.out)
    except (ConfigMismatchError, OSError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(reports.format_summary(results))
    if not results.complete:
        print(f"{len(results.missing_subjects)} subjects missing: {results.missing_subjects}")


if __name__ == "__main__":
    from cmnet_keras.commands.cli import exit_on_error

    exit_on_error(main)
