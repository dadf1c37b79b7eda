"""The MEGC 2019 composite and cross-dataset runs (issue 13, parts 2 and 3) on trees in the three released layouts.

CASME II: the real annotation rows (/work/shared/data/casme2_annotations.csv) of the
list's clips; SAMM and SMIC-HS: trees built from the list's clip ids. Frames are tiny.
"""

import json
import pathlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from cmnet_keras import metrics, reports
from cmnet_keras.commands import ablation, preprocess, train
from cmnet_keras.data import cache, composite, pipeline
from cmnet_keras.data.folds import loso_folds
from cmnet_keras.records import FoldResult
from cmnet_keras.training.merge import merge_runs
from fixtures import run_preprocess, write_casme2_tree, write_samm_tree, write_smic_tree

SHARED_CASME2 = pathlib.Path("/work/shared/data/casme2_annotations.csv")
# The README's figures (/work/shared/data/README.md): clips per class (negative, positive, surprise) and subjects.
TABLE_COUNTS = {"casme2": (88, 32, 25), "smic": (70, 51, 43), "samm": (91, 26, 15)}
SUBJECTS = {"casme2": 24, "smic": 16, "samm": 28}
SAMM_NEGATIVE = ("Anger", "Contempt", "Disgust", "Fear", "Sadness")


def casme2_rows(clips):
    """The real CASME II annotation rows of the list's CASME II clips (matched by subject and file name)."""
    if not SHARED_CASME2.is_file():
        pytest.skip(f"{SHARED_CASME2} (the CASME II table) is not on this machine")
    table = pd.read_csv(SHARED_CASME2, dtype={"action_units": str})
    table = table.assign(folder=[f"sub{s:02d}" for s in table["subject"]])
    wanted = clips[clips["dataset"] == "casme2"]
    rows = table.merge(wanted, left_on=["folder", "filename"], right_on=["subject", "clip"], suffixes=("", "_list"))
    assert len(rows) == len(wanted)
    return rows[["subject", "filename", "onset", "apex", "offset", "emotion", "action_units"]]


def samm_rows(clips):
    """SAMM sheet rows (as `fixtures.SAMM_ROWS`) of the list's SAMM clips, emotions from their labels, and a row of
    a clip the list leaves out (006_9_9, "Other")."""
    rows = [(int(row.subject), row.clip, 1, 100, 102, 104, 5, "Micro - 1/2", "4", "",
             (SAMM_NEGATIVE[i % len(SAMM_NEGATIVE)], "Happiness", "Surprise")[row.label])
            for i, row in enumerate(clips[clips["dataset"] == "samm"].itertuples())]
    return rows + [(6, "006_9_9", 1, 100, 102, 104, 5, "Micro - 1/2", "4", "", "Other")]


def smic_clips(clips):
    """SMIC_CLIPS-style rows of the list's SMIC-HS clips, with the release's ids (`s1_ne_01` for the list's
    `s01_ne_01`), 5 frames each."""
    return [(re.sub(r"^s0*", "s", row.subject), composite.CLASS_NAMES[row.label],
             re.sub(r"^s0*(\d+)_", r"s\1_", row.clip), 1, 5) for row in clips[clips["dataset"] == "smic"].itertuples()]


def preprocessed_caches(root, clips, size):
    """The three trees written and preprocessed (cropped, `size` px, 16 frames); {dataset: cache folder}."""
    write_casme2_tree(root / "CASME2", casme2_rows(clips), cropped=True, suffix=".png", value=lambda n: (n % 256, 9, 9))
    write_samm_tree(root / "SAMM_release", rows=samm_rows(clips), sheet="csv")
    write_smic_tree(root / "SMIC", smic_clips(clips), variants=["SMIC_all_cropped"])
    caches = {}
    for dataset, tree in (("casme2", "CASME2"), ("samm", "SAMM_release"), ("smic", "SMIC")):
        caches[dataset] = root / f"{dataset}_cache"
        with warnings.catch_warnings():  # CASME II: an apex '/' is estimated (warned)
            warnings.simplefilter("ignore")
            code = run_preprocess(root / tree, caches[dataset], "--all-emotions", dataset=dataset, size=size)
        assert code == 0
    return caches


@pytest.fixture(scope="module")
def full_caches(tmp_path_factory):
    """Caches of every clip of the challenge's list (442) in the three layouts, 8 px frames."""
    return preprocessed_caches(tmp_path_factory.mktemp("trees"), composite.clip_list("challenge"), size=8)


def _counts(folder):
    index = cache.read_index(folder)
    return {d: tuple(int((part["label"] == c).sum()) for c in range(3)) for d, part in index.groupby("dataset")}


@pytest.mark.slow
def test_composite_counts_and_classes_equal_the_challenge(full_caches, tmp_path, capsys):
    summary = composite.build_composite(list(full_caches.values())[::-1], tmp_path / "c442")
    assert _counts(tmp_path / "c442") == {**TABLE_COUNTS, "samm": (92, 26, 15)}  # 032_3_1 added back
    assert summary["clips"] == 442 and sum(summary["subjects"].values()) == 68 == sum(SUBJECTS.values())
    assert summary["missing_clips"] == {"casme2": 0, "samm": 0, "smic": 0}
    assert summary["subjects_without_clips"] == summary["label_disagreements"] == []
    assert pd.read_csv(tmp_path / "c442" / composite.MISSING_FILE).empty
    index = cache.read_index(tmp_path / "c442")
    assert {s.split("/")[0] for s in index["subject"]} == {"casme2", "samm", "smic"}
    assert {"casme2/sub01", "samm/006", "smic/s1"} <= set(index["subject"])
    assert len(set(index["subject"])) == 68
    row = index[index["clip_id"] == "s1_ne_01"].iloc[0]  # the list's s01_ne_01 is the release's s1_ne_01
    assert (row["subject"], row["label"], row["emotion"]) == ("smic/s1", 0, "negative")
    frames = cache.load_clip(tmp_path / "c442", row)["frames"]  # read through the link to the SMIC cache
    np.testing.assert_array_equal(frames, cache.load_clip(full_caches["smic"], "clips/s1/s1_ne_01.raw")["frames"])
    assert "006_9_9" not in set(index["clip_id"])  # SAMM "Other": not in the list
    # The class mapping, independently: CASME II emotions from the real table.
    casme2 = index[index["dataset"] == "casme2"].merge(cache.read_index(full_caches["casme2"]), on="clip_id",
                                                       suffixes=("", "_source"))
    casme2 = casme2[casme2["subject"] == "casme2/" + casme2["subject_source"]]
    expected = casme2["emotion_source"].map({"disgust": 0, "repression": 0, "happiness": 1, "surprise": 2})
    assert len(casme2) == 145 and casme2["label"].tolist() == expected.tolist()

    summary = composite.build_composite(list(full_caches.values()), tmp_path / "c441", clips="table")
    assert _counts(tmp_path / "c441") == TABLE_COUNTS and summary["clips"] == 441
    assert "441 of 441 list clips found, 68 subjects" in capsys.readouterr().out


def _missing(folder):
    """The ids of the composite's missing_clips.csv."""
    table = pd.read_csv(folder / composite.MISSING_FILE, dtype=str)
    return [f"{d}/{s}/{c}" for d, s, c in zip(table["dataset"], table["subject"], table["clip"])]


def _cache_without(source, folder, drop=lambda index: index.iloc[:0], class_names=None):
    """A cache equal to `source` (its clips linked) without the index rows `drop(index)` selects."""
    folder.mkdir()
    (folder / cache.CLIPS_DIR).symlink_to(source / cache.CLIPS_DIR)
    meta = cache.read_meta(source)
    cache.prepare_cache(folder, {**meta, "class_names": class_names or meta["class_names"]})
    index = cache.read_index(source)
    cache.write_index(folder, index.drop(drop(index).index).to_dict("records"))
    return folder


@pytest.mark.slow
def test_missing_clips_subjects_and_datasets_are_named(full_caches, tmp_path, capsys):
    smic = _cache_without(full_caches["smic"], tmp_path / "smic",
                          lambda index: index[(index["clip_id"] == "s3_po_01") | (index["subject"] == "s20")])
    summary = composite.build_composite([full_caches["casme2"], full_caches["samm"], smic], tmp_path / "c")
    listed = composite.clip_list()
    s20 = [f"smic/s20/{c}" for c in listed[listed["subject"] == "s20"]["clip"]]
    assert len(s20) > 5 and summary["missing_clips"] == {"casme2": 0, "samm": 0, "smic": 1 + len(s20)}
    assert _missing(tmp_path / "c") == ["smic/s03/s03_po_01", *s20]
    assert summary["clips"] == 442 - 1 - len(s20) and summary["subjects_without_clips"] == ["smic/s20"]
    out = capsys.readouterr().out
    assert (f"list clips not in the caches ({1 + len(s20)}; smic {1 + len(s20)}; all in "
            f"{tmp_path / 'c' / 'missing_clips.csv'}): smic/s03/s03_po_01, {', '.join(s20[:4])}, ... "
            f"({len(s20) - 4} more)\n") in out
    assert s20[4] not in out and "list subjects without clips (1): smic/s20" in out

    samm = _cache_without(full_caches["samm"], tmp_path / "samm", lambda index: index[index["emotion"].isin(
        ["disgust", "fear", "sadness"])], class_names=["anger", "contempt", "happiness", "surprise", "others"])
    summary = composite.build_composite([full_caches["casme2"], samm, full_caches["smic"]], tmp_path / "c2")
    samm_index = cache.read_index(full_caches["samm"])
    dropped = samm_index[samm_index["emotion"].isin(["disgust", "fear", "sadness"])]
    assert len(dropped) > 0 and sorted(_missing(tmp_path / "c2")) == sorted(
        f"samm/{int(s)}/{c}" for s, c in zip(dropped["subject"], dropped["clip_id"]))
    assert any("--all-emotions" in hint for hint in summary["hints"])

    with pytest.raises(composite.MissingDatasetsError, match=r"none given for \['smic'\].*--allow-missing-datasets"):
        composite.build_composite([full_caches["casme2"], full_caches["samm"]], tmp_path / "c3")
    assert not (tmp_path / "c3").exists()
    summary = composite.build_composite([full_caches["casme2"], full_caches["samm"]], tmp_path / "c3",
                                        allow_missing=True)
    assert summary["missing_datasets"] == ["smic"] and summary["clips"] == 145 + 133
    assert "datasets left out (no cache given): ['smic']" in capsys.readouterr().out


def test_uf1_and_uar_per_dataset_equal_scikit_learn(tmp_path):
    rng = np.random.default_rng(4)
    folds = []
    for number, (dataset, n) in enumerate([("casme2", 7), ("samm", 9), ("smic", 5), ("samm", 6), ("casme2", 4)]):
        labels, preds = rng.integers(0, 3, n), rng.integers(0, 3, n)
        folds.append(FoldResult(fold=number, subject=f"{dataset}/s{number}", predictions=[
            {"dataset": dataset, "label": int(t), "pred": int(p)} for t, p in zip(labels, preds)]))
    scores = reports.summarize(folds, 3)
    for dataset in ("casme2", "samm", "smic"):
        clips = [c for f in folds for c in f.predictions if c["dataset"] == dataset]
        y_true, y_pred = [c["label"] for c in clips], [c["pred"] for c in clips]
        pooled = scores["per_dataset"][dataset]["pooled"]
        assert pooled["n"] == len(clips)
        assert pooled["uf1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
        if set(y_pred) <= set(y_true):  # recall_score averages over the predicted classes too
            assert pooled["uar"] == pytest.approx(skm.recall_score(y_true, y_pred, average="macro"))
        assert pooled["uar"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    y_true = [c["label"] for f in folds for c in f.predictions]
    y_pred = [c["pred"] for f in folds for c in f.predictions]
    assert scores["pooled"]["uf1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert scores["pooled"]["uar"] == pytest.approx(skm.recall_score(y_true, y_pred, average="macro"))
    # Hand-made: truth 0 0 1 2, predictions 0 1 1 1 -> recalls 1/2, 1, 0; F1 2/3, 1/2, 0.
    assert metrics.uar([0, 0, 1, 2], [0, 1, 1, 1]) == pytest.approx(0.5)
    assert metrics.uf1([0, 0, 1, 2], [0, 1, 1, 1]) == pytest.approx(7 / 18)


SMALL = {"casme2": ["sub01", "sub02"], "samm": ["6", "7"], "smic": ["s01", "s02"]}


@pytest.fixture(scope="module")
def small_caches(tmp_path_factory):
    """Caches of the list's clips of 2 subjects per dataset (2 clips each), 32 px (the tiny preset)."""
    table = composite.clip_list()
    table = table[[s in SMALL[d] for d, s in zip(table["dataset"], table["subject"])]].groupby(
        ["dataset", "subject"]).head(2)
    return preprocessed_caches(tmp_path_factory.mktemp("small"), table.reset_index(drop=True), size=32)


def _train(out, *extra):
    train.main(["--preset", "tiny", "--epochs", "1", "--verbose", "0", "--seed", "2", "--out", str(out), *extra])
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_composite_loso_split_and_merged_gives_per_dataset_scores(small_caches, tmp_path, capsys):
    caches = [str(small_caches[d]) for d in ("casme2", "samm", "smic")]
    _train(tmp_path / "a", "--cache", *caches, "--folds", "0-2")
    assert "list clips not in the caches" in capsys.readouterr().out  # the other subjects of the list
    _train(tmp_path / "b", "--cache", *caches, "--folds", "3-5")
    results = merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    assert results.complete and len(results.folds) == 6
    assert [f.subject for f in results.folds] == ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007",
                                                        "smic/s1", "smic/s2"]
    clips = pd.read_csv(tmp_path / "merged" / "predictions.csv")
    for dataset, by in results.per_dataset.items():
        part = clips[clips["subject"].str.startswith(dataset + "/")]
        assert by["pooled"]["n"] == len(part) == 4
        assert by["pooled"]["uf1"] == pytest.approx(skm.f1_score(part["label"], part["pred"], average="macro"))
        assert by["pooled"]["uar"] == pytest.approx(skm.balanced_accuracy_score(part["label"], part["pred"]))
    assert results.notes["composite"]["clips"] == 12
    table = pd.read_csv(tmp_path / "merged" / "results.csv")
    assert {"pooled/casme2", "pooled/samm", "pooled/smic", "paper/smic"} <= set(table["protocol"])


@pytest.mark.slow
def test_cross_dataset_run_tests_on_the_test_dataset_only(small_caches, tmp_path, monkeypatch):
    fed = []
    make_epochs = pipeline.make_epochs_dataset

    def recording(cache_dir, index, *args, **kwargs):  # what the training loop actually feeds
        fed.append((pathlib.Path(cache_dir), index.copy()))
        return make_epochs(cache_dir, index, *args, **kwargs)

    monkeypatch.setattr(pipeline, "make_epochs_dataset", recording)
    out = tmp_path / "to_samm"
    results = _train(out, "--train-cache", str(small_caches["casme2"]), str(small_caches["smic"]),
                     "--test-cache", str(small_caches["samm"]), "--validation-subjects", "1")
    assert results["complete"] and results["held_out"] == ["samm"] and len(results["folds"]) == 1
    predictions = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    samm = cache.read_index(small_caches["samm"])
    listed = cache.read_index(out / "composite")
    assert sorted(predictions["clip_id"]) == sorted(listed[listed["dataset"] == "samm"]["clip_id"])
    assert len(predictions) == 4 and set(predictions["clip_id"]) < set(samm["clip_id"])  # 006_9_9 is not listed
    assert set(predictions["subject"]) == {"samm/006", "samm/007"}
    assert (out / "confusion_matrix.png").is_file() and list(results["per_dataset"]) == ["samm"]
    (cache_dir, trained), = fed
    assert not trained["dataset"].eq("samm").any() and set(trained["dataset"]) <= {"casme2", "smic"}
    assert len(trained) == 8 - 2  # one training subject of 2 clips is the validation subject
    sources = {(p.resolve().parents[2].name, p.stem) for p in (cache_dir / f for f in trained["file"])}
    assert not {clip for _, clip in sources} & set(samm["clip_id"])
    assert all(folder in ("casme2_cache", "smic_cache") for folder, _ in sources)
    fold = json.loads(next(out.glob("folds/*/result.json")).read_text())
    assert fold["subject"] == "samm" and not [s for s in fold["train_subjects"] if s.startswith("samm/")]
    folds = list(loso_folds(cache_dir, batch_size=2, subjects=["samm"], validation_subjects=1, hold_out="dataset"))
    assert set(folds[0].validation_index["dataset"]) <= {"casme2", "smic"}
    assert set(folds[0].test_index["dataset"]) == {"samm"}


@pytest.mark.parametrize("command", [train, ablation])
def test_commands_stop_naming_the_missing_dataset(command, small_caches, tmp_path, capsys):
    extra = ["--table", "sampler"] if command is ablation else []
    with pytest.raises(SystemExit) as stop:
        command.main([*extra, "--cache", str(small_caches["casme2"]), str(small_caches["samm"]), "--preset", "tiny",
                      "--out", str(tmp_path / "run")])
    assert stop.value.code == 2
    assert "none given for ['smic']" in capsys.readouterr().err
    assert not (tmp_path / "run" / "config.json").exists()


def test_cross_dataset_options_are_checked(small_caches, tmp_path, capsys):
    for wrong in (["--test-cache", str(small_caches["samm"])],
                  ["--train-cache", str(small_caches["casme2"]), "--test-cache", str(small_caches["samm"]),
                   "--folds", "0"],
                  ["--train-cache", str(small_caches["samm"]), "--test-cache", str(small_caches["samm"])]):
        with pytest.raises(SystemExit) as stop:
            train.main([*wrong, "--preset", "tiny", "--out", str(tmp_path / "run")])
        assert stop.value.code == 2
    errors = capsys.readouterr().err
    assert "--train-cache DIR" in errors and "one fold" in errors and "both of dataset 'samm'" in errors


def test_tuner_builds_the_composite_of_its_caches(small_caches, tmp_path, capsys):
    pytest.importorskip("keras_tuner")
    from cmnet_keras.commands import grid

    caches = [str(small_caches["casme2"]), str(small_caches["samm"])]
    with pytest.raises(SystemExit) as stop:
        grid.main(["--cache", *caches, "--preset", "tiny", "--out", str(tmp_path / "search")])
    assert stop.value.code == 2
    assert "none given for ['smic']" in capsys.readouterr().err


def test_cross_dataset_test_cache_without_list_clips_is_named(small_caches, tmp_path, capsys):
    samm = _cache_without(small_caches["samm"], tmp_path / "samm_other",  # only 006_9_9 ("Other", not listed)
                          lambda index: index[index["clip_id"] != "006_9_9"])
    with pytest.raises(SystemExit) as stop:
        train.main(["--train-cache", str(small_caches["casme2"]), "--test-cache", str(samm), "--preset", "tiny",
                    "--out", str(tmp_path / "run")])
    assert stop.value.code == 2
    assert f"--test-cache {samm}: none of its samm clips is in the composite's clip list" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # no composite written either


def test_tuner_refuses_a_composite_without_caches(tmp_path, capsys):
    pytest.importorskip("keras_tuner")
    from cmnet_keras.commands import grid

    with pytest.raises(SystemExit) as stop:
        grid.main(["--embedded", "--composite", "megc2019", "--data-dir", str(tmp_path / "data"),
                   "--preset", "tiny", "--out", str(tmp_path / "search")])
    assert stop.value.code == 2
    assert "--composite megc2019 needs the datasets' caches" in capsys.readouterr().err
    assert not (tmp_path / "data").exists() and not (tmp_path / "search").exists()


@pytest.mark.parametrize("extra, words", [
    (["--composite-clips", "table"], "--composite-clips applies to a composite (several --cache folders, or "
                                     "--composite), not to one --cache folder"),
    (["--allow-missing-datasets"], "--allow-missing-datasets applies to a composite"),
])
def test_composite_options_without_a_composite_are_refused(extra, words, small_caches, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train.main(["--cache", str(small_caches["smic"]), *extra, "--preset", "tiny", "--out", str(tmp_path / "run")])
    assert stop.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as stop:  # the embedded dataset: refused before it is generated
        train.main([*extra, "--data-dir", str(tmp_path / "data"), "--preset", "tiny", "--out", str(tmp_path / "run")])
    assert stop.value.code == 2 and "not to the embedded dataset" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_building_a_composite_shows_progress(small_caches, tmp_path, capsys):
    caches = [str(small_caches[d]) for d in ("casme2", "samm", "smic")]
    with pytest.raises(SystemExit) as stop:  # the demo preset's 64 px do not fit the caches: stops once it is built
        train.main(["--preset", "demo", "--out", str(tmp_path), "--cache", *caches])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "use --preset tiny" in error
    wanted = composite.clip_list()["dataset"].value_counts()
    pairs = list(zip(composite.DATASETS, caches))
    lines = [line for line in error.splitlines() if line.startswith(("read the", "linked"))]
    assert lines == [f"read the {d} cache {c}: 4 of its {wanted[d]} list clips found" for d, c in pairs] + [
        f"linked {tmp_path / 'composite' / d} -> {c}: 4 clips ({4 * (k + 1)} of 12)" for k, (d, c) in enumerate(pairs)]


def _tree(folder):
    """{relative path: file bytes, or the target of a link} of every entry under `folder`."""
    return {str(p.relative_to(folder)): str(p.readlink()) if p.is_symlink() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def test_a_refused_rerun_leaves_the_composite_and_the_run_resumes(small_caches, tmp_path, capsys):
    caches = [str(small_caches[d]) for d in ("casme2", "samm", "smic")]
    out = tmp_path / "run"
    results = _train(out, "--cache", *caches, "--folds", "0")
    printed = capsys.readouterr().out
    missing = _missing(out / "composite")
    assert len(missing) == 442 - 12 and printed.count(missing[0]) == 1  # the ids once: when built, not in the run's
    assert f"all in {out / 'composite' / 'missing_clips.csv'}): {missing[0]}, " in printed
    assert results["composite"]["missing_clips"] == {d: n - 4 for d, n in
                                                     composite.clip_list()["dataset"].value_counts().items()}
    assert results["composite"]["missing_clips_file"] == "missing_clips.csv"
    before = _tree(out / "composite")
    with pytest.raises(SystemExit) as stop:
        _train(out, "--cache", *caches, "--folds", "0", "--composite-clips", "table")
    assert stop.value.code == 2 and _tree(out / "composite") == before
    error = capsys.readouterr().err
    assert f"{out / 'composite'} is the composite of the runs in {out}" in error
    assert "read the" not in error  # --verbose 0: no progress lines
    assert "composite.clip_set: 'challenge' (run) != 'table' (now)" in error
    saved = json.loads((out / "config.json").read_text())["settings"]["composite"]
    assert saved == cache.read_meta(out / "composite")["composite"]
    assert _train(out, "--cache", *caches, "--folds", "0")["folds"] == results["folds"]  # resumed: nothing redone
    assert "1 of the folds finished earlier are kept" in capsys.readouterr().out


def test_ablation_takes_the_cross_dataset_options(small_caches, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        ablation.main(["--table", "sampler", "--train-cache", str(small_caches["casme2"]), "--test-cache",
                       str(small_caches["samm"]), "--folds", "0", "--preset", "tiny", "--out", str(tmp_path / "a")])
    assert stop.value.code == 2
    assert "--folds: a cross-dataset run has one fold" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_all_emotions_is_a_note_for_smic_and_an_error_for_a_manifest(tmp_path, capsys):
    table = composite.clip_list()
    write_smic_tree(tmp_path / "SMIC", smic_clips(table[table["subject"] == "s01"].head(2)),
                    variants=["SMIC_all_cropped"])
    assert run_preprocess(tmp_path / "SMIC", tmp_path / "smic", "--all-emotions", dataset="smic") == 0
    note = "--all-emotions: nothing to add, SMIC's classes negative, positive, surprise are all its emotions"
    assert capsys.readouterr().out.count(note) == 1
    assert cache.read_meta(tmp_path / "smic")["class_names"] == ["negative", "positive", "surprise"]
    assert preprocess.main(["--dataset", "manifest", "--root", str(tmp_path), "--out", str(tmp_path / "m"),
                            "--all-emotions"]) == 2
    assert "a manifest's classes are every label in its CSV already" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
