"""λ grid search (tuning.grid): simplex points, resume, failed trials, the CLI on a tiny cache."""

import fractions
import json
import sys

import numpy as np
import pandas as pd
import pytest

from cmnet_keras import optional
from cmnet_keras.commands import cli, grid
from cmnet_keras.config import CMNetConfig, get_config
from cmnet_keras.data import cache
from tuning import search


def independent_simplex(step):
    """Every (a, b, 1 - a - b) with a, b multiples of `step` and all three >= 0, in exact fractions."""
    step = fractions.Fraction(step).limit_denominator(1000)
    n = int(1 / step)
    return sorted((float(i * step), float(j * step), float(1 - (i + j) * step))
                  for i in range(n + 1) for j in range(n + 1) if (i + j) * step <= 1)


@pytest.mark.parametrize("step, count", [(0.5, 6), (0.25, 15), (0.1, 66), (0.3, 10)])
def test_simplex_grid_equals_independent_enumeration(step, count):
    points = search.simplex_grid(step)
    expected = independent_simplex(step)
    assert len(points) == len(expected) == count
    np.testing.assert_allclose(sorted(points), expected, atol=1e-12)
    assert all(min(p) >= 0 and abs(sum(p) - 1) < 1e-9 for p in points)


def test_paper_lambdas_are_a_grid_point_with_step_001():
    points = search.simplex_grid(0.01)
    assert len(points) == 101 * 102 // 2
    assert (0.07, 0.71, 0.22) in points
    assert search.parse_lambdas(search.format_lambdas((0.07, 0.71, 0.22))) == (0.07, 0.71, 0.22)
    for point in points:  # every point is a valid config (λ sum to 1 within 1e-6)
        CMNetConfig(lambdas=point)


@pytest.mark.parametrize("step", [0.0, -0.1, 1.5])
def test_bad_step_is_refused(step):
    with pytest.raises(ValueError, match="step"):
        search.simplex_grid(step)


class StubObjective:
    """Records the λ it is called with; scores 0.1 + 0.8 λ2 + 0.05 λ1; raises for chosen λ."""

    def __init__(self, fail=(), interrupt_at=None):
        self.calls, self.fail, self.interrupt_at = [], set(fail), interrupt_at

    def __call__(self, config, cache_dir, out, folds=None, verbose=1):
        self.calls.append(config.lambdas)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        if config.lambdas in self.fail:
            raise ValueError(f"injected failure for {config.lambdas}")
        l1, l2, _ = config.lambdas
        return {search.OBJECTIVE: 0.1 + 0.8 * l2 + 0.05 * l1, "fold_accuracy": {"sub01": l2}}


def _search(out, objective, **options):
    return search.run_search(get_config("tiny"), "unused-cache", out,
                             search.SearchOptions(step=0.5, verbose=0, **options), objective_fn=objective)


def test_rerun_continues_the_search(tmp_path):
    out = tmp_path / "search"
    first = StubObjective()
    _search(out, first, max_trials=2)
    assert len(first.calls) == 2
    second = StubObjective()
    _, best = _search(out, second)
    assert len(second.calls) == 4
    assert sorted(first.calls + second.calls) == independent_simplex(0.5)
    third = StubObjective()
    _search(out, third)
    assert third.calls == []
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 6 and set(table["status"]) == {"COMPLETED"}
    assert best["lambdas"] == [0.0, 1.0, 0.0] and best[search.OBJECTIVE] == pytest.approx(0.9)
    assert json.loads((out / "best.json").read_text())["best"]["lambdas"] == [0.0, 1.0, 0.0]


class TiedObjective:
    """Every trial scores 0.2 (one validation subject of 10 clips); UF1 0.1, or 0.3 for the λ in `better_uf1`."""

    def __init__(self, better_uf1=()):
        self.better_uf1 = set(better_uf1)

    def __call__(self, config, cache_dir, out, folds=None, verbose=1):
        return {search.OBJECTIVE: 0.2, "pooled_uf1": 0.3 if config.lambdas in self.better_uf1 else 0.1,
                "fold_accuracy": {"sub07": 0.2}}


def _written(out):
    return {name: (out / name).read_bytes() for name in ("best.json", "trials.csv", "trials.md")}


@pytest.mark.parametrize("better_uf1, expected", [
    # all tied: the point nearest the paper's (0.07, 0.71, 0.22); distances by hand:
    # (0, .5, .5) 0.357, (0, 1, 0) 0.371, (.5, .5, 0) 0.527, (0, 0, 1) 1.06, (.5, 0, .5) 0.908, (1, 0, 0) 1.23
    ((), [0.0, 0.5, 0.5]),
    # a tie in score broken by the higher UF1, however far from the paper's λ
    ({(1.0, 0.0, 0.0)}, [1.0, 0.0, 0.0]),
    ({(0.0, 0.0, 1.0), (0.5, 0.0, 0.5)}, [0.5, 0.0, 0.5]),  # then the nearer of the two
])
def test_tied_trials_give_the_same_documented_best_on_every_rerun(tmp_path, better_uf1, expected):
    out = tmp_path / "search"
    _, best = _search(out, TiedObjective(better_uf1))
    assert best["lambdas"] == expected
    first = _written(out)
    for _ in range(3):
        _, again = _search(out, TiedObjective(better_uf1))
        assert again == best and _written(out) == first
    assert f"Best λ = {tuple(expected)}" in first["trials.md"].decode()
    assert "the λ nearest the paper's" in json.loads(first["best.json"])["best"]["rule"]


def test_interrupted_trial_runs_again_on_rerun(tmp_path):
    out = tmp_path / "search"
    first = StubObjective(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        _search(out, first)
    second = StubObjective()
    _search(out, second)
    assert second.calls[0] == first.calls[-1]  # the interrupted point first
    assert sorted(first.calls[:2] + second.calls) == independent_simplex(0.5)
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 6 and set(table["status"]) == {"COMPLETED"}


def test_failed_trial_is_reported_not_skipped(tmp_path, capsys):
    out = tmp_path / "search"
    _, best = _search(out, StubObjective(fail={(0.5, 0.0, 0.5)}))
    table = pd.read_csv(out / "trials.csv", keep_default_na=False)
    failed = table[table["status"] == "FAILED"]
    assert len(table) == 6 and len(failed) == 1
    assert failed[["lambda1", "lambda2", "lambda3"]].values.tolist() == [[0.5, 0.0, 0.5]]
    assert failed["error"].item() == "ValueError: injected failure for (0.5, 0.0, 0.5)"
    assert "| FAILED |" in (out / "trials.md").read_text()
    assert "1 FAILED" in (out / "trials.md").read_text()
    err = capsys.readouterr().err
    assert "FAILED (λ = 0.5,0,0.5): ValueError: injected failure" in err
    assert best["lambdas"] == [0.0, 1.0, 0.0]


def test_consecutive_failures_stop_the_search_with_tables(tmp_path):
    out = tmp_path / "search"
    with pytest.raises(RuntimeError, match="consecutive failures"):
        _search(out, StubObjective(fail=set(independent_simplex(0.5))), max_consecutive_failures=2)
    table = pd.read_csv(out / "trials.csv")
    assert table["status"].tolist() == ["FAILED", "FAILED"]


def test_other_settings_are_refused(tmp_path):
    out = tmp_path / "search"
    _search(out, StubObjective(), max_trials=1)
    with pytest.raises(ValueError, match=r"step: 0.5 \(search\) != 0.25 \(now\)"):
        search.run_search(get_config("tiny"), "unused-cache", out, search.SearchOptions(step=0.25, verbose=0),
                          objective_fn=StubObjective())
    runs = StubObjective()
    search.run_search(get_config("tiny"), "unused-cache", out,
                      search.SearchOptions(step=0.25, verbose=0, max_trials=1, overwrite=True), objective_fn=runs)
    assert len(runs.calls) == 1 and len(pd.read_csv(out / "trials.csv")) == 1


def test_missing_tensorboard_fails_fast(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard.plugins.hparams.api", None)
    with pytest.raises(ImportError, match=r"'tensorboard'.*pip install \"cmnet-keras\[tuning\]\""):
        optional.require(search.TENSORBOARD)
    with pytest.raises(SystemExit) as stop:
        grid.main(["--cache", str(tmp_path), "--out", str(tmp_path / "s")])
    assert stop.value.code == 2
    assert "tensorboard" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_the_search_takes_the_shared_training_options_but_not_lambdas(capsys):
    parser = grid._parser()
    args = parser.parse_args(["--preset", "tiny", "--batch-size", "6", "--optimizer", "sgd", "--tendency", "calibrated",
                              "--seed", "3", "--out", "x"])
    config = cli.preset_config(args, seed=args.seed)
    assert (config.batch_size, config.optimizer, config.tendency_loss, config.seed) == (6, "sgd", "both", 3)
    assert args.cache is None and not args.embedded  # the embedded dataset, as for train
    for refused in (["--lambdas", "0.2", "0.3", "0.5"], ["--seeds", "0", "1"], ["--embedded", "--cache", "c"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*refused, "--out", "x"])
    errors = capsys.readouterr().err
    assert "unrecognized arguments: --lambdas" in errors and "--cache: not allowed with argument --embedded" in errors


@pytest.mark.slow
def test_nested_objective_never_reads_the_test_subject(tmp_path, capsys, synthetic_cache):
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02", "sub03"], clips_per_subject=3)
    index = cache.read_index(cache_dir)
    for file in index.loc[index["subject"] == "sub01", "file"]:  # fold 0's test subject: unreadable
        (cache_dir / file).write_bytes(b"")
    out = tmp_path / "runs" / "nested"
    args = ["--cache", str(cache_dir), "--preset", "tiny", "--epochs", "1", "--step", "0.5", "--folds", "0",
            "--max-trials", "1", "--verbose", "0", "--out", str(out)]
    assert grid.main(args) == 0
    table = pd.read_csv(out / "trials.csv")
    assert table[["lambda1", "lambda2", "lambda3", "status"]].values.tolist() == [[0.0, 0.0, 1.0, "COMPLETED"]]
    (predictions,) = out.glob("trial_*/loso/folds/00_sub01/predictions.csv")
    clips = pd.read_csv(predictions, dtype={"subject": str})
    (validation_subject,) = set(clips["subject"])
    assert validation_subject in {"sub02", "sub03"} and len(clips) == 3
    # The score is the validation subject's accuracy, recomputed from its predictions.
    assert table[search.OBJECTIVE].item() == pytest.approx((clips["label"] == clips["pred"]).mean())
    printed = capsys.readouterr().out
    assert "nested" in (out / "trials.md").read_text() and "Best λ = (0.0, 0.0, 1.0)" in printed
    assert f"#0 ({validation_subject}): acc" in printed and "(sub01): acc" not in printed  # named by who scored it
    other_folds = [a if a != "0" else "1" for a in args]
    with pytest.raises(SystemExit) as stop:
        grid.main(other_folds)
    assert stop.value.code == 2
    assert "folds: [0] (search) != [1] (now)" in capsys.readouterr().err


@pytest.mark.slow
def test_loso_test_objective_is_labelled(tmp_path, capsys, synthetic_cache):
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02"])
    out = tmp_path / "runs" / "t"
    assert grid.main(["--cache", str(cache_dir), "--preset", "tiny", "--epochs", "1", "--step", "0.5", "--folds", "0",
                      "--max-trials", "1", "--verbose", "0", "--objective", "loso-test", "--out", str(out)]) == 0
    (predictions,) = out.glob("trial_*/loso/folds/00_sub01/predictions.csv")
    clips = pd.read_csv(predictions)
    assert set(clips["subject"]) == {"sub01"}
    assert pd.read_csv(out / "trials.csv")[search.OBJECTIVE].item() == pytest.approx(
        (clips["label"] == clips["pred"]).mean())
    for file in ("trials.md", "best.json"):
        assert "SELECTED ON THE TEST SUBJECTS" in (out / file).read_text()
