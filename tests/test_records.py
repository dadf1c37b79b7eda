"""The typed records against hand-written result.json and results.json objects of the files' format."""

import json

import pytest

from cmnet_keras import files, reports
from cmnet_keras.records import FoldResult, RunOptions, RunResult

CLIP = {"fold": 1, "subject": "sub02", "clip_id": "EP01", "label": 2, "pred": 0, "probs": [0.5, 0.2, 0.3],
        "apex": 3, "apex_source": "annotated", "intensity": [0.1, 0.4, 0.7], "prototype": [0.0, 0.5, 1.0],
        "rho": 1.0, "abs_z": 0.5, "true_intensity": [0.0, 0.2, 0.3], "flow_intensity": [0.1, 0.3, 0.2],
        "difference_intensity": [0.3, 0.2, 0.1], "rho_true": 1.0}
# A fold's result.json as `train_fold` writes it: scores, tendency, the truth scores flat beside them.
FOLD = {"fold": 1, "subject": "sub02", "n": 1, "accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0,
        "f1_all": 0.0, "epochs": 2, "train_subjects": ["sub01", "sub10"], "rho": 1.0, "abs_z": 0.5,
        "rho_true_k": 1.0, "amplitude_k": 0.75, "rho_true_flow": -1.0, "amplitude_flow": 0.5,
        "eta": [0.001, 0.002], "class_weight": {"0": 1.5, "2": 0.75}, "train_seconds": 3.25,
        "history": {"loss": [2.0, 1.5], "accuracy": [0.25, 0.5]}, "predictions": [CLIP]}
# The run's results.json over that fold: its row has the run's truth fields (without n), epochs and time only.
RUN = {"paper": {"accuracy": 0.0, "accuracy_std": 0.0, "f1": 0.0, "f1_std": 0.0, "num_folds": 1},
       "pooled": {"accuracy": 0.0, "uf1": 0.0, "uar": 0.0, "n": 1},
       "tendency": {"rho": 1.0, "abs_z": 0.5, "n": 1, "rho_undefined": 0},
       "truth": {"n": 1, "rho_true_k": 1.0, "amplitude_k": 0.75},
       "class_names": ["negative", "positive", "surprise"], "complete": False, "missing_subjects": ["sub01"],
       "folds": [{"fold": 1, "subject": "sub02", "n": 1, "accuracy": 0.0, "precision": 0.0, "recall": 0.0,
                  "f1": 0.0, "f1_all": 0.0, "rho": 1.0, "abs_z": 0.5, "rho_true_k": 1.0, "amplitude_k": 0.75,
                  "epochs": 2, "train_seconds": 3.25}],
       "confusion_matrix": [[0, 0, 0], [0, 0, 0], [1, 0, 0]],
       "lambdas": [0.0, 0.0, 0.22], "lambda_ablation": True, "evaluate_on": "test"}


def test_a_fold_result_reads_and_writes_its_result_json():
    fold = FoldResult.from_json(FOLD)
    assert (fold.fold, fold.subject, fold.f1_all, fold.train_seconds) == (1, "sub02", 0.0, 3.25)
    assert fold.truth == {"rho_true_k": 1.0, "amplitude_k": 0.75, "rho_true_flow": -1.0, "amplitude_flow": 0.5}
    assert fold.class_weight == {0: 1.5, 2: 0.75} and fold.predictions == [CLIP]
    assert fold.to_json() == FOLD


def test_a_fold_result_of_an_older_file_has_none_for_what_it_lacks():
    old = {k: v for k, v in FOLD.items() if k not in ("f1_all", "class_weight", "eta", "rho_true_k", "amplitude_k",
                                                      "rho_true_flow", "amplitude_flow")}
    fold = FoldResult.from_json({**old, "an_old_key": 1})
    assert fold.f1_all is None and fold.class_weight is None and fold.eta is None and fold.truth == {}
    assert fold.row(["rho_true_k"])["rho_true_k"] is None
    with pytest.raises(ValueError, match="fold and subject"):
        FoldResult.from_json({"subject": "sub02"})


def test_a_run_result_reads_and_writes_its_results_json():
    run = RunResult.from_json(RUN)
    assert run.truth_fields == ["rho_true_k", "amplitude_k"] and run.per_dataset == {}
    assert run.notes == {"lambdas": [0.0, 0.0, 0.22], "lambda_ablation": True, "evaluate_on": "test"}
    assert run.folds[0].subject == "sub02" and run.folds[0].predictions == []
    assert run.to_json() == RUN
    with pytest.raises(ValueError, match=r"\['tendency'\]"):
        RunResult.from_json({"paper": {}, "pooled": {}})


def test_the_summary_of_a_fold_is_its_results_json(tmp_path):
    """`summarize_run` then `write_summary` over the fold of FOLD: results.json as written by hand above, with
    ρ_true of its one clip by hand (ranks of true 1 2 3; flow 1 3 2: 1 - 6 * 2 / 24; difference 3 2 1: -1)."""
    fold = FoldResult.from_json(FOLD)
    run = reports.summarize_run([fold], RUN["class_names"], ["sub01", "sub02"],
                                {"lambdas": [0.0, 0.0, 0.22], "lambda_ablation": True, "evaluate_on": "test"})
    reports.write_summary(tmp_path, run)
    written = json.loads((tmp_path / "results.json").read_text())
    for key in ("class_names", "complete", "missing_subjects", "confusion_matrix", "lambdas", "lambda_ablation"):
        assert written[key] == RUN[key]
    assert written["pooled"] == RUN["pooled"] and written["tendency"] == RUN["tendency"]
    truth = written["truth"]
    assert (truth["n"], truth["rho_true_k"], truth["rho_true_flow"], truth["rho_true_frame_difference"]) == (
        1, 1.0, pytest.approx(0.5), -1.0)
    row = written["folds"][0]
    assert {k: row[k] for k in RUN["folds"][0]} == RUN["folds"][0]  # the fold's own truth scores
    assert list(row) == sorted(row)  # files.write_json sorts the keys; folds.csv keeps the columns' order:
    assert (tmp_path / "folds.csv").read_text().splitlines()[0] == (
        "fold,subject,n,accuracy,precision,recall,f1,f1_all,rho,abs_z,rho_true_k,amplitude_k,rho_true_prototype,"
        "amplitude_prototype,rho_true_flow,amplitude_flow,rho_true_frame_difference,amplitude_frame_difference,"
        "epochs,train_seconds")
    files.write_json(tmp_path / "again.json", RunResult.from_json(written).to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "results.json").read_bytes()


def test_run_options_defaults_and_replace():
    options = RunOptions()
    assert (options.folds, options.hold_out, options.validation_subjects, options.evaluate_on, options.strategy,
            options.mixed_precision, options.checkpoint_every, options.verbose, options.class_weight,
            options.command) == (None, "subject", 0, "test", "none", None, 5, 1, None, None)
    changed = options.replace(folds=[0, 2], verbose=0)
    assert (changed.folds, changed.verbose, options.folds) == ([0, 2], 0, None)
    with pytest.raises(Exception):
        options.verbose = 2


@pytest.mark.parametrize("fields, message", [
    ({"evaluate_on": "train"}, r"evaluate_on must be one of \('test', 'validation'\), got 'train'"),
    ({"class_weight": "inverse"}, r"class_weight must be one of \(None, 'balanced'\), got 'inverse'"),
    ({"mixed_precision": "float64"}, r"mixed_precision must be one of \(None, 'float16', 'bfloat16'\), got 'float64'"),
    ({"evaluate_on": "validation"}, r"evaluate_on='validation' needs validation_subjects >= 1, got 0"),
    ({"checkpoint_every": 0}, r"checkpoint_every must be >= 1, got 0"),
])
def test_run_options_refuse_values_outside_theirs(fields, message):
    with pytest.raises(ValueError, match=message):
        RunOptions(**fields)
