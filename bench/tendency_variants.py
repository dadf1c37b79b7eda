"""Does held-out k follow the prototype? LOSO folds of the demo preset per tendency variant.

Variants (CMNetConfig fields over the demo preset):

- default: the paper's rank-sum loss, absolute beta = 0.01, squeeze bias 0;
- relative: rank_temperature_mode="relative", rank_temperature=0.1
  (beta = 0.1 x std of the 2N pooled values; 0.01 x std leaves the sigmoids
  of k-q pairs as saturated as the absolute 0.01);
- squeeze_init: squeeze_bias_init = (1 + epsilon) / 2 (glorot kernel: k starts near it);
- squeeze_in_range: the same bias with squeeze_kernel_init="zeros": k starts at
  (1 + epsilon) / 2 on every frame;
- spearman: tendency_loss="spearman" (1 - soft Spearman rho);
- both: tendency_loss="both" (rank sum + soft Spearman);
- both_in_range: "both" from the squeeze_in_range initialisation.

Per variant: mean held-out Spearman rho and rank-sum |Z| of k against the
prototype mean over every test clip (`results["tendency"]`), and the paper's
and the pooled accuracy. Prints a table with the CPU and the load; writes
`tendency_variants.json` into --out.

    PYTHONPATH=. python bench/tendency_variants.py --cache DIR --out DIR [--folds 0 1 2] [--epochs 10]
"""

import argparse
import os
import pathlib
import platform
import subprocess
import time

from cmnet_keras.config import get_config
from cmnet_keras.files import write_json
from cmnet_keras.training import run_loso

EPSILON = get_config("demo").epsilon
VARIANTS = {
    "default": {},
    "relative": {"rank_temperature_mode": "relative", "rank_temperature": 0.1},
    "squeeze_init": {"squeeze_bias_init": (1 + EPSILON) / 2},
    "squeeze_in_range": {"squeeze_bias_init": (1 + EPSILON) / 2, "squeeze_kernel_init": "zeros"},
    "spearman": {"tendency_loss": "spearman"},
    "both": {"tendency_loss": "both"},
    "both_in_range": {"tendency_loss": "both", "squeeze_bias_init": (1 + EPSILON) / 2, "squeeze_kernel_init": "zeros"},
}


def cpu_description():
    """`lscpu` model name, whether avx512f is present, and the load averages."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor())
    avx512 = "avx512f" in lscpu
    return f"{model}, {os.cpu_count()} cores, avx512f {'yes' if avx512 else 'no'}, load {os.getloadavg()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="embedded dataset cache (ensure_embedded_cache)")
    parser.add_argument("--out", required=True, help="folder for one run directory per variant")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    rows = {}
    print(f"CPU: {cpu_description()}", flush=True)
    for name in args.variants:
        config = get_config("demo", epochs=args.epochs, seed=args.seed, **VARIANTS[name])
        start = time.perf_counter()
        results = run_loso(args.cache, config, out / name, folds=args.folds, verbose=0)
        rows[name] = {"changes": VARIANTS[name], "rho": results["tendency"]["rho"],
                      "abs_z": results["tendency"]["abs_z"], "clips": results["tendency"]["n"],
                      "rho_undefined": results["tendency"]["rho_undefined"],
                      "paper_accuracy": results["paper"]["accuracy"],
                      "pooled_accuracy": results["pooled"]["accuracy"],
                      "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name}: {rows[name]} | load {os.getloadavg()}", flush=True)
    write_json(out / "tendency_variants.json", {"cpu": cpu_description(), "folds": args.folds,
                                                "epochs": args.epochs, "seed": args.seed, "variants": rows})
    print(f"\nfolds {args.folds}, {args.epochs} epochs, seed {args.seed}; CPU: {cpu_description()}")
    print(f"{'variant':14s} {'rho':>7s} {'|Z|':>6s} {'acc(paper)':>10s} {'acc(pooled)':>11s} {'s':>6s}")
    for name, row in rows.items():
        print(f"{name:14s} {row['rho']:7.3f} {row['abs_z']:6.2f} {100 * row['paper_accuracy']:9.1f}% "
              f"{100 * row['pooled_accuracy']:10.1f}% {row['seconds']:6.0f}")


if __name__ == "__main__":
    main()
