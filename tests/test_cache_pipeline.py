"""Preprocessing into the cache (cropped mode: no face detection), resume, and the tf.data pipeline."""

import importlib
import json
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from cmnet_keras import files
from cmnet_keras.commands import preprocess
from cmnet_keras.data.preprocessing import preprocess_dataset
from cmnet_keras.data import cache, readers, temporal
from fixtures import casme2_table, run_preprocess, write_casme2_tree, write_video

SIZE, FRAMES = 16, 16
# Real rows: sub01 EP02_01f (46/59/86), sub01 EP19_03f (81/96/161), sub02 EP11_01 (16/69/106),
# sub04 EP12_01f (261/'/'/321, apex estimated), sub26 EP07_28 (31/51/71); sadness sub26 EP15_01 dropped.
ROWS = ["EP02_01f", "EP19_03f", "EP11_01", "EP12_01f", "EP07_28", "EP15_01"]
HIDDEN_APEX = 289  # where the synthetic movement of sub04 EP12_01f peaks (its sheet apex is '/')


def frame_value(n):
    """R encodes the frame number; G carries a movement peaking at HIDDEN_APEX (sub04 frames 261..321)."""
    if 261 <= n <= 321:
        return (0, int(150 * max(0.0, 1 - abs(n - HIDDEN_APEX) / 10)), 50)
    return (n % 256, 0, 50)


@pytest.fixture
def casme2_tree(tmp_path):
    table = casme2_table().set_index("filename").loc[ROWS].reset_index()
    write_casme2_tree(tmp_path / "casme2", table, cropped=True, suffix=".png", value=frame_value)
    return tmp_path / "casme2", table


def run_cli(root, out):
    return run_preprocess(root, out, "--frames", str(FRAMES), size=SIZE)


def test_preprocess_writes_cache(casme2_tree, tmp_path, capsys):
    root, table = casme2_tree
    out = tmp_path / "cache"
    assert run_cli(root, out) == 0
    printed = capsys.readouterr().out
    assert "processed: 5 clips" in printed and "skipped (already cached with the same settings and sheet row): 0" in printed
    assert "failed: 0" in printed
    assert "sadness 2" in printed and "sub17 1" in printed  # dropped-class summary

    meta = cache.read_meta(out)
    assert {k: meta[k] for k in cache.META_KEYS} == {"dataset": "casme2", "class_names": list(readers.CLASS_SETS["casme2"]),
                                                      "image_size": SIZE, "num_frames": FRAMES, "cropped": True}
    assert meta["format"] == 2 and meta["settings"]["image_size"] == SIZE
    index = cache.read_index(out)
    assert list(index.columns) == list(cache.INDEX_COLUMNS + cache.TEXT_COLUMNS)
    kept = table[table.emotion != "sadness"]
    assert index.clip_id.tolist() == kept.filename.tolist()
    assert index.subject.tolist() == ["sub01", "sub01", "sub02", "sub04", "sub26"]
    assert index.num_source_frames.tolist() == (kept.offset - kept.onset + 1).tolist()
    assert index.label.tolist() == [readers.CLASS_SETS["casme2"].index(e) for e in kept.emotion]
    # Annotated apexes carried onto the timeline, by hand: EP02_01f 13 of 41 frames -> 5;
    # EP19_03f 15 of 81 -> positions 16 i / 3 -> 3; EP11_01 53 of 91 -> positions 6 i -> 9;
    # EP07_28 20 of 41 -> positions 8 i / 3 round to ..., 19, 21 -> 7 (19 is nearer than 21? equal: first).
    assert index.apex.tolist()[:3] == [5, 3, 9]
    assert index.apex.tolist()[4] == 7
    assert index.apex_source.tolist() == ["annotated"] * 3 + ["estimated", "annotated"]
    # Estimated apex of EP12_01f: frames 261 + 4 i; the movement peaks at 289 = i 7.
    assert index.apex.tolist()[3] == 7

    for row in index.itertuples():
        clip = cache.load_clip(out, row._asdict())
        assert clip["frames"].shape == (FRAMES, SIZE, SIZE, 3) and clip["frames"].dtype == np.uint8
        onset, offset = kept.set_index("filename").loc[row.clip_id, ["onset", "offset"]]
        if row.clip_id != "EP12_01f":
            expected = np.rint(np.linspace(onset, offset, FRAMES)).astype(int) % 256
            assert clip["frames"][:, 0, 0, 0].tolist() == expected.tolist()  # the right source frames
        assert (clip["apex"], clip["label"]) == (row.apex, row.label)
    assert not list(out.rglob("*.tmp"))


def test_interrupted_run_resumes(casme2_tree, tmp_path, monkeypatch):
    root, _ = casme2_tree
    out = tmp_path / "cache"
    real_write, calls = files.write_bytes, []

    def write_then_killed(path, data):
        calls.append(path)
        if len([p for p in calls if p.suffix == ".raw"]) == 3:  # the third clip's frames file dies half-written

            def half_then_interrupt(handle):
                handle.write(data[: len(data) // 2])
                raise KeyboardInterrupt

            files.atomic_write(path, half_then_interrupt)
        real_write(path, data)

    monkeypatch.setattr(files, "write_bytes", write_then_killed)
    with pytest.raises(KeyboardInterrupt):
        run_cli(root, out)
    monkeypatch.setattr(files, "write_bytes", real_write)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.raw"))
    assert written == ["clips/sub01/EP02_01f.raw", "clips/sub01/EP19_03f.raw"]
    assert not list(out.rglob("*.tmp")), "a temp file was left behind"
    assert not (out / cache.LOCK_FILE).exists()
    assert len(cache.read_index(out)) == 2  # the index lists what is done

    # A hard kill (no cleanup) leaves a temp file; a foreign tool truncated a clip.
    (out / "clips/sub02").mkdir(parents=True, exist_ok=True)
    (out / "clips/sub02/.EP11_01.raw.x1y2.tmp").write_bytes(b"partial")
    truncated = out / "clips/sub01/EP19_03f.raw"
    truncated.write_bytes(truncated.read_bytes()[:100])

    spec = readers.read_dataset("casme2", root, cropped=True)
    report = preprocess_dataset(spec, out, SIZE, FRAMES, cropped=True, progress=False)
    assert report.skipped == ["sub01/EP02_01f"]
    assert report.processed == ["sub01/EP19_03f", "sub02/EP11_01", "sub04/EP12_01f", "sub26/EP07_28"]
    assert [name for name, _ in report.reprocessed] == ["sub01/EP19_03f"]
    assert "Truncated cache clip" in report.reprocessed[0][1] and "EP19_03f.raw" in report.reprocessed[0][1]
    assert report.failed == []
    assert not list(out.rglob("*.tmp"))
    index = cache.read_index(out)
    assert len(index) == 5
    for row in index.to_dict("records"):
        assert cache.read_sidecar(out, row["file"])["record"] == row

    # A third run has nothing left to do.
    again = preprocess_dataset(spec, out, SIZE, FRAMES, cropped=True, progress=False)
    assert (len(again.processed), len(again.skipped)) == (0, 5)
    pd.testing.assert_frame_equal(cache.read_index(out), index)


def test_broken_sheet_is_a_clear_cli_error(casme2_tree, tmp_path, capsys):
    root, _ = casme2_tree
    sheet = root / "CASME2-coding-20140508.xlsx"
    pd.read_excel(sheet).drop(columns=["OffsetFrame"]).to_excel(sheet, index=False)
    assert run_cli(root, tmp_path / "cache") == 2
    err = capsys.readouterr().err
    assert "CASME2-coding-20140508.xlsx" in err and "['offset']" in err


def _resize_frame(path, side):
    """Rewrites a frame as a valid image of another size: its clip fails in processing."""
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (side, side)))


def test_failed_clip_is_named_and_others_go_on(casme2_tree, tmp_path, capsys):
    root, _ = casme2_tree
    _resize_frame(root / "Cropped/sub02/EP11_01/reg_img16.png", 10)  # its onset frame
    out = tmp_path / "cache"
    assert run_cli(root, out) == preprocess.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "failed: 1 (0 rows or folders not usable, 1 clips failed in processing)" in printed
    assert "sub02/EP11_01:" in printed and "frames differ in size" in printed and "reg_img16.png 10x10" in printed
    assert "sub02/EP11_01" not in set(cache.read_index(out).subject + "/" + cache.read_index(out).clip_id)
    assert len(cache.read_index(out)) == 4


def test_exit_code_when_everything_failed(casme2_tree, tmp_path):
    root, _ = casme2_tree
    for folder in (root / "Cropped").glob("*/*"):
        _resize_frame(min(folder.glob("*.png"), key=lambda p: int(p.stem.split("img")[-1])), 10)
    assert run_cli(root, tmp_path / "cache") == preprocess.EXIT_SOME_FAILED
    assert len(cache.read_index(tmp_path / "cache")) == 0


def test_manifest_video_preprocess_interpolates(tmp_path):
    """A 10-frame lossless video (< 16 frames) is interpolated by linear blending."""
    write_video(tmp_path / "clip.avi", 10, value=lambda i: 20 * i, fourcc="FFV1")
    (tmp_path / "manifest.csv").write_text("subject,path,label,apex\nA,clip.avi,smile,3\n")
    out = tmp_path / "cache"
    code = run_preprocess(tmp_path, out, dataset="manifest")
    assert code == 0
    row = cache.read_index(out).iloc[0]
    frames = cache.load_clip(out, row)["frames"]
    expected = np.interp(np.linspace(0, 9, 16), np.arange(10), 20.0 * np.arange(10))  # = 12 i
    assert np.abs(frames[:, 4, 4, 0].astype(float) - expected).max() <= 1
    assert row.apex == 5  # source frame 3 at position 9 i / 15 -> i = 5


def test_pipeline_yields_model_inputs(casme2_tree, tmp_path):
    root, _ = casme2_tree
    out = tmp_path / "cache"
    assert run_cli(root, out) == 0
    index = cache.read_index(out)
    from cmnet_keras.data.pipeline import make_dataset

    batches = list(make_dataset(out, batch_size=2).as_numpy_iterator())
    assert [b[1].shape for b in batches] == [(2,), (2,), (1,)]
    inputs, label = batches[0]
    assert set(inputs) == {"frames", "apex"}
    assert inputs["frames"].shape == (2, FRAMES, SIZE, SIZE, 3) and inputs["frames"].dtype == np.uint8
    assert inputs["apex"].dtype == np.int32 and label.dtype == np.int32
    frames = np.concatenate([b[0]["frames"] for b in batches])
    expected = np.stack([np.frombuffer((out / f).read_bytes(), np.uint8).reshape(FRAMES, SIZE, SIZE, 3)
                         for f in index.file])  # independent read of the documented layout
    np.testing.assert_array_equal(frames, expected)
    np.testing.assert_array_equal(np.concatenate([b[0]["apex"] for b in batches]), index.apex)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), index.label)

    # Shuffled: same clips, another order, batch shapes fixed with drop_remainder.
    shuffled = list(make_dataset(out, batch_size=2, shuffle=True, seed=3, drop_remainder=True).as_numpy_iterator())
    assert [b[1].shape for b in shuffled] == [(2,), (2,)]
    shuffled = list(make_dataset(out, batch_size=5, shuffle=True, seed=3).as_numpy_iterator())[0]
    order = [next(i for i in range(5) if np.array_equal(expected[i], f)) for f in shuffled[0]["frames"]]
    assert sorted(order) == list(range(5))
    np.testing.assert_array_equal(shuffled[1], index.label.to_numpy()[order])

    # LOSO-style subset by subject from the index.
    subset = index[index.subject != "sub01"]
    got = list(make_dataset(out, index=subset, batch_size=8).as_numpy_iterator())
    np.testing.assert_array_equal(got[0][1], subset.label)
    repeated = make_dataset(out, batch_size=4, repeat=True).take(3)
    assert sum(b[1].shape[0] for b in repeated.as_numpy_iterator()) == 12


def test_pipeline_reads_a_relative_cache_dir(casme2_tree, tmp_path, monkeypatch):
    root, _ = casme2_tree
    assert run_cli(root, tmp_path / "cache") == 0
    from cmnet_keras.data.pipeline import make_dataset

    monkeypatch.chdir(tmp_path)
    (inputs, _), *_ = make_dataset("cache", batch_size=5).as_numpy_iterator()
    first = cache.read_index(tmp_path / "cache").file.iloc[0]
    expected = np.frombuffer((tmp_path / "cache" / first).read_bytes(), np.uint8).reshape(FRAMES, SIZE, SIZE, 3)
    np.testing.assert_array_equal(inputs["frames"][0], expected)


def test_read_index_keeps_zero_padded_subjects(tmp_path):
    record = {"clip_id": "006_1_2", "subject": "006", "label": 0, "emotion": "anger", "apex": 3,
              "apex_source": "annotated", "file": cache.clip_relpath("006", "006_1_2"), "num_source_frames": 14}
    cache.save_clip(tmp_path, record, np.zeros((4, 2, 2, 3), np.uint8))
    cache.write_index(tmp_path, [record])
    index = cache.read_index(tmp_path)
    assert index.subject.tolist() == ["006"] and index.clip_id.tolist() == ["006_1_2"]
    assert cache.read_sidecar(tmp_path, record["file"])["record"] == record
    assert cache.read_sidecar(tmp_path, cache.clip_relpath("006", "other")) is None  # not cached
    with pytest.raises(ValueError, match=r"apex 9 outside 0..3"):
        cache.save_clip(tmp_path, {**record, "apex": 9}, np.zeros((4, 2, 2, 3), np.uint8))
    assert json.loads(json.dumps(record)) == record


@pytest.mark.slow
def test_aligned_preprocess_on_real_faces(tmp_path, pyfeat_data, face_model, capsys):
    """End to end on real faces: the embedded generator's CASME II tree, aligned, apex estimated."""
    from cmnet_keras.data.generator.dataset import MANIFEST, generate_embedded_dataset

    root = generate_embedded_dataset(tmp_path / "embedded", seed=0, num_subjects=1, clips_per_subject=4,
                                     frame_size=128, missing_apex_rate=1.0, data_dir=pyfeat_data,
                                     model_path=face_model)
    truth = pd.read_csv(root / MANIFEST)
    blank = truth.iloc[3]  # its onset frame has no face
    onset_frame = root / f"CASME2_RAW_selected/sub01/{blank.filename}/img{blank.onset}.jpg"
    cv2.imwrite(str(onset_frame), np.full((128, 128, 3), 128, np.uint8))
    out = tmp_path / "cache"
    code = preprocess.main(["--dataset", "casme2", "--root", str(root), "--out", str(out), "--size", "32",
                            "--face-model", str(face_model), "--quiet"])
    assert code == preprocess.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "failed: 1" in printed and f"sub01/{blank.filename}: no face found in sub01/{blank.filename}" in printed
    index = cache.read_index(out)
    assert index.clip_id.tolist() == truth.filename.tolist()[:3]
    assert (index.apex_source == "estimated").all()
    for row, true in zip(index.itertuples(), truth.itertuples()):
        frames = cache.load_clip(out, row._asdict())["frames"]
        assert frames.shape == (16, 32, 32, 3) and frames.std() > 10  # a face, not a flat border
        true_apex = temporal.map_apex(true.apex - true.onset, temporal.temporal_plan(true.num_frames, 16))
        assert abs(row.apex - true_apex) <= 2, (row.clip_id, row.apex, true_apex)


def test_load_clip_names_truncated_file(tmp_path):
    record = {"clip_id": "c", "subject": "s", "label": 1, "emotion": "b", "apex": 2, "apex_source": "annotated",
              "file": cache.clip_relpath("s", "c"), "num_source_frames": 4}
    frames = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    cache.save_clip(tmp_path, record, frames)
    clip = cache.load_clip(tmp_path, record["file"])
    np.testing.assert_array_equal(clip["frames"], frames)
    assert (clip["apex"], clip["label"]) == (2, 1)
    path = tmp_path / record["file"]
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(cache.CacheError, match=r"Truncated cache clip .*c\.raw: 43 bytes, expected 48"):
        cache.load_clip(tmp_path, record["file"])
    with pytest.raises(cache.CacheError, match=r"Truncated cache clip .*c\.raw"):
        cache.read_sidecar(tmp_path, record["file"])
    path.write_bytes(bytes(48))  # right length, other content: the sidecar's sha256 tells
    with pytest.raises(cache.CacheError, match=r"Corrupt cache clip .*c\.raw"):
        cache.read_sidecar(tmp_path, record["file"])


def _batches(dataset):
    """The numpy batches of a tf.data dataset or of a `PyDataset` (`batches.ClipBatches`)."""
    return list(dataset.as_numpy_iterator() if hasattr(dataset, "as_numpy_iterator") else dataset)


# The tf.data path needs TensorFlow; the numpy one runs under every backend.
INPUT_PATHS = ["pipeline", pytest.param("batches", marks=pytest.mark.backend)]


@pytest.mark.parametrize("path", INPUT_PATHS)
@pytest.mark.parametrize("num_clips, min_batch, expected", [(7, 3, [4, 3]), (6, 3, [4]), (6, 1, [4, 2]), (8, 2, [4, 4])])
def test_epochs_drop_a_last_batch_smaller_than_min_batch(tmp_path, synthetic_cache, path, num_clips, min_batch,
                                                         expected):
    from cmnet_keras.data import batches

    module = importlib.import_module(f"cmnet_keras.data.{path}")

    cache_dir = synthetic_cache(tmp_path / "c", ["s1"], clips_per_subject=num_clips)
    index = cache.read_index(cache_dir)
    data = module.make_epochs_dataset(cache_dir, index, 4, seeds=[1, 2], min_batch=min_batch)
    sizes = [len(label) for _, label in _batches(data)]
    assert sizes == expected * 2
    assert batches.epoch_steps(num_clips, 4, min_batch) == len(expected)
    with pytest.raises(ValueError, match="min_batch must be in 1..batch_size=4, got 5"):
        module.make_epochs_dataset(cache_dir, index, 4, seeds=[1], min_batch=5)


@pytest.mark.parametrize("path", INPUT_PATHS)
def test_epochs_keep_their_order_on_every_pass(tmp_path, synthetic_cache, path):
    """Keras under tf.distribute reads a first batch from a pass of its own, then trains on a new pass."""
    module = importlib.import_module(f"cmnet_keras.data.{path}")

    cache_dir = synthetic_cache(tmp_path / "c", ["s1", "s2"], clips_per_subject=4)
    index = cache.read_index(cache_dir)
    data = module.make_epochs_dataset(cache_dir, index, 4, seeds=[1, 2])

    def apexes(dataset):
        passed = [x["apex"].tolist() for x, _ in _batches(dataset)]
        if hasattr(dataset, "on_epoch_end"):  # a PyDataset: Keras ends its epoch so
            dataset.on_epoch_end()
        return passed

    first = apexes(data)
    assert apexes(data) == first
    assert sorted(sum(first[:2], [])) == sorted(index["apex"].tolist())  # one epoch: every clip once
    assert first[:2] != first[2:]  # each epoch in its own seed's order
    once = module.make_dataset(cache_dir, index=index, batch_size=4, shuffle=True, seed=1)
    assert apexes(once) != apexes(once)  # make_dataset's default: a new order on every pass


def test_both_input_paths_yield_the_same_batches(tmp_path, synthetic_cache):
    """tf.data and the numpy PyDataset over two epochs: the same arrays, in numpy's permutation of each seed."""
    from cmnet_keras.data import batches, pipeline

    cache_dir = synthetic_cache(tmp_path / "c", ["s1", "s2", "s3"], clips_per_subject=3)
    index = cache.read_index(cache_dir).iloc[::-1].iloc[1:]  # a subset in another order: 8 clips
    clips = np.stack([np.fromfile(cache_dir / f, np.uint8).reshape(16, 32, 32, 3) for f in index["file"]])
    for min_batch in (1, 2):
        tf_batches = _batches(pipeline.make_epochs_dataset(cache_dir, index, 3, seeds=[5, 9], min_batch=min_batch))
        np_batches = _batches(batches.make_epochs_dataset(cache_dir, index, 3, seeds=[5, 9], min_batch=min_batch))
        orders = [np.random.default_rng(seed).permutation(8) for seed in (5, 9)]
        kept = [rows for order in orders for rows in np.split(order, [3, 6]) if len(rows) >= min_batch]
        assert len(tf_batches) == len(np_batches) == len(kept) == 2 * batches.epoch_steps(8, 3, min_batch)
        for (tf_x, tf_y), (np_x, np_y), rows in zip(tf_batches, np_batches, kept):
            for got in (tf_x["frames"], np_x["frames"]):
                assert got.dtype == np.uint8
                np.testing.assert_array_equal(got, clips[rows])
            for got_x, got_y in ((tf_x, tf_y), (np_x, np_y)):
                assert got_x["apex"].dtype == got_y.dtype == np.int32
                np.testing.assert_array_equal(got_x["apex"], index["apex"].to_numpy()[rows])
                np.testing.assert_array_equal(got_y, index["label"].to_numpy()[rows])
    for kwargs in ({}, {"shuffle": True, "seed": 4, "reshuffle": False, "drop_remainder": True}):
        tf_batches = _batches(pipeline.make_dataset(cache_dir, index=index, batch_size=3, **kwargs))
        np_batches = _batches(batches.make_dataset(cache_dir, index=index, batch_size=3, **kwargs))
        assert [len(y) for _, y in np_batches] == ([3, 3] if kwargs else [3, 3, 2])
        for (tf_x, tf_y), (np_x, np_y) in zip(tf_batches, np_batches, strict=True):
            np.testing.assert_array_equal(tf_x["frames"], np_x["frames"])
            np.testing.assert_array_equal(tf_y, np_y)


@pytest.mark.backend
def test_numpy_batches_name_a_missing_or_truncated_clip(tmp_path, synthetic_cache):
    from cmnet_keras.data import batches

    cache_dir = synthetic_cache(tmp_path / "c", ["s1"], clips_per_subject=3)
    index = cache.read_index(cache_dir)
    data = batches.make_dataset(cache_dir, batch_size=2)
    path = cache_dir / index["file"].iloc[2]
    path.write_bytes(path.read_bytes()[:-1])
    data[0]  # the batch without it reads
    with pytest.raises(cache.CacheError, match=rf"Truncated cache clip {re.escape(str(path))}: 49151 bytes, "
                                               r"expected 49152"):
        data[1]
    path.unlink()
    with pytest.raises(cache.CacheError, match=rf"Unreadable cache clip {re.escape(str(path))}"):
        data[1]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        batches.make_dataset(cache_dir, batch_size=0)
