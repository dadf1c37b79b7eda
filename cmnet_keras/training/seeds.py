"""Several seeds of one LOSO setting: mean and spread per metric, paired tests between settings.

A LOSO run on a few hundred clips moves by points with the seed alone; a claim
about a method's effect needs several seeds and a paired test. `run_seeds`
runs one LOSO run per seed into `<out>/seed<S>/` (each resumable) and writes
`<out>/seeds.json` and `<out>/seeds.md`; `paired_test` compares the per-(seed,
fold) scores of two such runs with the Wilcoxon signed-rank test.
"""

from pathlib import Path

import numpy as np

from cmnet_keras import files, markdown, metrics
from cmnet_keras.records import RunOptions
from cmnet_keras.training.loso import run_loso

SUMMARY_METRICS = (("paper", "accuracy"), ("paper", "f1"), ("paper", "f1_all"), ("pooled", "accuracy"),
                   ("pooled", "uf1"), ("pooled", "uar"), ("tendency", "rho"), ("tendency", "abs_z"),
                   ("truth", "rho_true_k"), ("truth", "amplitude_k"), ("truth", "rho_true_flow"),
                   ("truth", "amplitude_flow"))
# Per-fold scores tested in pairs; rho_true_k only where the data has a true intensity.
PAIRED_METRICS = ("accuracy", "f1", "rho_true_k")


def seed_dir(out, seed):
    """The run directory of one seed."""
    return Path(out) / f"seed{seed}"


def check_seeds(seeds):
    """The seeds as a list of distinct ints; raises ValueError naming the bad value."""
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(int(s) != s or s < 0 for s in seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    return [int(s) for s in seeds]


def seed_statistics(results_by_seed):
    """{"<protocol>.<metric>": {"mean", "std", "values"}} over the seeds' `records.RunResult`s.

    std is the sample standard deviation (ddof=1) of the defined values, 0 for a single one.
    """
    statistics = {}
    for protocol, metric in SUMMARY_METRICS:
        values = [getattr(r, protocol)[metric] for r in results_by_seed.values() if metric in getattr(r, protocol)]
        if values:
            defined = np.asarray(values, np.float64)[~np.isnan(values)]
            std = float(np.std(defined, ddof=1)) if defined.size > 1 else 0.0
            statistics[f"{protocol}.{metric}"] = {"mean": float(np.nanmean(values)), "std": std,
                                                  "values": [float(v) for v in values]}
    return statistics


def fold_scores(results_by_seed):
    """{(seed, fold): {metric: score}} for the `PAIRED_METRICS` a fold has (a number, not NaN)."""
    rows = {(seed, fold.fold): fold.row(results.truth_fields)
            for seed, results in results_by_seed.items() for fold in results.folds}
    return {key: {m: row[m] for m in PAIRED_METRICS if row.get(m) is not None and not np.isnan(row[m])}
            for key, row in rows.items()}


def paired_test(results_by_seed, reference_by_seed):
    """Wilcoxon signed-rank tests over the common (seed, fold) pairs, per metric of `PAIRED_METRICS`
    (a metric over the pairs where both settings have it; left out where none has)."""
    scores, reference = fold_scores(results_by_seed), fold_scores(reference_by_seed)
    pairs = sorted(set(scores) & set(reference))
    if not pairs:
        raise ValueError("paired_test: the two settings share no (seed, fold) pair")
    tests = {}
    for m in PAIRED_METRICS:
        common = [p for p in pairs if m in scores[p] and m in reference[p]]
        if common:
            tests[m] = metrics.paired_wilcoxon([scores[p][m] for p in common], [reference[p][m] for p in common])
    return tests


def format_statistics(statistics):
    """Markdown table: metric | mean ± sample std (%) | per seed; ρ and |Z| as plain numbers."""
    rows = []
    for name, value in statistics.items():
        scale = 1 if name.startswith(("tendency.", "truth.")) else 100
        rows.append([name, f"{scale * value['mean']:.2f} ± {scale * value['std']:.2f}",
                     " ".join(f"{scale * v:.2f}" for v in value["values"])])
    return markdown.table(["metric", "mean ± std (ddof 1)", "per seed"], rows, right=["mean ± std (ddof 1)"])


def run_seeds(cache_dir, config, out, seeds, options=RunOptions()):
    """Runs LOSO once per seed into `<out>/seed<S>` and writes `seeds.json` and `seeds.md`.

    Args:
        cache_dir: the preprocessed cache.
        config: CMNetConfig; its seed is replaced by each of `seeds`.
        out: folder of the seed runs.
        seeds: distinct non-negative ints.
        options: the `records.RunOptions` of every run.

    Returns:
        {seed: the `records.RunResult` of `run_loso`}.
    """
    results = {}
    for seed in check_seeds(seeds):
        print(f"=== seed {seed} ===", flush=True)
        results[seed] = run_loso(cache_dir, config.replace(seed=seed), seed_dir(out, seed), options)
    statistics = seed_statistics(results)
    files.write_json(Path(out) / "seeds.json", {"seeds": list(results), "statistics": statistics})
    title = (f"LOSO over seeds {list(results)}: paper protocol (F1 = classes present; f1_all = all C classes), "
             "pooled protocol, tendency of k (Spearman rho, rank-sum |Z|), and where clips have a true intensity "
             "rho_true and the amplitude agreement of k and of optical flow\n\n")
    files.write_bytes(Path(out) / "seeds.md", (title + format_statistics(statistics)).encode())
    return results
