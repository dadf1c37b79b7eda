"""Caches that never go stale, one writer at a time, and output that cannot be written (issue 10, items 4-5)."""

import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from cmnet_keras import files, version
from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache, preprocessing, readers, temporal
from cmnet_keras.data.pipeline import make_dataset
from fixtures import casme2_sheet_frame, casme2_table, run_preprocess, write_casme2_tree
from killharness import tree_bytes

SIZE = 8
ROWS = ["EP02_01f", "EP11_01", "EP07_28", "EP19_03f"]
NAMES = ["sub01/EP02_01f", "sub02/EP11_01", "sub26/EP07_28", "sub01/EP19_03f"]


@pytest.fixture
def tree(tmp_path):
    table = casme2_table().set_index("filename").loc[ROWS].reset_index()
    write_casme2_tree(tmp_path / "casme2", table, cropped=True, suffix=".png")
    return tmp_path / "casme2", table


def preprocess_quietly(root, out, size=SIZE, num_frames=16, all_emotions=False):
    spec = readers.read_dataset("casme2", root, cropped=True, all_emotions=all_emotions)
    return preprocessing.preprocess_dataset(spec, out, image_size=size, num_frames=num_frames, cropped=True,
                                            progress=False, log=lambda message: None)


def clip_bytes(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "clips").rglob("*.raw"))}


def test_changed_sheet_rows_and_settings_reprocess_exactly_the_affected_clips(tree, tmp_path, capsys, monkeypatch):
    root, table = tree
    out = tmp_path / "cache"
    assert run_preprocess(root, out) == preprocess.EXIT_OK
    first = clip_bytes(out)
    capsys.readouterr()

    assert run_preprocess(root, out) == preprocess.EXIT_OK
    printed = capsys.readouterr().out
    assert "reprocessed (cached but outdated or unreadable): 0" in printed and "sheet row): 4" in printed

    changed = table.copy()
    changed.loc[0, "apex"] = 80  # sub01/EP02_01f: another apex
    changed.loc[2, "emotion"] = "disgust"  # sub26/EP07_28: another label
    changed.loc[3, "offset"] = 150  # sub01/EP19_03f: a shorter clip (its folder still holds 81..161)
    casme2_sheet_frame(changed).to_excel(root / "CASME2-coding-20140508.xlsx", index=False)
    report = preprocess_quietly(root, out)
    assert report.skipped == ["sub02/EP11_01"]
    assert dict(report.reprocessed) == {"sub01/EP02_01f": "sheet row changed: apex",
                                        "sub26/EP07_28": "sheet row changed: emotion, label",
                                        "sub01/EP19_03f": "sheet row changed: offset"}
    assert "sheet row changed: apex: 1" in report.summary()
    index = cache.read_index(out).set_index("clip_id")
    assert index.loc["EP07_28", "label"] == 0 and index.loc["EP19_03f", "num_source_frames"] == 150 - 81 + 1
    second = clip_bytes(out)
    assert second["clips/sub02/EP11_01.raw"] == first["clips/sub02/EP11_01.raw"]
    assert second["clips/sub01/EP19_03f.raw"] != first["clips/sub01/EP19_03f.raw"]  # other source frames

    monkeypatch.setattr(version, "__version__", "9.9.9")
    report = preprocess_quietly(root, out)
    assert [reason for _, reason in report.reprocessed] == ["settings changed: package_version"] * 4

    report = preprocess_quietly(root, out, size=12)  # a meta-level setting: the whole cache is redone
    assert [reason for _, reason in report.reprocessed] == ["settings changed: image_size"] * 4
    meta = cache.read_meta(out)
    assert meta["image_size"] == meta["settings"]["image_size"] == 12
    (inputs, _), = make_dataset(out, batch_size=4).as_numpy_iterator()
    assert inputs["frames"].shape == (4, 16, 12, 12, 3)


def test_other_frames_classes_or_apex_rule_redo_every_clip(tree, tmp_path, monkeypatch):
    root, _ = tree
    out = tmp_path / "cache"
    preprocess_quietly(root, out)
    report = preprocess_quietly(root, out, num_frames=8)
    assert dict(report.reprocessed) == dict.fromkeys(NAMES, "settings changed: num_frames")
    assert {cache.load_clip(out, f)["frames"].shape for f in cache.read_index(out)["file"]} == {(8, SIZE, SIZE, 3)}
    report = preprocess_quietly(root, out, num_frames=8, all_emotions=True)  # + sadness, fear: another class list
    assert dict(report.reprocessed) == dict.fromkeys(NAMES, "settings changed: class_names")
    assert cache.read_meta(out)["class_names"] == ["disgust", "happiness", "repression", "surprise", "others", "sadness",
                                                   "fear"]
    monkeypatch.setattr(preprocessing, "APEX_RULE", "another apex rule")
    report = preprocess_quietly(root, out, num_frames=8, all_emotions=True)
    assert dict(report.reprocessed) == dict.fromkeys(NAMES, "settings changed: apex_rule")
    assert preprocess_quietly(root, out, num_frames=8, all_emotions=True).skipped == NAMES


@pytest.mark.parametrize("key, other", [("format", 1), ("dataset", "samm"), ("class_names", ["a", "b"]),
                                        ("num_frames", 32), ("apex_rule", "the middle frame")])
def test_a_clip_made_with_another_setting_is_redone_alone(tree, tmp_path, key, other):
    """One clip's sidecar says it was made with another format, dataset, class list, frame count or apex rule
    (as a clip left by another version or run would): that clip alone is redone, the others are kept."""
    root, _ = tree
    out = tmp_path / "cache"
    preprocess_quietly(root, out)
    before = clip_bytes(out)
    sidecar = cache.sidecar_path(out, "clips/sub26/EP07_28.raw")
    info = json.loads(sidecar.read_text())
    info["provenance"]["settings"][key] = other
    sidecar.write_text(json.dumps(info))
    report = preprocess_quietly(root, out)
    assert dict(report.reprocessed) == {"sub26/EP07_28": f"settings changed: {key}"}
    assert report.skipped == [n for n in NAMES if n != "sub26/EP07_28"]
    assert clip_bytes(out) == before  # the same settings again: the same bytes
    assert json.loads(sidecar.read_text())["provenance"]["settings"][key] != other


def test_face_model_hash_is_a_setting(tmp_path):
    spec = readers.DatasetSpec("casme2", ("a", "b"), [], readers.DropSummary())
    models = []
    for name, content in (("one.task", b"model one"), ("two.task", b"model two")):
        (tmp_path / name).write_bytes(content)
        models.append(preprocessing.run_settings(spec, 32, 16, cropped=False, face_model=tmp_path / name))
    assert models[0]["face_model_sha256"] == hashlib.sha256(b"model one").hexdigest()
    info = {"provenance": {"settings": models[0], "source": {}}}
    assert preprocessing.outdated_reason(info, models[1], {}) == "settings changed: face_model_sha256"
    cropped = preprocessing.run_settings(spec, 32, 16, cropped=True)
    assert cropped["face_model_sha256"] is None and cropped["crop_margin"] is None
    assert preprocessing.outdated_reason(info, cropped, {}) == (
        "settings changed: alignment, crop_margin, face_model_sha256")


def test_truncated_clip_is_named_on_load_and_redone(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "cache"
    assert run_preprocess(root, out) == preprocess.EXIT_OK
    good = clip_bytes(out)
    path = out / "clips/sub02/EP11_01.raw"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(cache.CacheError, match=r"Truncated cache clip .*EP11_01\.raw: 1000 bytes, expected 3072"):
        cache.load_clip(out, "clips/sub02/EP11_01.raw")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)EP11_01\.raw.*has.*1000.*expected 3072"):
        list(make_dataset(out, batch_size=4).as_numpy_iterator())
    report = preprocess_quietly(root, out)
    assert [name for name, _ in report.reprocessed] == ["sub02/EP11_01"]
    assert report.reprocessed[0][1].startswith("unreadable cache file: Truncated cache clip")
    assert clip_bytes(out) == good


def test_old_format_cache_is_refused_with_one_line_to_rebuild_it(tree, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "cache"
    (out / "clips/sub01").mkdir(parents=True)
    np.savez(out / "clips/sub01/EP02_01f.npz", frames=np.zeros((16, SIZE, SIZE, 3), np.uint8))
    (out / "meta.json").write_text(json.dumps({"dataset": "casme2", "class_names": ["a"], "image_size": SIZE,
                                               "num_frames": 16, "cropped": True}))
    pd.DataFrame([{"clip_id": "EP02_01f", "subject": "sub01", "label": 0, "emotion": "a", "apex": 1,
                   "apex_source": "annotated", "file": "clips/sub01/EP02_01f.npz", "num_source_frames": 41}]
                 ).to_csv(out / "index.csv", index=False)
    before = tree_bytes(out)
    rebuild = (f"Cache {out} is in format 1; this version reads format 2 only: rebuild it (delete it and rerun "
               "python -m cmnet_keras.preprocess).")
    with pytest.raises(cache.CacheError) as refused:
        make_dataset(out)
    assert str(refused.value) == rebuild
    capsys.readouterr()
    assert run_preprocess(root, out) == preprocess.EXIT_FATAL
    assert capsys.readouterr().err == f"error: {rebuild}\n"
    assert tree_bytes(out) == before  # nothing migrated, nothing removed
    shutil.rmtree(out)
    assert run_preprocess(root, out) == preprocess.EXIT_OK and len(cache.read_index(out)) == 4


def test_a_second_run_fails_at_once_naming_the_first(tree, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "cache"
    with cache.lock(out):
        assert run_preprocess(root, out) == preprocess.EXIT_FATAL
    err = capsys.readouterr().err
    assert f"being written by another preprocess run (pid {os.getpid()} on host {socket.gethostname()}" in err
    assert not (out / cache.LOCK_FILE).exists()  # released
    assert run_preprocess(root, out) == preprocess.EXIT_OK


def test_lock_of_a_live_process_on_another_host_is_respected(tmp_path):
    (tmp_path / cache.LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(cache.CacheLockedError, match="pid 1 on host elsewhere"):
        with cache.lock(tmp_path):
            pass


def test_stale_lock_of_a_dead_process_is_taken_over(tree, tmp_path, capsys):
    root, _ = tree
    out = tmp_path / "cache"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out / cache.LOCK_FILE).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    assert run_preprocess(root, out) == preprocess.EXIT_OK
    assert f"Taking over the lock {out / cache.LOCK_FILE} left by process {pid}" in capsys.readouterr().out
    assert not (out / cache.LOCK_FILE).exists()


def test_output_folder_that_cannot_be_written(tree, tmp_path, capsys):
    root, _ = tree
    (tmp_path / "a_file").write_text("not a folder")
    assert run_preprocess(root, tmp_path / "a_file" / "cache") == preprocess.EXIT_FATAL
    assert f"cannot write {tmp_path / 'a_file' / 'cache'}" in capsys.readouterr().err


def test_read_only_folder_while_writing(tree, tmp_path, capsys, monkeypatch):
    """Simulated (tests run as root): creating the clip's temp file fails with EROFS."""
    root, _ = tree
    out = tmp_path / "cache"
    real = files.tempfile.mkstemp

    def read_only_clips(*args, dir=None, **kwargs):
        if "clips" in str(dir):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only_clips)
    assert run_preprocess(root, out) == preprocess.EXIT_FATAL
    assert f"cannot write {out / 'clips/sub01/EP02_01f.raw'}: Read-only file system" in capsys.readouterr().err
    assert not (out / cache.LOCK_FILE).exists()


def test_full_disk_stops_the_run_and_damages_nothing(tree, tmp_path, capsys, monkeypatch):
    """ENOSPC after half of the third clip's frames: named; the clips and index written before stay loadable."""
    root, _ = tree
    out = tmp_path / "cache"
    assert run_preprocess(root, out, "--limit", "2") == preprocess.EXIT_OK
    before = clip_bytes(out)
    index_before = (out / "index.csv").read_bytes()
    capsys.readouterr()
    raws = []

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def opener(real):  # files.py opens its temp file by descriptor or by path, depending on the writer
        def fake_open(file, *args, **kwargs):
            handle = real(file, *args, **kwargs)
            name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else str(file)
            if ".raw." in os.path.basename(name):
                raws.append(name)
                if len(raws) == 1:
                    return FullDisk(handle)
            return handle

        return fake_open

    monkeypatch.setattr(files.os, "fdopen", opener(os.fdopen))
    monkeypatch.setattr(files, "open", opener(open), raising=False)
    assert run_preprocess(root, out) == preprocess.EXIT_FATAL
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert f"cannot write {out / 'clips/sub26/EP07_28.raw'}: No space left on device" in err
    assert clip_bytes(out) == before
    assert not list(out.rglob("*.tmp")) and not (out / cache.LOCK_FILE).exists()
    assert (out / "index.csv").read_bytes() == index_before
    for file in cache.read_index(out).file:
        cache.load_clip(out, file)
    assert run_preprocess(root, out) == preprocess.EXIT_OK  # and the next run completes it
    assert len(cache.read_index(out)) == 4


def test_cache_fingerprint_follows_content_format_and_settings(tree, tmp_path):
    root, _ = tree
    assert run_preprocess(root, tmp_path / "a") == preprocess.EXIT_OK
    assert run_preprocess(root, tmp_path / "b") == preprocess.EXIT_OK
    same = cache.cache_fingerprint(tmp_path / "a")
    assert same == cache.cache_fingerprint(tmp_path / "b")  # another folder, same cache
    meta = json.loads((tmp_path / "b/meta.json").read_text())
    index = cache.read_index(tmp_path / "b")[list(cache.INDEX_COLUMNS)]  # not the action units
    expected = hashlib.sha256((json.dumps(meta, sort_keys=True) + index.sort_values(
        "file").to_csv(index=False)).encode()).hexdigest()
    assert same == expected and meta["format"] == cache.FORMAT
    preprocess_quietly(root, tmp_path / "b", size=12)
    assert cache.cache_fingerprint(tmp_path / "b") != same


def test_apex_temporal_method_puts_the_annotated_apex_on_the_timeline(tree, tmp_path, capsys):
    root, table = tree
    out = tmp_path / "cache"
    assert run_preprocess(root, out) == preprocess.EXIT_OK
    assert run_preprocess(root, out, "--temporal", "apex") == preprocess.EXIT_OK
    assert "settings changed: temporal: 4" in capsys.readouterr().out
    index = cache.read_index(out).set_index("clip_id")
    for row in table.itertuples():
        length = row.offset - row.onset + 1
        plan = temporal.temporal_plan(length, 16, apex=row.apex - row.onset, method="apex")
        # The cached apex is the timeline frame that shows exactly the annotated source frame.
        position = plan.source_positions[index.loc[row.filename, "apex"]]
        assert position == row.apex - row.onset and plan.weight[index.loc[row.filename, "apex"]] == 0
