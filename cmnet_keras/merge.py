"""Merges the per-fold results of LOSO runs split across machines into the final table.

    # machine A                                   # machine B
    python -m cmnet_keras.train --folds 0-12 \\     python -m cmnet_keras.train --folds 13-25 \\
        --out runs/casme2_a ...                       --out runs/casme2_b ...
    # anywhere, with both run directories copied over:
    python -m cmnet_keras.merge runs/casme2_a runs/casme2_b --out runs/casme2

The runs must have equal settings (config, seed, the same cache content,
validation subjects, precision); otherwise the merge is refused, naming the
differing fields. A fold present in several runs must have equal predictions.
"""

import argparse
import json
from pathlib import Path

from cmnet_keras import reports
from cmnet_keras.train import CONFIG_FILE, ConfigMismatchError, check_settings


def read_run_settings(run_dir):
    """The settings recorded in a run directory's config.json."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: no {CONFIG_FILE}")
    return json.loads(path.read_text())["settings"]


def merge_runs(run_dirs, out):
    """Writes the final results of the finished folds of `run_dirs` into `out`.

    Returns:
        the results dict (see `reports.write_summary`).
    """
    if not run_dirs:
        raise ValueError("merge needs at least one run directory")
    settings = read_run_settings(run_dirs[0])
    for run_dir in run_dirs[1:]:
        check_settings(read_run_settings(run_dir), settings, f"{run_dir} was run with other settings than "
                       f"{run_dirs[0]}; refusing to merge.", labels=(str(run_dir), str(run_dirs[0])))
    folds, origin = {}, {}
    for run_dir in run_dirs:
        for result in reports.load_fold_results(run_dir):
            number = result["fold"]
            if number in folds and folds[number]["predictions"] != result["predictions"]:
                raise ValueError(
                    f"fold {number} ({result['subject']}) differs between {origin[number]} and {run_dir}"
                )
            folds.setdefault(number, result)
            origin.setdefault(number, run_dir)
    if not folds:
        raise ValueError(f"no finished folds in {[str(d) for d in run_dirs]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reports.write_json(out / CONFIG_FILE, {"settings": settings, "merged_from": [str(d) for d in run_dirs]})
    ordered = [folds[n] for n in sorted(folds)]
    return reports.write_summary(out, ordered, settings["config"]["class_names"], settings["subjects"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories of `cmnet_keras.train`")
    parser.add_argument("--out", required=True, help="folder for the merged results")
    args = parser.parse_args(argv)
    try:
        results = merge_runs(args.runs, args.out)
    except (ConfigMismatchError, FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(reports.format_summary(results))
    if not results["complete"]:
        print(f"{len(results['missing_subjects'])} subjects missing: {results['missing_subjects']}")


if __name__ == "__main__":
    main()
