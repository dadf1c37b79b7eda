"""The paper's ablations over LOSO: Table 2 (negative samplers) and Table 3 (losses), and the
tendency table (what tendency calibration does to recognition).

Each row is a full LOSO run per seed (`run_seeds`) in `<out>/<row>/seed<S>/`,
resumable like any run; the table is written in the paper's format (Acc /
F1-score %, paper protocol) with the pooled protocol and the tendency of k
beside it, mean ± std over the seeds, each row tested against the full model
(Wilcoxon signed-rank over the (seed, fold) pairs), to `<out>/table.md` and
`<out>/table.csv`.

Table 3 turns a loss off with lambda = 0 and, as the paper does, keeps the
other weights: L_C (0, 0, 0.22); L_C + L_Wrst (0, 0.71, 0.22); L_C + L_ID
(0.07, 0, 0.22); all three (0.07, 0.71, 0.22) (`lambda_ablation`: they need not
sum to 1). `renormalise` scales them to sum to 1 instead: (0, 0, 1),
(0, 0.7634, 0.2366), (0.2414, 0, 0.7586).

The tendency table runs the paper's CMNet (`config.TENDENCY["paper"]`), the
calibrated variant (`TENDENCY["calibrated"]`) and the classification-only
baseline lambda = (0, 0, 1), each row tested against the baseline.
"""

from pathlib import Path

from cmnet_keras import files, markdown
from cmnet_keras.config import SAMPLERS, TENDENCY
from cmnet_keras.options import TABLES
from cmnet_keras.records import RunOptions
from cmnet_keras.training.seeds import PAIRED_METRICS, check_seeds, paired_test, run_seeds, seed_statistics

REFERENCE_ROWS = {"losses": "lc_id_wrst", "tendency": "baseline"}  # Table 2's: the base config's sampler


def sampler_rows():
    """Table 2: (row name, folder, config changes)."""
    return [(name.capitalize(), name, {"sampler": name}) for name in SAMPLERS]


def loss_rows(lambdas, renormalise=False):
    """Table 3: (row name, folder, config changes); a removed loss has lambda 0.

    As the paper runs it ("the classifier along with its weight coefficient is
    retained") the other weights stay as they are, so they no longer sum to 1
    (`lambda_ablation`); with `renormalise` they are scaled to sum to 1.
    """
    l_id, l_wrst, l_c = lambdas
    if l_c <= 0:
        raise ValueError(f"the losses table keeps L_C: its lambda must be > 0, got lambdas {tuple(lambdas)}")

    def kept(*weights):
        if renormalise:
            return {"lambdas": tuple(w / sum(weights) for w in weights)}
        return {"lambdas": weights, "lambda_ablation": abs(sum(weights) - 1.0) > 1e-6}

    return [
        ("L_C", "lc", kept(0.0, 0.0, l_c)),
        ("L_C + L_Wrst", "lc_wrst", kept(0.0, l_wrst, l_c)),
        ("L_C + L_ID", "lc_id", kept(l_id, 0.0, l_c)),
        ("L_C + L_ID + L_Wrst", "lc_id_wrst", kept(l_id, l_wrst, l_c)),
    ]


def tendency_rows():
    """The tendency table: (row name, folder, config changes); the baseline trains L_C alone."""
    return [("CMNet (paper's L_Wrst)", "paper", dict(TENDENCY["paper"])),
            ("baseline, lambda (0, 0, 1)", "baseline", {**TENDENCY["paper"], "lambdas": (0.0, 0.0, 1.0)}),
            ("CMNet, calibrated tendency", "calibrated", dict(TENDENCY["calibrated"]))]


def table_rows(table, base, renormalise=False):
    """The rows of `table` (`TABLES`) for the base config (`loss_rows` for `renormalise`)."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    if table == "tendency":
        return tendency_rows()
    return sampler_rows() if table == "sampler" else loss_rows(base.lambdas, renormalise)


def reference_folder(table, base):
    """The row the other rows are tested against: the full model's (the baseline's in the tendency table)."""
    return REFERENCE_ROWS.get(table, base.sampler)


def _cell(statistics, name, scale=100):
    value = statistics.get(name)
    return "" if value is None else f"{scale * value['mean']:.2f} ± {scale * value['std']:.2f}"


def _p_cell(test):
    return "" if test is None else ("n/a" if test["p"] != test["p"] else f"{test['p']:.3f}")


def format_table(title, header, rows):
    """Markdown table in the paper's layout (Acc | F1-score) with the pooled protocol, the tendency
    of k, mean ± std over the seeds, and the paired test of each row against the full model; where
    the data has a true intensity, also k's rho_true, amplitude agreement, optical flow's rho_true and
    the paired test of rho_true."""
    truth = any("truth.rho_true_k" in row["statistics"] for row in rows)
    truth_columns = ["rho_true", "amplitude agreement", "optical flow rho_true"] if truth else []
    columns = [header, "Acc", "F1-score", "F1 (all classes)", "pooled Acc", "UF1", "UAR", "rho", "abs Z",
               *truth_columns, "p Acc", "p F1", *(["p rho_true"] if truth else []), "seeds x folds"]
    cells = []
    for row in rows:
        stats, tests = row["statistics"], row["tests"] or {}
        truth_cells = [_cell(stats, f"truth.{name}", 1) for name in ("rho_true_k", "amplitude_k", "rho_true_flow")]
        cells.append([row["name"], _cell(stats, "paper.accuracy"), _cell(stats, "paper.f1"),
                      _cell(stats, "paper.f1_all"), _cell(stats, "pooled.accuracy"), _cell(stats, "pooled.uf1"),
                      _cell(stats, "pooled.uar"), _cell(stats, "tendency.rho", 1), _cell(stats, "tendency.abs_z", 1),
                      *(truth_cells if truth else []), _p_cell(tests.get("accuracy")), _p_cell(tests.get("f1")),
                      *([_p_cell(tests.get("rho_true_k"))] if truth else []), row["pairs"]])
    return f"{title}\n\n" + markdown.table(columns, cells, right=columns[1:])


def run_ablation(table, cache_dir, base, out, seeds=None, preset_name="", renormalise=False, options=RunOptions()):
    """Runs every row of `table` over `seeds` as LOSO runs under `out/<row>/seed<S>/` and writes the table.

    Args:
        table: "sampler" (Table 2) or "losses" (Table 3).
        cache_dir: the preprocessed cache.
        base: the CMNetConfig the rows change.
        out: folder of the row runs and the table.
        seeds: seeds of every row (default: the base config's seed).
        preset_name: named in the table's title.
        renormalise: Table 3 with the remaining lambdas scaled to sum to 1 (not the paper's way).
        options: the `records.RunOptions` of every run (folds, strategy, verbose, command, ...).

    Returns:
        the table as Markdown (also `<out>/table.md`; one row per line in `<out>/table.csv`).
    """
    out = Path(out)
    seeds = check_seeds([base.seed] if seeds is None else seeds)
    runs = {}
    variants = table_rows(table, base, renormalise)
    for name, folder, changes in variants:
        print(f"=== {name}: {changes} ===", flush=True)
        runs[folder] = run_seeds(cache_dir, base.replace(**changes), out / folder, seeds, options)
    reference = runs[reference_folder(table, base)]
    rows = []
    for name, folder, changes in variants:
        tests = None if folder == reference_folder(table, base) else paired_test(runs[folder], reference)
        rows.append({"name": name, "folder": folder, **changes, "statistics": seed_statistics(runs[folder]),
                     "tests": tests, "pairs": sum(len(r.folds) for r in runs[folder].values())})
    header = {"sampler": "Sampling", "losses": "Losses", "tendency": "Model"}[table]
    name = {"sampler": "Table 2", "losses": "Table 3", "tendency": "Tendency calibration"}[table]
    title = (f"{name} (LOSO, preset {preset_name}, seeds {seeds}): mean ± std over "
             "the seeds (sample std) of Acc and F1-score (%, paper protocol; F1 over the classes present in each "
             "fold, and over all C classes as the paper's formula is printed), the pooled Acc, UF1, UAR (%), the "
             "tendency of k (Spearman rho, rank-sum |Z|; rho_true, amplitude agreement and optical flow's rho_true "
             "where clips have a true intensity); p: Wilcoxon signed-rank test of the per-(seed, fold) "
             f"scores against the {'baseline' if table == 'tendency' else 'full model'} "
             f"({reference_folder(table, base)})")
    if table == "losses":
        title += (". Removed losses have lambda 0; the other lambdas are " +
                  ("renormalised to sum to 1" if renormalise else "kept as in the full model, as the paper does "
                   "(they do not sum to 1)"))
    markdown = format_table(title, header, rows)
    files.write_bytes(out / "table.md", markdown.encode())
    flat = [{"name": r["name"], "folder": r["folder"], "setting": r.get("sampler", r.get("lambdas")),
             **{f"{k.replace('.', '_')}_{q}": v[q] for k, v in r["statistics"].items() for q in ("mean", "std")},
             **{f"p_{m}": (r["tests"] or {}).get(m, {}).get("p") for m in PAIRED_METRICS}} for r in rows]
    files.write_csv(out / "table.csv", flat, list(dict.fromkeys(k for row in flat for k in row)))
    return markdown
