"""Two groups of finished LOSO runs (e.g. old and new code over seeds): mean, std and an unpaired test.

Runs of two code versions with the same seed are not paired: the code draws
other random streams, so only the groups compare. Prints, per metric, each
group's values, mean and std (ddof=1), Welch's t-test and the Mann-Whitney U
test (scipy), and the difference of the means.

Usage:
    PYTHONPATH=. python bench/compare_runs.py --a runs-old/seed0 runs-old/seed1 runs-old/seed2 \
        --b runs-new/seed0 runs-new/seed1 runs-new/seed2 [--names old new]
"""

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from cmnet_keras.records import RunResult
from cmnet_keras.training.seeds import seed_statistics

METRICS = ("pooled.uf1", "pooled.uar", "paper.accuracy", "paper.f1")


def load(run_dirs):
    """{metric: [value per run, %]} from each run's results.json (which must be complete), by `seed_statistics`."""
    results = {}
    for run in run_dirs:
        path = Path(run) / "results.json"
        results[run] = RunResult.from_json(json.loads(path.read_text()))
        if not results[run].complete:
            raise SystemExit(f"{path}: the run is not complete")
    statistics = seed_statistics(results)
    return {key: [100.0 * v for v in statistics[key]["values"]] for key in METRICS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", required=True, help="run directories of group A")
    parser.add_argument("--b", nargs="+", required=True, help="run directories of group B")
    parser.add_argument("--names", nargs=2, default=("A", "B"))
    args = parser.parse_args()
    a, b = load(args.a), load(args.b)
    name_a, name_b = args.names
    print(f"| metric (%) | {name_a} | {name_b} | {name_b} - {name_a} | Welch p | Mann-Whitney p |")
    print("| --- | --- | --- | --: | --: | --: |")
    for key in a:
        x, y = np.array(a[key]), np.array(b[key])
        welch = stats.ttest_ind(y, x, equal_var=False).pvalue
        mann_whitney = stats.mannwhitneyu(y, x).pvalue
        cells = [f"{', '.join(f'{v:.2f}' for v in z)} ({z.mean():.2f} ± {z.std(ddof=1):.2f})" for z in (x, y)]
        print(f"| {key} | {cells[0]} | {cells[1]} | {y.mean() - x.mean():+.2f} | {welch:.2f} | {mann_whitney:.2f} |")


if __name__ == "__main__":
    main()
