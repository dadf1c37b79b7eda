"""Merging the per-fold results of LOSO runs split across machines into the final tables."""

from pathlib import Path

from cmnet_keras import files, reports
from cmnet_keras.training.run_dir import CONFIG_FILE, check_settings, data_notes, expected_folds, read_settings


def merge_runs(run_dirs, out):
    """Writes the final results of the finished folds of `run_dirs` into `out`.

    The runs must have equal settings (config, seed, cache content, validation
    subjects, precision), else `ConfigMismatchError` names the differing fields;
    a fold present in several runs must have equal predictions.

    Returns:
        the `records.RunResult` (see `reports.summarize_run`).
    """
    if not run_dirs:
        raise ValueError("merge needs at least one run directory")
    settings = read_settings(run_dirs[0])
    for run_dir in run_dirs[1:]:
        check_settings(read_settings(run_dir), settings, f"{run_dir} was run with other settings than "
                       f"{run_dirs[0]}; refusing to merge.", labels=(str(run_dir), str(run_dirs[0])))
    folds, origin = {}, {}
    for run_dir in run_dirs:
        for result in reports.load_fold_results(run_dir):
            number = result.fold
            if number in folds and folds[number].predictions != result.predictions:
                raise ValueError(
                    f"fold {number} ({result.subject}) differs between {origin[number]} and {run_dir}"
                )
            folds.setdefault(number, result)
            origin.setdefault(number, run_dir)
    if not folds:
        raise ValueError(f"no finished folds in {[str(d) for d in run_dirs]}")
    out = Path(out)
    files.write_json(out / CONFIG_FILE, {"settings": settings, "merged_from": [str(d) for d in run_dirs]})
    ordered = [folds[n] for n in sorted(folds)]
    results = reports.summarize_run(ordered, settings["config"]["class_names"], expected_folds(settings),
                                    data_notes(settings))
    reports.write_summary(out, results)
    return results
