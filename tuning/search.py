"""The λ grid search of Eq. 10 with KerasTuner: oracle, tuner, trial objective and tables.

The command line is `python -m tuning.grid` (`cmnet_keras.commands.grid`, whose docstring describes
the search, its files, resume, failed trials and the distributed mode).
"""

import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time

import keras
import pandas as pd

from cmnet_keras import files, markdown, optional
from cmnet_keras.config import CMNetConfig
from cmnet_keras.options import OBJECTIVES
from cmnet_keras.records import RunOptions
from cmnet_keras.training.run_dir import check_settings

kt = optional.require("keras_tuner")

HP_NAME = "lambdas"
OBJECTIVE = "score"
SCORED_ON = {"nested": "the validation subjects, never the fold's test subject", "loso-test": "the test subject"}
EXTRA_SCORES = ("f1", "pooled_uf1")  # shown in the tables when the objective returns them
TIE_METRIC = "pooled_uf1"
PAPER_LAMBDAS = CMNetConfig().lambdas
SCORE_DECIMALS = 9  # scores equal to this many decimals are a tie
TIE_RULE = (f"the highest {OBJECTIVE}; among equal ones the higher validation UF1 ({TIE_METRIC}), then the λ nearest "
            f"the paper's {PAPER_LAMBDAS} (Euclidean), then the earlier grid point (λ1, then λ2, ascending)")
SEARCH_FILE = "search.json"
_EPS = 1e-9
# Under the TensorFlow backend keras-tuner fails every trial without it (`require_tensorboard`).
TENSORBOARD = "tensorboard.plugins.hparams.api"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How a λ search runs, besides the model's config (`run_search`, `python -m tuning.grid`).

    Attributes:
        step: grid spacing of λ1 and λ2 (see `simplex_grid`).
        folds: 0-based outer fold numbers each trial runs (None: all).
        objective: a name of `OBJECTIVES` ("nested" or "loso-test"), see `loso_objective`;
            it is written into every table.
        validation_subjects: training subjects per outer fold scored by the nested objective.
        max_trials: total trial budget, counting reloaded trials (None: the whole grid).
        max_consecutive_failures: stop after this many failed trials in a row.
        overwrite: discard an existing project in the search folder.
        verbose: KerasTuner / Keras verbosity.
    """

    step: float = 0.1
    folds: list | None = None
    objective: str = "nested"
    validation_subjects: int = 1
    max_trials: int | None = None
    max_consecutive_failures: int = 3
    overwrite: bool = False
    verbose: int = 1

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {self.objective!r}")


def require_tensorboard():
    """Imports `TENSORBOARD` under the TensorFlow backend (an ImportError naming the extra if it is missing);
    keras-tuner imports it under that backend only (it imports TensorFlow)."""
    if keras.backend.backend() == "tensorflow":
        optional.require(TENSORBOARD)


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


def loso_objective(config, cache_dir, out, folds=None, verbose=1, objective="nested", validation_subjects=1):
    """The trial objective: LOSO training (`cmnet_keras.training.run_loso`) scored by `objective`.

    Args:
        config: `CMNetConfig` (λ, epochs, preset sizes).
        cache_dir: preprocessed clip cache.
        out: the trial's LOSO run directory (an interrupted trial resumes there).
        folds: 0-based outer fold numbers to run (None: all).
        verbose: Keras progress bar mode.
        objective: "nested" (default): each outer fold trains without its test
            subject and `validation_subjects` of its training subjects, and is
            scored on those validation subjects; the test subject is never read.
            "loso-test": the paper's procedure, scored on the held-out test
            subjects (a choice made on the test data: labelled so in the tables).
        validation_subjects: training subjects per outer fold used for the nested score.

    Returns:
        dict with `score` (paper protocol: mean accuracy over the folds), `f1`,
        `pooled_uf1`, `pooled_uar` and `fold_accuracy` ({scored subjects: accuracy}).
    """
    from cmnet_keras.training import run_loso

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {tuple(OBJECTIVES)}, got {objective!r}")
    nested = objective == "nested"
    results = run_loso(cache_dir, config, out, RunOptions(folds=folds, verbose=verbose,
                                                          validation_subjects=validation_subjects if nested else 0,
                                                          evaluate_on="validation" if nested else "test"))
    fold_accuracy = {"+".join(sorted({c["subject"] for c in fold.predictions})): fold.accuracy
                     for fold in results.folds}
    return {
        OBJECTIVE: results.paper["accuracy"],
        "f1": results.paper["f1"],
        "pooled_uf1": results.pooled["uf1"],
        "pooled_uar": results.pooled["uar"],
        "fold_accuracy": fold_accuracy,
    }


def rank_key(trial, grid):
    """Sort key of a completed trial, best first: the documented tie rule (`TIE_RULE`).

    Args:
        trial: a KerasTuner trial with a `score` (and `TIE_METRIC` among its metrics, if reported).
        grid: the `lambdas` values in grid order (`format_lambdas` of `simplex_grid`).
    """
    value = trial.hyperparameters.get(HP_NAME)
    uf1 = trial.metrics.get_last_value(TIE_METRIC) if trial.metrics.exists(TIE_METRIC) else None
    distance = math.dist(parse_lambdas(value), PAPER_LAMBDAS)
    return (-round(trial.score, SCORE_DECIMALS), -round(uf1, SCORE_DECIMALS) if uf1 is not None else math.inf,
            round(distance, SCORE_DECIMALS), grid.index(value) if value in grid else len(grid))


class SimplexGridOracle(kt.oracles.GridSearchOracle):
    """Grid search over the `lambdas` choice that resumes where it stopped.

    keras-tuner 1.4.8's `GridSearchOracle` keeps its position in the grid in
    memory only (not in `oracle.json`), so a reloaded search ends at once
    without running the remaining points. Here the next point is the first
    grid value not tried yet, read from the oracle's saved state. The oracle and
    its trials are saved atomically (`cmnet_keras.files`), so a search killed at
    any moment reloads.

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

    def get_best_trials(self, num_trials=1):
        """The completed trials ranked by `rank_key` (KerasTuner's own order leaves ties to the reload order)."""
        (choice,) = [hp for hp in self.get_space().space if hp.name == HP_NAME]
        completed = [t for t in self.trials.values() if t.status == "COMPLETED"]
        return sorted(completed, key=lambda t: rank_key(t, choice.values))[:num_trials]

    def save(self):
        files.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        files.write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"), trial.get_state())


class LambdaGridSearch(kt.Tuner):
    """KerasTuner tuner over the λ simplex whose trials run `objective_fn` (LOSO training).

    Each trial writes `result.json` (λ, seconds, the objective's full result)
    into its trial folder and reports its `score` to the oracle.
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
        files.write_json(os.path.join(trial_dir, "result.json"), details)
        ranked = {OBJECTIVE: result[OBJECTIVE], **({TIE_METRIC: result[TIE_METRIC]} if TIE_METRIC in result else {})}
        return {name: float(value) for name, value in ranked.items()}

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        files.write_json(self._get_tuner_fname(), self.get_state())

    def on_trial_end(self, trial):
        try:
            super().on_trial_end(trial)
        finally:
            if trial.status == "FAILED":
                trial_file = os.path.join(self.get_trial_dir(trial.trial_id), "trial.json")
                print(f"Trial {trial.trial_id} FAILED (λ = {trial.hyperparameters.get(HP_NAME)}): "
                      f"{_error_line(trial.message)} (traceback in {trial_file})", file=sys.stderr, flush=True)


def make_tuner(objective_fn, config, cache_dir, out, options=SearchOptions()):
    """Builds the KerasTuner grid search over the λ simplex; reloads an existing `out`.

    Args:
        objective_fn: `fn(config, cache_dir, out, folds=, verbose=) -> dict`
            with `score` (see `loso_objective`); `out` is a folder
            inside the trial's folder.
        config: base `CMNetConfig` (its `lambdas` are replaced per trial).
        cache_dir: preprocessed clip cache passed to `objective_fn`.
        out: project folder (KerasTuner files and tables).
        options: `SearchOptions` (its step, folds, max_trials, max_consecutive_failures and overwrite).
    """
    require_tensorboard()
    out = pathlib.Path(out)
    hp = kt.HyperParameters()
    hp.Choice(HP_NAME, [format_lambdas(p) for p in simplex_grid(options.step)])
    return LambdaGridSearch(
        objective_fn,
        config,
        cache_dir,
        options.folds,
        hyperparameters=hp,
        max_trials=options.max_trials,
        max_consecutive_failed_trials=options.max_consecutive_failures,
        directory=str(out.parent),
        project_name=out.name,
        overwrite=options.overwrite,
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


def write_results(tuner, out, objective):
    """Writes `trials.csv`, `trials.md` and `best.json` into `out`, each naming the objective
    (a name of `OBJECTIVES`); returns the best entry (or None)."""
    out = pathlib.Path(out)
    table = trials_table(tuner)
    files.write_bytes(out / "trials.csv", table.to_csv(index=False).encode())
    best_trials = [t for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"]
    best = None
    if best_trials:
        trial = best_trials[0]
        best = {"trial": trial.trial_id, "lambdas": list(parse_lambdas(trial.hyperparameters.get(HP_NAME))),
                OBJECTIVE: float(trial.score), "objective": f"{objective}: {OBJECTIVES[objective]}",
                "rule": TIE_RULE}
    counts = table["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    lines = ["# λ grid search (Eq. 10)", "", f"Objective ({OBJECTIVE}): {objective}, {OBJECTIVES[objective]}.", "",
             f"Trials: {len(table)} ({summary or 'none'}).", ""]
    if best:
        lines += [f"Best λ = {tuple(best['lambdas'])}: {OBJECTIVE} = {best[OBJECTIVE]:.4f} "
                  f"(trial {best['trial']}; best: {TIE_RULE}).", ""]
    lines += [f"fold_accuracy: the accuracy of each outer fold, named by the subjects it is scored on "
              f"({SCORED_ON[objective]}).", ""]
    trials = markdown.table(list(table.columns), table.itertuples(index=False))
    files.write_bytes(out / "trials.md", ("\n".join(lines) + trials).encode())
    files.write_json(out / "best.json", {"best": best, "objective": f"{objective}: {OBJECTIVES[objective]}",
                                         "trials": len(table), "status_counts": counts})
    return best


def _check_settings(out, settings):
    """Refuses to continue a search in `out` made with different settings."""
    path = pathlib.Path(out) / SEARCH_FILE
    if path.exists():
        check_settings(json.loads(path.read_text()), settings,
                       f"{out} holds a search with other settings. Use another --out, or --overwrite to discard it.",
                       labels=("search", "now"))


def is_worker():
    return "KERASTUNER_ORACLE_IP" in os.environ and os.environ.get("KERASTUNER_TUNER_ID", "tuner0") != "chief"


def run_search(config, cache_dir, out, options=SearchOptions(), objective_fn=None, settings=None):
    """Runs (or continues) the λ grid search and writes its tables.

    Args:
        config, cache_dir, out: see `make_tuner`.
        options: `SearchOptions`.
        objective_fn: the trial objective (default: `loso_objective` with the options' `objective`
            and `validation_subjects`; tests pass a stub).
        settings: JSON-able dict identifying the search (dataset, preset, ...);
            a rerun in the same `out` must match it.

    Returns:
        (tuner, best) where best is `{"trial", "lambdas", "score", "objective"}` or None.
    """
    objective = options.objective
    if objective_fn is None:
        objective_fn = functools.partial(loso_objective, objective=objective,
                                         validation_subjects=options.validation_subjects)
    settings = {"step": options.step, "folds": options.folds, "objective": objective,
                "validation_subjects": options.validation_subjects if objective == "nested" else 0,
                **(settings or {}), "config": {k: v for k, v in config.to_dict().items() if k != "lambdas"}}
    settings = json.loads(json.dumps(settings))
    if not options.overwrite:
        _check_settings(out, settings)
        if pathlib.Path(out).is_dir():
            files.remove_stale_temps(out)  # left by a killed search
    tuner = make_tuner(objective_fn, config, cache_dir, out, options)
    files.write_json(pathlib.Path(out) / SEARCH_FILE, settings)
    try:
        tuner.search(verbose=options.verbose)
    finally:
        best = None if is_worker() else write_results(tuner, out, objective)
    return tuner, best
