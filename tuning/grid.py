"""Grid search over the loss weights λ of Eq. 10 with KerasTuner.

Every trial is one point (λ1, λ2, λ3 = 1 - λ1 - λ2) of a grid with step
`--step` restricted to the simplex (all λ >= 0, summing to 1); the objective is
the LOSO accuracy of the paper's protocol (accuracy per held-out subject,
averaged over the folds) on a preprocessed clip cache, optionally on a subset
of the folds for quicker searches. The paper's choice (0.07, 0.71, 0.22) is a
grid point for `--step 0.01` (5151 points; 66 for the default 0.1). A trial
costs (folds x epochs) of LOSO training: with the `demo` preset on the
embedded dataset about 10 s per fold and epoch on a 2-core CPU, so the first
command below (6 points, 2 folds, 5 epochs) takes about 10 minutes.

    python -m tuning.grid --embedded --preset demo --epochs 5 --step 0.5 \\
        --folds 0-1 --out tuning_runs/demo
    python -m tuning.grid --cache data/casme2_cache --preset paper \\
        --epochs 100 --step 0.1 --out tuning_runs/casme2

Written to `--out`: KerasTuner's project (`oracle.json`, `trial_*/`), the
search settings (`search.json`), `trials.csv` and `trials.md` (one row per
trial: λ, status, LOSO accuracy, per-fold accuracies, error of a failed trial)
and `best.json` (the best λ and its score).

Resume: running the same command again continues the search: finished trials
are kept, an interrupted trial is run again (its LOSO run resumes after the
last finished fold and epoch), the remaining grid points follow.
A different dataset, preset, epoch count, step, seed or fold subset for the
same `--out` is refused (pass `--overwrite` to start afresh).

Failed trials: an exception in a trial marks it FAILED (KerasTuner's status);
the error is printed when the trial ends and shown in the tables. After
`--max-consecutive-failures` failed trials in a row (default 3) the search
stops with an error, the tables are still written.

Distributed search (KerasTuner's chief/worker mode): start the same command
with the same `--out` (a shared filesystem, or the same path on each machine)
on one chief and any number of workers. The chief only hands out grid points
and collects the scores; the workers train::

    # chief (machine A, 10.0.0.1): serves the oracle on port 8000
    KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=0.0.0.0 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x
    # workers (each with a unique id)
    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x
    KERASTUNER_TUNER_ID=tuner1 KERASTUNER_ORACLE_IP=10.0.0.1 \\
        KERASTUNER_ORACLE_PORT=8000 python -m tuning.grid --cache DIR ... --out tuning_runs/x

The chief returns once every grid point has been run and writes the tables;
workers write none. With a shared `--out` the chief's tables also hold each
trial's per-fold accuracies and time (else only the scores; the trial folders
stay on the workers). Needs `grpcio` (a keras-tuner extra) on every machine.
Workers may start before the chief: keras-tuner waits up to 60 minutes for
it. A worker whose connection the finished chief closes exits with an error
saying so.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time

import pandas as pd

from cmnet_keras import optional

kt = optional.require("keras_tuner")

HP_NAME = "lambdas"
OBJECTIVE = "loso_accuracy"
EXTRA_SCORES = ("loso_f1", "pooled_uf1")  # shown in the tables when the objective returns them
SEARCH_FILE = "search.json"
_EPS = 1e-9


def check_tensorboard():
    """Raises ImportError with the fix when `tensorboard` is missing.

    keras-tuner needs it (`tensorboard.plugins.hparams`); without it every
    trial fails.
    """
    try:
        import tensorboard.plugins.hparams.api  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "keras-tuner needs the `tensorboard` package (tensorboard.plugins.hparams), "
            f"which could not be imported ({e}). Install it: pip install tensorboard "
            '(or the extra: pip install -e ".[tuning]")'
        ) from e


def simplex_grid(step=0.1):
    """All grid points (λ1, λ2, λ3) with λ1, λ2 multiples of `step` and λ3 = 1 - λ1 - λ2 >= 0.

    Values are rounded to 10 decimals so that e.g. 0.07 is exactly `0.07` and
    every triple sums to 1 within 1e-9. Ordered by λ1, then λ2.

    Args:
        step: grid spacing of λ1 and λ2, in (0, 1].
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step must be in (0, 1], got {step}")
    count = math.floor(1.0 / step + _EPS)
    values = [round(i * step, 10) for i in range(count + 1)]
    points = []
    for l1 in values:
        for l2 in values:
            l3 = round(1.0 - l1 - l2, 10)
            if l3 < -_EPS:
                break
            points.append((l1, l2, max(l3, 0.0)))
    return points


def format_lambdas(lambdas):
    """(0.07, 0.71, 0.22) -> "0.07,0.71,0.22" (the value of the `lambdas` hyper-parameter)."""
    return ",".join(f"{v:.10g}" for v in lambdas)


def parse_lambdas(text):
    """Inverse of `format_lambdas`."""
    values = tuple(float(v) for v in text.split(","))
    if len(values) != 3:
        raise ValueError(f"Expected 3 comma-separated λ, got {text!r}")
    return values


def loso_accuracy(config, cache_dir, out, folds=None, verbose=1):
    """Trains and tests CMNet LOSO (`cmnet_keras.train.run_loso`); the trial objective.

    Args:
        config: `CMNetConfig` (λ, epochs, preset sizes).
        cache_dir: preprocessed clip cache.
        out: the trial's LOSO run directory (an interrupted trial resumes there).
        folds: 0-based fold numbers to run (None: all).
        verbose: Keras progress bar mode.

    Returns:
        dict with `loso_accuracy` (paper protocol: mean accuracy over the
        folds), `loso_f1`, `pooled_uf1`, `pooled_uar` and `fold_accuracy`
        ({subject: accuracy}).
    """
    from cmnet_keras.train import run_loso

    results = run_loso(cache_dir, config, out, folds=folds, verbose=verbose)
    return {
        OBJECTIVE: results["paper"]["accuracy"],
        "loso_f1": results["paper"]["f1"],
        "pooled_uf1": results["pooled"]["uf1"],
        "pooled_uar": results["pooled"]["uar"],
        "fold_accuracy": {fold["subject"]: fold["accuracy"] for fold in results["folds"]},
    }


class SimplexGridOracle(kt.oracles.GridSearchOracle):
    """Grid search over the `lambdas` choice that resumes where it stopped.

    keras-tuner 1.4.8's `GridSearchOracle` keeps its position in the grid in
    memory only (not in `oracle.json`), so a reloaded search ends at once
    without running the remaining points. Here the next point is the first
    grid value not tried yet, read from the oracle's saved state.

    Args:
        trial_budget: stop once this many trials exist, reloaded ones included
            (None: the whole grid). Kept apart from `max_trials`, which would
            change the trial-id width between runs.
        **kwargs: `GridSearchOracle` arguments.
    """

    def __init__(self, trial_budget=None, **kwargs):
        super().__init__(**kwargs)
        self.trial_budget = trial_budget

    def populate_space(self, trial_id):
        if self.trial_budget is not None and len(self.trials) >= self.trial_budget:
            return {"status": "STOPPED", "values": None}
        (choice,) = [hp for hp in self.get_space().space if hp.name == HP_NAME]
        for value in choice.values:
            if not self._duplicate({HP_NAME: value}):
                return {"status": "RUNNING", "values": {HP_NAME: value}}
        return {"status": "STOPPED", "values": None}


class LambdaGridSearch(kt.Tuner):
    """KerasTuner tuner over the λ simplex whose trials run `objective_fn` (LOSO training).

    Each trial writes `result.json` (λ, seconds, the objective's full result)
    into its trial folder and reports `loso_accuracy` to the oracle.
    """

    def __init__(self, objective_fn, config, cache_dir, folds, hyperparameters, max_trials=None,
                 max_consecutive_failed_trials=3, **kwargs):
        self.objective_fn = objective_fn
        self.base_config = config
        self.cache_dir = cache_dir
        self.folds = folds
        oracle = SimplexGridOracle(
            objective=kt.Objective(OBJECTIVE, direction="max"),
            trial_budget=max_trials,
            hyperparameters=hyperparameters,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, **kwargs)

    def run_trial(self, trial, verbose=1):
        lambdas = parse_lambdas(trial.hyperparameters.get(HP_NAME))
        config = self.base_config.replace(lambdas=lambdas)
        start = time.time()
        trial_dir = self.get_trial_dir(trial.trial_id)
        result = dict(self.objective_fn(config, self.cache_dir, os.path.join(trial_dir, "loso"), folds=self.folds,
                                        verbose=verbose))
        details = {"lambdas": list(lambdas), "seconds": time.time() - start, **result}
        with open(os.path.join(trial_dir, "result.json"), "w") as f:
            json.dump(details, f, indent=2)
        return {OBJECTIVE: float(result[OBJECTIVE])}

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        finally:
            if trial.status == "FAILED":
                trial_file = os.path.join(self.get_trial_dir(trial.trial_id), "trial.json")
                print(f"Trial {trial.trial_id} FAILED (λ = {trial.hyperparameters.get(HP_NAME)}): "
                      f"{_error_line(trial.message)} (traceback in {trial_file})", file=sys.stderr, flush=True)


def make_tuner(objective_fn, config, cache_dir, out, step=0.1, folds=None, max_trials=None,
               max_consecutive_failures=3, overwrite=False):
    """Builds the KerasTuner grid search over the λ simplex; reloads an existing `out`.

    Args:
        objective_fn: `fn(config, cache_dir, out, folds=, verbose=) -> dict`
            with `loso_accuracy` (see `loso_accuracy`); `out` is a folder
            inside the trial's folder.
        config: base `CMNetConfig` (its `lambdas` are replaced per trial).
        cache_dir: preprocessed clip cache passed to `objective_fn`.
        out: project folder (KerasTuner files and tables).
        step: grid spacing (see `simplex_grid`).
        folds: fold indices passed to `objective_fn` (None: all).
        max_trials: total trial budget, counting reloaded trials (None: the whole grid).
        max_consecutive_failures: stop after this many failed trials in a row.
        overwrite: discard an existing project in `out`.
    """
    check_tensorboard()
    out = pathlib.Path(out)
    hp = kt.HyperParameters()
    hp.Choice(HP_NAME, [format_lambdas(p) for p in simplex_grid(step)])
    return LambdaGridSearch(
        objective_fn,
        config,
        cache_dir,
        folds,
        hyperparameters=hp,
        max_trials=max_trials,
        max_consecutive_failed_trials=max_consecutive_failures,
        directory=str(out.parent),
        project_name=out.name,
        overwrite=overwrite,
    )


def _error_line(message):
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def trials_table(tuner):
    """One row per trial (start order): λ, status, score, per-fold accuracies, error."""
    rows = []
    for trial_id in tuner.oracle.start_order:
        trial = tuner.oracle.trials[trial_id]
        lambdas = parse_lambdas(trial.hyperparameters.get(HP_NAME))
        result_path = os.path.join(tuner.project_dir, f"trial_{trial_id}", "result.json")
        result = {}
        if os.path.exists(result_path):
            with open(result_path) as f:
                result = json.load(f)
        score = trial.score if trial.status == "COMPLETED" else None
        folds = result.get("fold_accuracy") or {}
        rows.append(
            {
                "trial": trial_id,
                "lambda1": lambdas[0],
                "lambda2": lambdas[1],
                "lambda3": lambdas[2],
                "status": trial.status,
                OBJECTIVE: score,
                **{k: result.get(k) if score is not None else None for k in EXTRA_SCORES},
                "fold_accuracy": " ".join(f"{k}:{v:.4f}" for k, v in folds.items()) if score is not None else "",
                "seconds": round(result["seconds"], 1) if score is not None and "seconds" in result else None,
                "error": _error_line(trial.message) if trial.status in ("FAILED", "INVALID") else "",
            }
        )
    return pd.DataFrame(rows, columns=["trial", "lambda1", "lambda2", "lambda3", "status", OBJECTIVE, *EXTRA_SCORES,
                                       "fold_accuracy", "seconds", "error"])


def _markdown(table):
    header = "| " + " | ".join(table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_results(tuner, out):
    """Writes `trials.csv`, `trials.md` and `best.json` into `out`; returns the best entry (or None)."""
    out = pathlib.Path(out)
    table = trials_table(tuner)
    table.to_csv(out / "trials.csv", index=False)
    best_trials = [t for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"]
    best = None
    if best_trials:
        trial = best_trials[0]
        best = {"trial": trial.trial_id, "lambdas": list(parse_lambdas(trial.hyperparameters.get(HP_NAME))),
                OBJECTIVE: float(trial.score)}
    counts = table["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = ["# λ grid search (Eq. 10)", "", f"Trials: {len(table)} ({summary or 'none'}).", ""]
    if best:
        lines += [f"Best λ = {tuple(best['lambdas'])}: {OBJECTIVE} = {best[OBJECTIVE]:.4f} "
                  f"(trial {best['trial']}).", ""]
    (out / "trials.md").write_text("\n".join(lines) + _markdown(table))
    with open(out / "best.json", "w") as f:
        json.dump({"best": best, "trials": len(table), "status_counts": counts}, f, indent=2)
    return best


def _check_settings(out, settings):
    """Refuses to continue a search in `out` made with different settings."""
    path = pathlib.Path(out) / SEARCH_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"{out} holds a search with other settings ({details}). "
                "Use another --out, or --overwrite to discard it."
            )


def _is_worker():
    return "KERASTUNER_ORACLE_IP" in os.environ and os.environ.get("KERASTUNER_TUNER_ID", "tuner0") != "chief"


def run_search(config, cache_dir, out, step=0.1, folds=None, objective_fn=None, max_trials=None,
               max_consecutive_failures=3, overwrite=False, settings=None, verbose=1):
    """Runs (or continues) the λ grid search and writes its tables.

    Args:
        config, cache_dir, out, step, folds, max_trials, max_consecutive_failures,
        overwrite: see `make_tuner`.
        objective_fn: trial objective (default `loso_accuracy`).
        settings: JSON-able dict identifying the search (dataset, preset, ...);
            a rerun in the same `out` must match it.
        verbose: KerasTuner / Keras verbosity.

    Returns:
        (tuner, best) where best is `{"trial", "lambdas", "loso_accuracy"}` or None.
    """
    settings = {"step": step, "folds": folds, **(settings or {}),
                "config": {k: v for k, v in config.to_dict().items() if k != "lambdas"}}
    settings = json.loads(json.dumps(settings))
    if not overwrite:
        _check_settings(out, settings)
    tuner = make_tuner(objective_fn or loso_accuracy, config, cache_dir, out, step=step, folds=folds,
                       max_trials=max_trials, max_consecutive_failures=max_consecutive_failures,
                       overwrite=overwrite)
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(out) / SEARCH_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True))
    try:
        tuner.search(verbose=verbose)
    finally:
        best = None if _is_worker() else write_results(tuner, out)
    return tuner, best


def _parse_args(argv):
    from cmnet_keras.config import PRESETS

    parser = argparse.ArgumentParser(prog="python -m tuning.grid", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cache", help="preprocessed clip cache (cmnet_keras.preprocess)")
    source.add_argument("--embedded", action="store_true",
                        help="the embedded real-face dataset (generated and preprocessed on first use)")
    parser.add_argument("--data-dir", default="data", help="where the embedded dataset and its cache live")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="model size preset")
    parser.add_argument("--epochs", type=int, help="epochs per fold (default: the preset's)")
    parser.add_argument("--step", type=float, default=0.1, help="grid step of λ1 and λ2 (default 0.1)")
    folds = parser.add_mutually_exclusive_group()
    folds.add_argument("--folds", help="fold numbers, e.g. 0-3 or 0,2,5-7 (default: all)")
    folds.add_argument("--max-folds", type=int, help="only the first N folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw and the data order")
    parser.add_argument("--max-trials", type=int,
                        help="total trial budget, earlier trials included (default: the whole grid)")
    parser.add_argument("--max-consecutive-failures", type=int, default=3,
                        help="stop after this many failed trials in a row (default 3)")
    parser.add_argument("--out", required=True, help="search folder, e.g. tuning_runs/NAME (rerun to continue)")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing search in --out")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Keras progress bar mode")
    return parser.parse_args(argv)


def _fold_numbers(args, cache_dir):
    from cmnet_keras.data.cache import read_index
    from cmnet_keras.data.folds import fold_subjects
    from cmnet_keras.train import parse_folds

    if args.max_folds is None:
        return None if args.folds is None else parse_folds(args.folds, len(fold_subjects(read_index(cache_dir))))
    if args.max_folds < 1:
        raise ValueError(f"--max-folds must be >= 1, got {args.max_folds}")
    return list(range(min(args.max_folds, len(fold_subjects(read_index(cache_dir))))))


def main(argv=None):
    args = _parse_args(argv)
    try:
        check_tensorboard()
        from cmnet_keras.config import get_config
        from cmnet_keras.train import cache_fingerprint, config_for_cache, ensure_embedded_cache

        overrides = {"seed": args.seed} if args.epochs is None else {"seed": args.seed, "epochs": args.epochs}
        config = get_config(args.preset, **overrides)
        if args.cache:
            cache_dir = pathlib.Path(args.cache)
            if not (cache_dir / "index.csv").is_file():
                raise FileNotFoundError(f"--cache {cache_dir}: no index.csv; run cmnet_keras.preprocess first")
        else:
            cache_dir = ensure_embedded_cache(config.image_size, config.num_frames, args.data_dir, seed=args.seed)
        config = config_for_cache(config, cache_dir)
        folds = _fold_numbers(args, cache_dir)
        settings = {"cache_fingerprint": cache_fingerprint(cache_dir), "preset": args.preset}
        _, best = run_search(config, cache_dir, args.out, step=args.step, folds=folds, max_trials=args.max_trials,
                             max_consecutive_failures=args.max_consecutive_failures, overwrite=args.overwrite,
                             settings=settings, verbose=args.verbose)
    except (ValueError, ImportError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if not (_is_worker() and type(e).__module__.startswith("grpc")):
            raise
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
        print(f"error: cannot reach the KerasTuner chief at {address} (search finished, or chief not started): "
              f"{getattr(e, 'details', lambda: e)()}", file=sys.stderr)
        return 1
    if best is not None:
        print(f"Best λ = {tuple(best['lambdas'])}: {OBJECTIVE} = {best[OBJECTIVE]:.4f}; tables in {args.out}")
    elif not _is_worker():
        print(f"No trial completed; see {args.out}/trials.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
