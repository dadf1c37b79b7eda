"""The train and tuner command lines SIGKILLed at random moments and resumed equal uninterrupted runs (issue 10)."""

import json
import pathlib
import sys
import zipfile

import pandas as pd
import pytest

from fixtures import REPO, REPO_ENV, no_tensorflow_env, run_ok
from killharness import kill_and_resume, leftovers

SUBJECTS = ["sub01", "sub02", "sub03"]


def _complete_files(folder):
    """Asserts every visible file under `folder` is whole: JSON and CSV parse, PNGs end, .keras zips check."""
    for path in pathlib.Path(folder).rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".png":
            assert path.read_bytes()[-8:-4] == b"IEND", path
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, path


def _kill_after_new_work(done):
    """(ready, record) for `kill_and_resume`: each kill is armed only once `done()` grew past its value at
    the previous kill, so the kills spread over the whole run instead of all landing in the first seconds."""
    marks = [done()]

    def ready(pid):
        return done() > marks[-1]

    def record():
        marks.append(done())
        return marks[-1]

    return ready, record


def _fold_outcomes(run_dir):
    """Everything a fold result holds except its wall-clock time."""
    results = sorted((json.loads(p.read_text()) for p in pathlib.Path(run_dir).glob("folds/*/result.json")),
                     key=lambda r: r["fold"])
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in results]


@pytest.mark.slow
@pytest.mark.parametrize("backend, kills", [("tensorflow", 5), ("jax", 3)])  # JAX: fewer, each restart compiles
def test_killed_and_resumed_training_equals_an_uninterrupted_run(tmp_path, synthetic_cache, backend, kills):
    cache_dir = synthetic_cache(tmp_path / "cache", SUBJECTS)
    env = REPO_ENV if backend == "tensorflow" else no_tensorflow_env(tmp_path / "site", backend)

    def command(out):
        return [sys.executable, "-m", "cmnet_keras.train", "--cache", str(cache_dir), "--preset", "tiny",
                "--epochs", "4", "--checkpoint-every", "1", "--seed", "1", "--verbose", "0", "--out", str(out)]

    run_ok(command(tmp_path / "reference"), env=env)
    out = tmp_path / "killed"

    def epochs_done():  # checkpointed epochs (each fold's state.json) and finished folds
        states = [json.loads(p.read_text())["epoch"] for p in out.glob("folds/*/state.json")]
        return sum(states) + len(list(out.glob("folds/*/result.json")))

    ready, record = _kill_after_new_work(epochs_done)

    def progress():
        _complete_files(out)  # after every kill: no half-written file
        return record()

    attempts = kill_and_resume(command(out), kills=kills, seed=3, delay=(0.0, 1.0), env=env, cwd=REPO, timeout=900,
                               progress=progress, ready=ready)
    done = [a.progress for a in attempts if a.killed]
    print("checkpointed epochs + finished folds at each kill:", done)
    assert len(done) >= kills and done == sorted(done) and done[-1] > kills  # kills spread over the folds
    assert attempts[-1].returncode == 0, attempts[-1].output[-3000:]
    assert leftovers(out) == []
    assert _fold_outcomes(out) == _fold_outcomes(tmp_path / "reference")
    for name in ("results.csv", "folds.csv", "predictions.csv"):
        reference = pd.read_csv(tmp_path / "reference" / name)
        assert pd.read_csv(out / name).drop(columns="train_seconds", errors="ignore").equals(
            reference.drop(columns="train_seconds", errors="ignore")), name


@pytest.mark.slow
def test_killed_and_resumed_search_loses_and_repeats_no_trial(tmp_path, synthetic_cache):
    cache_dir = synthetic_cache(tmp_path / "cache", SUBJECTS)

    def command(out):
        return [sys.executable, "-m", "tuning.grid", "--cache", str(cache_dir), "--preset", "tiny", "--epochs", "1",
                "--step", "0.5", "--folds", "0", "--seed", "2", "--verbose", "0", "--out", str(out)]

    run_ok(command(tmp_path / "reference"))
    out = tmp_path / "killed"

    def work_done():  # finished trials and the trials' checkpointed folds
        return len(list(out.glob("trial_*/result.json"))) + len(list(out.glob("trial_*/loso/folds/*/state.json")))

    ready, record = _kill_after_new_work(work_done)

    def progress():
        _complete_files(out)
        return record()

    attempts = kill_and_resume(command(out), kills=5, seed=4, delay=(0.0, 4.0), env=REPO_ENV, cwd=REPO, timeout=900,
                               progress=progress, ready=ready)
    done = [a.progress for a in attempts if a.killed]
    print("finished trials + checkpointed folds at each kill:", done)
    assert len(done) >= 5 and done == sorted(done) and done[-1] >= 5
    assert attempts[-1].returncode == 0, attempts[-1].output[-3000:]
    columns = ["lambda1", "lambda2", "lambda3", "status", "score", "f1", "pooled_uf1", "fold_accuracy"]
    trials = pd.read_csv(out / "trials.csv").sort_values(["lambda1", "lambda2"]).reset_index(drop=True)
    reference = pd.read_csv(tmp_path / "reference" / "trials.csv").sort_values(["lambda1", "lambda2"])
    assert len(trials) == 6 and not trials.duplicated(["lambda1", "lambda2"]).any()
    assert trials[columns].equals(reference.reset_index(drop=True)[columns])
    assert len(list(out.glob("trial_*"))) == 6
    assert leftovers(out) == []
