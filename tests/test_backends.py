"""The main job under JAX and PyTorch in a Python where `import tensorflow` fails (issue 22)."""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from cmnet_keras import inference, optional, saved_model
from fixtures import REPO, no_tensorflow_env, run_ok

BACKENDS = ("jax", "torch")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_runs_without_tensorflow(tmp_path, synthetic_cache, backend):
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02", "sub10"])
    env = no_tensorflow_env(tmp_path / "site", backend)
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert blocked.returncode == 1 and "ModuleNotFoundError" in blocked.stderr
    out = tmp_path / "run"
    run_ok([sys.executable, "-m", "cmnet_keras.train", "--cache", str(cache_dir), "--preset", "tiny",
            "--epochs", "2", "--folds", "0-1", "--seed", "3", "--verbose", "0", "--out", str(out)], env=env)
    assert json.loads((out / "config.json").read_text())["versions"]["keras_backend"] == backend
    results = json.loads((out / "results.json").read_text())
    assert [f["subject"] for f in results["folds"]] == ["sub01", "sub02"] and results["missing_subjects"] == ["sub10"]
    assert all(f["epochs"] == 2 and f["n"] == 2 for f in results["folds"])
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    assert sorted(predictions["subject"]) == ["sub01", "sub01", "sub02", "sub02"]
    assert results["pooled"]["n"] == 4
    assert results["pooled"]["accuracy"] == pytest.approx(skm.accuracy_score(predictions["label"],
                                                                             predictions["pred"]))
    expected = skm.confusion_matrix(predictions["label"], predictions["pred"], labels=[0, 1, 2])
    np.testing.assert_array_equal(results["confusion_matrix"], expected)
    for fold in sorted(out.glob("folds/*/result.json")):
        history = json.loads(fold.read_text())["history"]
        assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    assert (out / "confusion_matrix.png").is_file() and (out / "intensity.png").is_file()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensorflow_only_strategy_is_a_one_line_error(tmp_path, synthetic_cache, backend):
    cache_dir = synthetic_cache(tmp_path / "cache", ["sub01", "sub02"])
    done = subprocess.run([sys.executable, "-m", "cmnet_keras.train", "--cache", str(cache_dir), "--preset", "tiny",
                           "--strategy", "mirrored", "--out", str(tmp_path / "run")],
                          env=no_tensorflow_env(tmp_path / "site", backend), cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: --strategy mirrored (tf.distribute) is TensorFlow-only: run it with KERAS_BACKEND=tensorflow "
        f"(the backend is {backend!r})"]


@pytest.mark.backend
def test_tensorflow_only_features_say_so_under_another_backend(tmp_path):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        assert optional.tensorflow_only("SavedModel export").__name__ == "tensorflow"
        return
    message = f"is TensorFlow-only: run it with KERAS_BACKEND=tensorflow \\(the backend is '{backend}'\\)$"
    with pytest.raises(optional.TensorFlowOnlyError, match=f"^SavedModel export {message}"):
        saved_model.export_saved_model(None, tmp_path)
    folder = re.escape(str(tmp_path))
    with pytest.raises(optional.TensorFlowOnlyError, match=f"^a SavedModel \\({folder}\\) {message}"):
        inference.SavedModelPredictor(tmp_path)
