"""A preset that does not fit the cache's image size is a one-line error at the start; the run's time estimate."""

import re

import pytest

from cmnet_keras.commands import train
from cmnet_keras.config import get_config
from cmnet_keras.data.cache_fit import CacheMismatchError
from cmnet_keras.data.folds import loso_folds
from cmnet_keras.models import build_cmnet

SUBJECTS = ["s1", "s2", "s3"]


@pytest.fixture(scope="module")
def cache_32px(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("fit") / "cache", SUBJECTS)  # 32 px, 16 frames: the tiny preset's


def _one_line_error(capsys):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out, captured.err
    return lines[0]


def test_train_with_a_preset_of_another_size_stops_at_once(cache_32px, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        train.main(["--cache", str(cache_32px), "--preset", "demo", "--out", str(out)])
    assert stop.value.code == 2
    line = _one_line_error(capsys)
    assert f"cache {cache_32px} holds 16 frames of 32 px" in line
    assert "the run needs 16 frames of 64 px (preset demo)" in line
    assert "use --preset tiny" in line
    assert "python -m cmnet_keras.preprocess --dataset synthetic" in line and "--size 64 --frames 16" in line
    assert not out.exists()


def test_tuner_with_a_preset_of_another_size_stops_at_once(cache_32px, tmp_path, capsys):
    from cmnet_keras.commands import grid

    with pytest.raises(SystemExit) as stop:
        grid.main(["--cache", str(cache_32px), "--preset", "paper", "--out", str(tmp_path / "search")])
    assert stop.value.code == 2
    line = _one_line_error(capsys)
    assert "holds 16 frames of 32 px, the run needs 16 frames of 224 px (preset paper): use --preset tiny" in line


@pytest.mark.backend
def test_library_folds_and_fit_check_the_config(cache_32px):
    config = get_config("tiny", image_size=48)  # no preset has 48 px
    with pytest.raises(CacheMismatchError, match="holds 16 frames of 32 px, the run needs 16 frames of 48 px: use"):
        loso_folds(cache_32px, batch_size=2, config=config)
    fold = next(loso_folds(cache_32px, batch_size=2))
    model = build_cmnet(config)
    with pytest.raises(CacheMismatchError, match="--size 48 --frames 16"):
        model.fit(fold, epochs=1, verbose=0)
    with pytest.raises(CacheMismatchError, match="use --preset tiny"):
        model.evaluate(fold, verbose=0)


def test_run_prints_its_estimate_after_the_first_epoch(cache_32px, tmp_path, capsys):
    train.main(["--cache", str(cache_32px), "--preset", "tiny", "--epochs", "2", "--folds", "0-1", "--verbose", "0",
                "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    # 2 subjects x 2 clips train per fold, batch 2: 2 steps an epoch; after epoch 1 of fold 1 of 2:
    # 1 epoch of this fold + 2 of the next = 3 epochs = 6 steps
    estimates = re.findall(r"(\d+) ms a step \(median of epoch 1's 2 steps\): about (\d+)m(\d\d)s of training left "
                           r"in this run \(6 steps: 2 folds x 2 epochs x 2 steps, this epoch done\)", out)
    assert len(estimates) == 1, out
    assert out.count("ETA") == 2
