"""The paper's ablations over LOSO: Table 2 (negative samplers) and Table 3 (losses).

Each row is a full LOSO run (`run_loso`) in `<out>/<row>/`, resumable like any
run; the table is written in the paper's format (Acc / F1-score %, paper
protocol) with the pooled protocol beside it, to `<out>/table.md` and `<out>/table.csv`.

Table 3 turns a loss off with lambda = 0. Eq. 10 needs weights summing to 1,
so the remaining weights of the base lambdas (paper: 0.07, 0.71, 0.22) are
renormalised: L_C (0, 0, 1); L_C + L_Wrst (0, 0.7634, 0.2366);
L_C + L_ID (0.2414, 0, 0.7586); all three (0.07, 0.71, 0.22).
"""

from pathlib import Path

from cmnet_keras import files
from cmnet_keras.config import SAMPLERS
from cmnet_keras.training.loso import run_loso

TABLES = ("sampler", "losses")


def sampler_rows():
    """Table 2: (row name, folder, config changes)."""
    return [(name.capitalize(), name, {"sampler": name}) for name in SAMPLERS]


def loss_rows(lambdas):
    """Table 3: (row name, folder, config changes); a loss off has lambda 0, the rest renormalised."""
    l_id, l_wrst, l_c = lambdas
    if l_c <= 0:
        raise ValueError(f"the losses table keeps L_C: its lambda must be > 0, got lambdas {tuple(lambdas)}")

    def kept(*weights):
        return {"lambdas": tuple(w / sum(weights) for w in weights)}

    return [
        ("L_C", "lc", kept(0.0, 0.0, l_c)),
        ("L_C + L_Wrst", "lc_wrst", kept(0.0, l_wrst, l_c)),
        ("L_C + L_ID", "lc_id", kept(l_id, 0.0, l_c)),
        ("L_C + L_ID + L_Wrst", "lc_id_wrst", kept(l_id, l_wrst, l_c)),
    ]


def table_rows(table, base):
    """The rows of `table` ("sampler" or "losses") for the base config."""
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    return sampler_rows() if table == "sampler" else loss_rows(base.lambdas)


def format_table(title, header, rows):
    """Markdown table in the paper's layout: name | Acc | F1-score, then the pooled protocol."""
    lines = [f"{title}", "",
             f"| {header} | Acc | F1-score | pooled Acc | UF1 | UAR | folds |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['acc']:.2f} | {row['f1']:.2f} | {row['pooled_acc']:.2f} | "
                     f"{row['uf1']:.2f} | {row['uar']:.2f} | {row['folds']} |")
    return "\n".join(lines) + "\n"


def run_ablation(table, cache_dir, base, out, preset_name="", **run_options):
    """Runs every row of `table` as a LOSO run under `out` and writes the table.

    Args:
        table: "sampler" (Table 2) or "losses" (Table 3).
        cache_dir: the preprocessed cache.
        base: the CMNetConfig the rows change.
        out: folder of the row runs and the table.
        preset_name: named in the table's title.
        **run_options: passed to `run_loso` (folds, strategy, verbose, command, ...).

    Returns:
        the table as Markdown.
    """
    out = Path(out)
    rows = []
    for name, folder, changes in table_rows(table, base):
        print(f"=== {name}: {changes} ===", flush=True)
        results = run_loso(cache_dir, base.replace(**changes), out / folder, **run_options)
        paper, pooled = results["paper"], results["pooled"]
        rows.append({"name": name, "folder": folder, **changes,
                     "acc": 100 * paper["accuracy"], "f1": 100 * paper["f1"], "pooled_acc": 100 * pooled["accuracy"],
                     "uf1": 100 * pooled["uf1"], "uar": 100 * pooled["uar"], "folds": paper["num_folds"]})
    header = "Sampling" if table == "sampler" else "Losses"
    title = (f"Table {2 if table == 'sampler' else 3} (LOSO, preset {preset_name}, seed {base.seed}): "
             "Acc and F1-score (%), paper protocol; pooled Acc, UF1, UAR (%)")
    markdown = format_table(title, header, rows)
    files.write_bytes(out / "table.md", markdown.encode())
    fields = ["name", "folder", "sampler" if table == "sampler" else "lambdas",
              "acc", "f1", "pooled_acc", "uf1", "uar", "folds"]
    files.write_csv(out / "table.csv", rows, fields)
    return markdown
