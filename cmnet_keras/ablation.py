"""The paper's ablations over LOSO: Table 2 (negative samplers) and Table 3 (losses).

    python -m cmnet_keras.ablation --table sampler --preset demo --out runs/table2
    python -m cmnet_keras.ablation --table losses --preset demo --out runs/table3

Each row is a full LOSO run (`cmnet_keras.train`) in `<out>/<row>/`, resumable
like any run; the table is printed in the paper's format (Acc / F1-score %,
paper protocol) with the pooled protocol beside it, and written to
`<out>/table.md` and `<out>/table.csv`.

Table 3 turns a loss off with lambda = 0. Eq. 10 needs weights summing to 1,
so the remaining weights of the base lambdas (paper: 0.07, 0.71, 0.22) are
renormalised: L_C (0, 0, 1); L_C + L_Wrst (0, 0.7634, 0.2366);
L_C + L_ID (0.2414, 0, 0.7586); all three (0.07, 0.71, 0.22).
"""

import argparse
import sys
from pathlib import Path

from cmnet_keras import reports, train

TABLES = ("sampler", "losses")


def sampler_rows():
    """Table 2: (row name, folder, config changes)."""
    return [(name.capitalize(), name, {"sampler": name}) for name in ("deterministic", "random", "probabilistic")]


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


def format_table(title, header, rows):
    """Markdown table in the paper's layout: name | Acc | F1-score, then the pooled protocol."""
    lines = [f"{title}", "",
             f"| {header} | Acc | F1-score | pooled Acc | UF1 | UAR | folds |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['acc']:.2f} | {row['f1']:.2f} | {row['pooled_acc']:.2f} | "
                     f"{row['uf1']:.2f} | {row['uar']:.2f} | {row['folds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cmnet_keras.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, choices=TABLES, help="sampler: Table 2; losses: Table 3")
    train.add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="folder of the row runs and the table")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "cmnet_keras.ablation", *(sys.argv[1:] if argv is None else argv)]
    try:
        base = train.config_from_args(args)
        variants = sampler_rows() if args.table == "sampler" else loss_rows(base.lambdas)
    except ValueError as error:
        parser.error(str(error))
    out = Path(args.out)
    rows = []
    for name, folder, changes in variants:
        print(f"=== {name}: {changes} ===", flush=True)
        try:
            results = train.run_from_args(args, out / folder, base.replace(**changes), command)
        except (train.ConfigMismatchError, FileNotFoundError) as error:
            parser.exit(2, f"error: {error}\n")
        paper, pooled = results["paper"], results["pooled"]
        rows.append({"name": name, "folder": folder, **changes,
                     "acc": 100 * paper["accuracy"], "f1": 100 * paper["f1"], "pooled_acc": 100 * pooled["accuracy"],
                     "uf1": 100 * pooled["uf1"], "uar": 100 * pooled["uar"], "folds": paper["num_folds"]})
    header = "Sampling" if args.table == "sampler" else "Losses"
    title = (f"Table {2 if args.table == 'sampler' else 3} (LOSO, preset {args.preset}, seed {args.seed}): "
             "Acc and F1-score (%), paper protocol; pooled Acc, UF1, UAR (%)")
    table = format_table(title, header, rows)
    (out / "table.md").write_text(table)
    fields = ["name", "folder", "sampler" if args.table == "sampler" else "lambdas",
              "acc", "f1", "pooled_acc", "uf1", "uar", "folds"]
    reports.write_csv(out / "table.csv", rows, fields)
    print(table)


if __name__ == "__main__":
    main()
