"""LOSO folds, the training command, resume, reproducibility and merge, on a tiny synthetic cache."""

import argparse
import json
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from cmnet_keras import get_config, reports
from cmnet_keras.commands import ablation, cli, train
from cmnet_keras.config import tendency_setting
from cmnet_keras.data import cache
from cmnet_keras.data.folds import fold_subjects, loso_folds
from cmnet_keras.records import RunResult
from cmnet_keras.training import ConfigMismatchError, parse_folds, run_dir
from cmnet_keras.training.ablation import loss_rows
from cmnet_keras.training.seeds import seed_statistics
from cmnet_keras.training.merge import merge_runs

@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory, synthetic_cache):
    return synthetic_cache(tmp_path_factory.mktemp("cache"), ["sub01", "sub02", "sub10"])


def _args(cache_dir, out, *extra):
    return ["--cache", str(cache_dir), "--preset", "tiny", "--epochs", "2", "--validation-subjects", "1",
            "--seed", "3", "--verbose", "0", "--out", str(out), *extra]


def _fold_table(run_dir):
    """(fold, subject, n, accuracy, f1, labels, preds, probs) per finished fold."""
    return [(r.fold, r.subject, r.n, r.accuracy, r.f1, [c["label"] for c in r.predictions],
             [c["pred"] for c in r.predictions], [c["probs"] for c in r.predictions])
            for r in reports.load_fold_results(run_dir)]


@pytest.fixture(scope="module")
def full_run(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    train.main(_args(tiny_cache, out))
    return out


def test_loso_folds_hold_out_one_subject(tmp_path, synthetic_cache):
    cache_dir = synthetic_cache(tmp_path / "c", ["s3", "s1", "s2", "s10"], clips_per_subject=3)
    index = cache.read_index(cache_dir)
    assert fold_subjects(index) == ["s1", "s2", "s3", "s10"]
    folds = list(loso_folds(cache_dir, batch_size=2, seed=5, validation_subjects=2))
    assert [f.subject for f in folds] == ["s1", "s2", "s3", "s10"]
    clip_subject = {cache.load_clip(cache_dir, row)["frames"].tobytes(): row["subject"] for _, row in index.iterrows()}
    for fold in folds:
        val_clips = [y for _, y in fold.validation.unbatch().as_numpy_iterator()]
        val_subjects = {clip_subject[x["frames"].tobytes()] for x, _ in fold.validation.unbatch().as_numpy_iterator()}
        assert len(val_subjects) == 2 and fold.subject not in val_subjects
        assert not val_subjects & set(fold.train_index["subject"])
        test_labels = [int(y) for _, y in fold.test.unbatch().as_numpy_iterator()]
        assert set(fold.test_index["subject"]) == {fold.subject}
        assert test_labels == fold.test_index["label"].tolist()
        assert fold.subject not in set(fold.train_index["subject"])
        train_subjects = set(fold.train_index["subject"])
        assert len(train_subjects) == 1 and len(val_clips) == 2 * 3
        assert len(fold.train_index) + len(val_clips) + len(fold.test_index) == len(index)
        assert sum(1 for _ in fold.train.unbatch()) == len(fold.train_index)
    again = list(loso_folds(cache_dir, batch_size=2, seed=5, subjects=["s3"], validation_subjects=2))
    assert again[0].train_index.equals(folds[2].train_index)
    assert [f.subject for f in loso_folds(cache_dir, subjects=["s10"])] == ["s10"]
    assert next(iter(loso_folds(cache_dir))).validation is None
    with pytest.raises(ValueError, match=r"\['s7'\] are not in"):
        loso_folds(cache_dir, subjects=["s7"])
    with pytest.raises(ValueError, match=r"validation_subjects must be in \[0, 2\].*got 3"):
        loso_folds(cache_dir, validation_subjects=3)


def test_parse_folds():
    assert parse_folds("0-2,5", 26) == [0, 1, 2, 5]
    assert parse_folds(None, 3) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"0\.\.25, got \[26\]"):
        parse_folds("20-26", 26)
    with pytest.raises(ValueError, match="cannot read 'x'"):
        parse_folds("1,x", 26)


@pytest.mark.slow
def test_run_writes_results_and_plots(full_run, tiny_cache):
    config = json.loads((full_run / "config.json").read_text())
    assert config["settings"]["config"]["seed"] == 3 and config["settings"]["config"]["epochs"] == 2
    assert config["settings"]["config"]["class_names"] == cache.read_meta(tiny_cache)["class_names"]
    assert config["versions"]["keras"] and "--preset" in config["command"]
    # The tiny preset keeps the paper's tendency fields (config.TENDENCY["paper"], written out here by hand).
    assert config["settings"]["config"]["tendency_loss"] == "rank_sum"
    assert config["settings"]["config"]["ice_input"] == "frame"
    assert config["tendency"].startswith("paper (the paper's L_Wrst")
    assert json.loads((full_run / "results.json").read_text())["tendency_setting"] == "paper"
    fold_dirs = sorted(p.name for p in (full_run / "folds").iterdir())
    assert fold_dirs == ["00_sub01", "01_sub02", "02_sub10"]
    for name in fold_dirs:
        for file in ("result.json", "predictions.csv", "training_curves.png", "intensity.png", "epoch_002.keras"):
            assert (full_run / "folds" / name / file).stat().st_size > 0
    results = json.loads((full_run / "results.json").read_text())
    assert results["complete"] and len(results["folds"]) == 3
    table = _fold_table(full_run)
    for fold, subject, n, acc, f1, labels, preds, probs in table:
        assert n == 2 and np.allclose(np.sum(probs, axis=1), 1, atol=1e-4)
        assert acc == pytest.approx(skm.accuracy_score(labels, preds))
        p = skm.precision_score(labels, preds, average="macro", zero_division=0)
        r = skm.recall_score(labels, preds, average="macro", zero_division=0)
        assert f1 == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
        fold_result = next(r for r in reports.load_fold_results(full_run) if r.fold == fold)
        p = skm.precision_score(labels, preds, labels=range(3), average="macro", zero_division=0)
        r = skm.recall_score(labels, preds, labels=range(3), average="macro", zero_division=0)
        assert fold_result.f1_all == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    labels = sum((t[5] for t in table), [])
    preds = sum((t[6] for t in table), [])
    assert results["pooled"]["uf1"] == pytest.approx(skm.f1_score(labels, preds, average="macro", zero_division=0))
    assert results["pooled"]["uar"] == pytest.approx(skm.balanced_accuracy_score(labels, preds))
    assert results["paper"]["accuracy"] == pytest.approx(np.mean([t[3] for t in table]))
    clips = [c for r in reports.load_fold_results(full_run) for c in r.predictions]
    for clip in clips:
        rho = stats.spearmanr(clip["intensity"], clip["prototype"]).statistic
        assert clip["rho"] == pytest.approx(rho, abs=1e-6) or (np.isnan(rho) and np.isnan(clip["rho"]))
        assert clip["abs_z"] == pytest.approx(abs(stats.ranksums(clip["intensity"], clip["prototype"]).statistic))
    assert results["tendency"]["n"] == 6
    assert results["tendency"]["abs_z"] == pytest.approx(np.mean([c["abs_z"] for c in clips]))
    rows = pd.read_csv(full_run / "results.csv")
    assert set(rows["protocol"]) == {"paper", "pooled", "tendency"}
    assert len(pd.read_csv(full_run / "predictions.csv")) == 6
    assert len(pd.read_csv(full_run / "folds.csv")) == 3
    for png in ("confusion_matrix.png", "intensity.png"):
        assert (full_run / png).read_bytes()[:4] == b"\x89PNG"
    history = json.loads((full_run / "folds" / "00_sub01" / "result.json").read_text())["history"]
    assert {"loss", "id_loss", "wrst_loss", "ce_loss", "accuracy", "val_loss"} <= set(history)
    assert all(len(v) == 2 for v in history.values())


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_split_interrupted_resumed_and_merged_runs_equal_one_run(full_run, tiny_cache, tmp_path, monkeypatch):
    save = run_dir.save_epoch_checkpoint
    saved = []

    def save_then_maybe_stop(model, fold_dir, state):
        save(model, fold_dir, state)
        saved.append((fold_dir.name, state["epoch"]))
        if (fold_dir.name, state["epoch"]) == ("02_sub10", 1):
            raise Interrupted

    monkeypatch.setattr(run_dir, "save_epoch_checkpoint", save_then_maybe_stop)
    train.main(_args(tiny_cache, tmp_path / "a", "--folds", "0"))
    assert saved == [("00_sub01", 2)]  # default interval 5 > 2 epochs: only after the last epoch
    every_epoch = ("--folds", "1-2", "--checkpoint-every", "1")
    with pytest.raises(Interrupted):
        train.main(_args(tiny_cache, tmp_path / "b", *every_epoch))
    finished = tmp_path / "b" / "folds" / "01_sub02" / "result.json"
    mtime = finished.stat().st_mtime_ns
    assert not (tmp_path / "b" / "folds" / "02_sub10" / "result.json").exists()
    assert [p.name for p in (tmp_path / "b" / "folds" / "02_sub10").glob("*.keras")] == ["epoch_001.keras"]
    saved.clear()
    train.main(_args(tiny_cache, tmp_path / "b", *every_epoch))
    assert saved == [("02_sub10", 2)]  # only the last epoch of the unfinished fold
    assert finished.stat().st_mtime_ns == mtime

    merged = merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    single = json.loads((full_run / "results.json").read_text())
    assert merged.complete
    assert _fold_table(tmp_path / "a") + _fold_table(tmp_path / "b") == _fold_table(full_run)
    for protocol in ("paper", "pooled"):
        assert getattr(merged, protocol) == single[protocol]
    assert (tmp_path / "merged" / "confusion_matrix.png").is_file()


@pytest.mark.slow
def test_resume_with_other_config_is_refused(full_run, tiny_cache, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(_args(tiny_cache, full_run, "--epochs", "3", "--sampler", "random"))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "config.epochs: 2 (run) != 3 (now)" in message
    assert "config.sampler: 'probabilistic' (run) != 'random' (now)" in message


@pytest.mark.slow
def test_merge_refuses_mismatched_runs(full_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(full_run, other)
    record = json.loads((other / "config.json").read_text())
    record["settings"]["config"]["lambdas"] = [0.0, 0.0, 1.0]
    (other / "config.json").write_text(json.dumps(record))
    with pytest.raises(ConfigMismatchError) as error:
        merge_runs([full_run, other], tmp_path / "merged")
    assert f"config.lambdas: [0.0, 0.0, 1.0] ({other}) != [0.07, 0.71, 0.22] ({full_run})" in str(error.value)
    assert not (tmp_path / "merged").exists()


def test_loss_table_keeps_the_remaining_paper_weights_or_renormalises_them():
    rows = {folder: changes for _, folder, changes in loss_rows((0.07, 0.71, 0.22))}
    assert rows["lc"] == {"lambdas": (0.0, 0.0, 0.22), "lambda_ablation": True}
    assert rows["lc_wrst"] == {"lambdas": (0.0, 0.71, 0.22), "lambda_ablation": True}
    assert rows["lc_id"] == {"lambdas": (0.07, 0.0, 0.22), "lambda_ablation": True}
    assert rows["lc_id_wrst"] == {"lambdas": (0.07, 0.71, 0.22), "lambda_ablation": False}
    for changes in rows.values():  # every row is a valid config; without the flag it is refused
        get_config("tiny", **changes)
    with pytest.raises(ValueError, match=r"sum to 1 .*\(0.0, 0.0, 0.22\).*lambda_ablation=True"):
        get_config("tiny", lambdas=(0.0, 0.0, 0.22))
    rows = {folder: changes["lambdas"] for _, folder, changes in loss_rows((0.07, 0.71, 0.22), renormalise=True)}
    np.testing.assert_allclose(rows["lc"], (0, 0, 1))
    np.testing.assert_allclose(rows["lc_wrst"], (0, 0.71 / 0.93, 0.22 / 0.93))
    np.testing.assert_allclose(rows["lc_id"], (0.07 / 0.29, 0, 0.22 / 0.29))
    np.testing.assert_allclose(rows["lc_id_wrst"], (0.07, 0.71, 0.22))
    with pytest.raises(ValueError, match=r"got lambdas \(0.5, 0.5, 0.0\)"):
        loss_rows((0.5, 0.5, 0.0))


def test_seed_statistics_give_the_mean_and_sample_std_of_defined_values():
    uf1, rho = [0.4041, 0.3133, 0.4154], [float("nan"), 0.08, 0.04]
    results = {seed: RunResult(paper={}, pooled={"uf1": u}, tendency={"rho": r})
               for seed, u, r in zip((0, 1, 2), uf1, rho)}
    got = seed_statistics(results)
    assert set(got) == {"pooled.uf1", "tendency.rho"}
    assert got["pooled.uf1"]["mean"] == pytest.approx(statistics.mean(uf1))
    assert got["pooled.uf1"]["std"] == pytest.approx(0.0559, abs=1e-4)  # by hand: sqrt(62.6e-4 / 2)
    assert got["tendency.rho"]["mean"] == pytest.approx(0.06)
    assert got["tendency.rho"]["std"] == pytest.approx(statistics.stdev([0.08, 0.04]))
    assert seed_statistics({0: RunResult(paper={}, pooled={"uf1": 0.4}, tendency={})})["pooled.uf1"]["std"] == 0.0


def test_optimizer_and_clip_flips_from_the_command_line(capsys):
    parser = argparse.ArgumentParser()
    cli.add_training_arguments(parser)
    config = cli.config_from_args(parser.parse_args(["--preset", "demo", "--optimizer", "sgd",
                                                     "--clip-flip-rate", "0.5"]))
    assert (config.optimizer, config.clip_flip_rate) == ("sgd", 0.5)
    assert (get_config("demo").optimizer, get_config("demo").clip_flip_rate) == ("adamw", 0.0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--optimizer", "adam"])
    assert "invalid choice: 'adam'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="clip_flip_rate.*1.5"):
        cli.config_from_args(parser.parse_args(["--clip-flip-rate", "1.5"]))
    assert cli.preset_label("demo", config) == "demo (clip_flip_rate=0.5, optimizer=sgd)"
    assert cli.preset_label("demo", get_config("demo", seed=3)) == "demo"


@pytest.mark.slow
def test_sampler_table_over_seeds_with_paired_tests(tiny_cache, tmp_path, capsys):
    ablation.main(["--table", "sampler", "--cache", str(tiny_cache), "--preset", "tiny", "--epochs", "1",
                   "--folds", "0-1", "--seeds", "0", "1", "--verbose", "0", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / "table.csv")
    assert table["setting"].tolist() == ["deterministic", "random", "probabilistic"]

    def fold_accuracies(folder):
        return [r.accuracy for seed in (0, 1) for r in reports.load_fold_results(tmp_path / folder / f"seed{seed}")]

    reference = fold_accuracies("probabilistic")
    for row in table.itertuples():
        runs = [json.loads((tmp_path / row.folder / f"seed{s}" / "results.json").read_text()) for s in (0, 1)]
        accuracy = [r["paper"]["accuracy"] for r in runs]
        assert row.paper_accuracy_mean == pytest.approx(np.mean(accuracy))
        assert row.paper_accuracy_std == pytest.approx(statistics.stdev(accuracy))
        assert row.pooled_uf1_mean == pytest.approx(np.mean([r["pooled"]["uf1"] for r in runs]))
        for seed in (0, 1):
            settings = json.loads((tmp_path / row.folder / f"seed{seed}" / "config.json").read_text())["settings"]
            assert (settings["config"]["sampler"], settings["config"]["seed"]) == (row.setting, seed)
        scores = fold_accuracies(row.folder)
        if row.folder == "probabilistic" or scores == reference:
            assert np.isnan(row.p_accuracy)
        else:
            assert row.p_accuracy == pytest.approx(stats.wilcoxon(scores, reference).pvalue)
    printed = capsys.readouterr().out
    assert "| Sampling | Acc | F1-score |" in printed and "| Deterministic |" in printed
    assert (tmp_path / "table.md").read_text() in printed


MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cmnet_keras.commands import train
train.main(sys.argv[1:])
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_replicas(tiny_cache, tmp_path):
    out = tmp_path / "mirrored"
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, *_args(tiny_cache, out, "--epochs", "1", "--folds",
                                                                         "0", "--strategy", "mirrored-cpu")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "strategy mirrored-cpu: 2 replicas in sync" in done.stdout
    assert json.loads((out / "config.json").read_text())["settings"]["config"]["sync_batchnorm"] is True
    result = json.loads((out / "folds" / "00_sub01" / "result.json").read_text())
    assert result["n"] == 2 and len(result["history"]["ce_loss"]) == 1


# Logical devices must be configured before TensorFlow initialises: a process of its own.
REPLICA_SCRIPT = """
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from cmnet_keras import build_cmnet, get_config
from cmnet_keras.layers import ClipFlip, IntensityPrototype, NegativeSampler, ViewAugmentation

keras.utils.set_random_seed(0)
# Nothing random: deterministic sampler, no augmentation, prototype noise times eta ~ 1e-6.
cfg = get_config("tiny", sampler="deterministic", jitter_rate=0.0, grayscale_rate=0.0, blur_rate=0.0,
                 eta_init=1e-6, sync_batchnorm=True, learning_rate=0.05)
rng = np.random.default_rng(0)
x = {"frames": rng.integers(0, 256, (4, 16, 32, 32, 3)).astype("uint8"), "apex": np.array([0, 5, 9, 15], "int32")}
y, w = np.array([0, 1, 2, 1], "int32"), np.array([1.0, 2.0, 0.5, 1.0], "float32")
start = build_cmnet(cfg).get_weights()
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"start": [a.tolist() for a in start]}
for name, strategy in (("one", tf.distribute.get_strategy()), ("two", mirrored)):
    with strategy.scope():
        model = build_cmnet(cfg)
        model.set_weights(start)
    history = model.fit(x, y, sample_weight=w, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    out[name] = {"replicas": strategy.num_replicas_in_sync, "loss": history["loss"][0],
                 "weights": [a.tolist() for a in model.get_weights()], "paths": [v.path for v in model.weights]}

# Each replica draws its own random stream: the same input, different draws.
with mirrored.scope():
    layers = [IntensityPrototype(seed=0), NegativeSampler("random", 4, seed=0), ViewAugmentation(seed=0),
              ClipFlip(0.5, seed=0)]
inputs = [np.array([3, 7], "int32"), rng.normal(size=(2, 16, 8)).astype("float32"),
          rng.uniform(size=(2, 8, 8, 3)).astype("float32"), rng.uniform(size=(32, 2, 4, 4, 3)).astype("float32")]
out["replicas_differ"] = {}
for layer, value in zip(layers, inputs):
    draws = mirrored.run(tf.function(lambda v, layer=layer: layer(v, training=True)), args=(value,))
    a, b = (np.asarray(t) for t in mirrored.experimental_local_results(draws))
    out["replicas_differ"][type(layer).__name__] = not np.array_equal(a, b)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_one_step_on_two_replicas_equals_one_step_on_one():
    """MirroredStrategy over 2 logical CPUs, global batch 4 (2 per replica), synchronised BatchNorm, sample weights."""
    done = subprocess.run([sys.executable, "-c", REPLICA_SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert (out["one"]["replicas"], out["two"]["replicas"]) == (1, 2)
    start = [np.asarray(a) for a in out["start"]]
    one, two = ([np.asarray(a) for a in out[k]["weights"]] for k in ("one", "two"))
    # The step moves the weights far more than the tolerance (a replica-count error would show).
    assert max(np.abs(a - b).max() for a, b in zip(one, start)) > 0.05
    for path, a, b in zip(out["one"]["paths"], one, two):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0, err_msg=path)
    assert out["two"]["loss"] == pytest.approx(out["one"]["loss"], rel=1e-5)
    assert out["replicas_differ"] == {"IntensityPrototype": True, "NegativeSampler": True, "ViewAugmentation": True,
                                      "ClipFlip": True}


@pytest.mark.backend
def test_final_model_is_trained_on_every_clip_and_loads(tiny_cache, tmp_path):
    out = tmp_path / "final"
    train.main(_args(tiny_cache, out, "--epochs", "1", "--folds", "0", "--final-model"))
    import keras

    model = keras.models.load_model(out / "model.keras")
    assert list(model.config.class_names) == cache.read_meta(tiny_cache)["class_names"]
    frames = np.stack([cache.load_clip(tiny_cache, f)["frames"] for f in cache.read_index(tiny_cache).file])
    probs = model.predict({"frames": frames}, verbose=0)["probs"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # One optimizer step per batch of the whole cache (every subject), one epoch.
    assert int(model.optimizer.iterations) == -(-len(frames) // get_config("tiny").batch_size)


@pytest.mark.slow
def test_input_pipeline_error_ends_the_process(tiny_cache, tmp_path):
    broken = shutil.copytree(tiny_cache, tmp_path / "cache")
    victim = broken / cache.read_index(broken)["file"].iloc[-1]
    victim.write_bytes(victim.read_bytes()[:100])
    done = subprocess.run([sys.executable, "-m", "cmnet_keras.train", *_args(broken, tmp_path / "run", "--folds", "0")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert victim.name in done.stderr


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_runs_train_with_finite_losses(tiny_cache, tmp_path, precision):
    import keras

    out = tmp_path / precision
    train.main(_args(tiny_cache, out, "--epochs", "1", "--folds", "0", "--mixed-precision", precision))
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    result = json.loads((out / "folds" / "00_sub01" / "result.json").read_text())
    assert all(np.isfinite(v).all() for v in result["history"].values())
    assert np.allclose(np.sum([c["probs"] for c in result["predictions"]], axis=1), 1, atol=1e-3)
    model = keras.models.load_model(out / "folds" / "00_sub01" / "epoch_001.keras")
    assert model.dtype_policy.name == f"mixed_{precision}"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "float16")
    assert json.loads((out / "config.json").read_text())["settings"]["mixed_precision"] == precision


def test_tendency_settings_from_the_command_line():
    parser = argparse.ArgumentParser()
    cli.add_training_arguments(parser)
    paper = cli.config_from_args(parser.parse_args(["--preset", "demo", "--tendency", "paper"]))
    assert (paper.tendency_loss, paper.squeeze_bias_init, paper.squeeze_kernel_init, paper.ice_input) == (
        "rank_sum", 0.0, "glorot_uniform", "frame")
    calibrated = cli.config_from_args(parser.parse_args(["--preset", "paper", "--tendency", "calibrated"]))
    assert (calibrated.tendency_loss, calibrated.squeeze_bias_init, calibrated.squeeze_kernel_init,
            calibrated.ice_input) == ("both", pytest.approx((1 + 0.2) / 2), "zeros", "difference")
    assert calibrated.image_size == 224 and calibrated.lambdas == (0.07, 0.71, 0.22)
    assert get_config("paper").tendency_loss == "rank_sum" and get_config("paper").ice_input == "frame"


def test_tendency_setting_is_named_from_the_fields():
    base = get_config("tiny")
    calibrated = base.replace(tendency_loss="both", squeeze_bias_init=(1 + base.epsilon) / 2,
                              squeeze_kernel_init="zeros", ice_input="difference")
    assert tendency_setting(base) == "paper"
    assert tendency_setting(calibrated) == "calibrated"
    assert tendency_setting(calibrated.replace(ice_input="frame")) == "custom"
