"""Two MultiWorkerMirroredStrategy workers on loopback ports train a fold like one process (issue 12, item 4)."""

import json
import pathlib
import sys

import keras
import numpy as np
import pytest

from cmnet_keras import distribute
from fixtures import REPO, REPO_ENV, run_ok
from killharness import kill_and_resume, leftovers

PAIR = [sys.executable, str(REPO / "tests" / "workerpair.py")]
FOLD = "folds/00_sub01"
EPOCHS = 2
# Nothing random, as in test_train's replica test: deterministic sampler, no augmentation, prototype
# noise times eta ~ 1e-6. Global batch 4: 2 clips per worker, 2 steps an epoch over the fold's 8 training clips.
WORKER = f"""
import sys
from cmnet_keras import get_config
from cmnet_keras.commands import cli
from cmnet_keras.records import RunOptions
from cmnet_keras.training import run_loso

config = get_config("tiny", sampler="deterministic", jitter_rate=0.0, grayscale_rate=0.0, blur_rate=0.0,
                    eta_init=1e-6, sync_batchnorm=True, learning_rate=0.01, epochs={EPOCHS}, batch_size=4, seed=1)


def main():  # exit code 0 when done: `exit_on_error` exits with what main returns
    run_loso(sys.argv[1], config, sys.argv[2],
             RunOptions(folds=[0], strategy=sys.argv[3], verbose=0, checkpoint_every=1))


cli.exit_on_error(main)
"""


@pytest.mark.parametrize("cluster, task, chief", [
    ({"worker": ["localhost:1", "localhost:2"]}, {"type": "worker", "index": 0}, True),
    ({"worker": ["localhost:1", "localhost:2"]}, {"type": "worker", "index": 1}, False),
    ({"chief": ["localhost:1"], "worker": ["localhost:2"]}, {"type": "chief", "index": 0}, True),
    ({"chief": ["localhost:1"], "worker": ["localhost:2"]}, {"type": "worker", "index": 0}, False),
])
def test_the_chief_is_told_by_tf_config(monkeypatch, cluster, task, chief):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert distribute.is_chief("multiworker") is chief
    assert distribute.is_chief("none")


def _worker(cache_dir, out, strategy):
    return [sys.executable, "-c", WORKER, str(cache_dir), str(out), strategy]


def _run(cmd, temp):
    temp.mkdir()
    run_ok(cmd, env=dict(REPO_ENV, TMPDIR=str(temp)), timeout=600)


def _outcome(run_dir):
    """The fold result without its wall-clock time."""
    result = json.loads((pathlib.Path(run_dir) / FOLD / "result.json").read_text())
    return {k: v for k, v in result.items() if k != "train_seconds"}


def _files(run_dir):
    return sorted(p.relative_to(run_dir).as_posix() for p in pathlib.Path(run_dir).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_cache):
    """One process (no strategy) and two workers, each training fold 0 for 2 epochs with global batch 4."""
    root = tmp_path_factory.mktemp("multiworker")
    cache_dir = synthetic_cache(root / "cache", ["sub01", "sub02", "sub10"], clips_per_subject=4)
    _run(_worker(cache_dir, root / "one", "none"), root / "tmp_one")
    _run([*PAIR, "2", *_worker(cache_dir, root / "two", "multiworker")], root / "tmp_two")
    return root, cache_dir


@pytest.mark.slow
def test_two_workers_train_to_the_weights_of_one_process(runs):
    root, _ = runs
    one = keras.models.load_model(root / "one" / FOLD / f"epoch_{EPOCHS:03d}.keras")
    two = keras.models.load_model(root / "two" / FOLD / f"epoch_{EPOCHS:03d}.keras")
    assert int(one.optimizer.iterations) == int(two.optimizer.iterations) == 2 * EPOCHS
    # Only the summation order differs (gradients and BatchNorm moments summed over the workers instead of
    # over one batch tensor): float32 round-off, grown by 4 steps of training (measured 7e-6, a BatchNorm
    # moving variance; 3e-6 in trainable weights; at learning rate 0.05 it grows to 1e-3).
    differences = {v.path: float(np.abs(a - b).max()) for v, a, b in zip(one.weights, one.get_weights(),
                                                                          two.get_weights())}
    print("largest weight difference:", max(differences.values()))
    assert max(differences.values()) <= 5e-5, differences
    history_one, history_two = _outcome(root / "one")["history"], _outcome(root / "two")["history"]
    assert abs(history_one["loss"][0] - history_one["loss"][-1]) > 1e-3  # 50 times the losses' tolerance
    for key in ("loss", "ce_loss", "id_loss", "wrst_loss"):  # measured 3e-6 at most (L_Wrst)
        np.testing.assert_allclose(history_two[key], history_one[key], atol=2e-5, rtol=0, err_msg=key)
    probs = [[c["probs"] for c in _outcome(root / run)["predictions"]] for run in ("one", "two")]
    np.testing.assert_allclose(probs[1], probs[0], atol=1e-5)


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(runs):
    root, _ = runs
    assert _files(root / "two") == _files(root / "one")  # no workers/ folder, nothing else
    assert list((root / "tmp_two").iterdir()) == []  # the other worker's temp folder is gone


@pytest.mark.slow
def test_killed_worker_pair_resumes_to_the_uninterrupted_result(runs):
    root, cache_dir = runs
    out = root / "killed"
    (root / "tmp_killed").mkdir()
    state = out / FOLD / "state.json"

    def checkpointed(pid):  # kill only once an epoch checkpoint is written: mid-fold
        return state.is_file()

    attempts = kill_and_resume([*PAIR, "2", *_worker(cache_dir, out, "multiworker")], kills=1, seed=0,
                               delay=(0.0, 1.0), env=dict(REPO_ENV, TMPDIR=str(root / "tmp_killed")), cwd=REPO,
                               timeout=600, ready=checkpointed, max_starts=2)
    assert attempts[0].killed and attempts[-1].returncode == 0, attempts[-1].output[-3000:]
    assert "resuming after epoch" in attempts[-1].output
    assert leftovers(out) == []
    assert _outcome(out) == _outcome(root / "two")
