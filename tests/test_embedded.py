"""The embedded real-face dataset: layout, sheet, determinism, subtle localised movement."""

import hashlib

import cv2
import numpy as np
import pandas as pd
import pytest

from cmnet_keras.commands.embedded import main
from cmnet_keras.data import media
from cmnet_keras.data.generator.dataset import generate_embedded_dataset
from cmnet_keras.data.face import FaceAligner

COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
           "Estimated Emotion"]
CASME2_CLASSES = {"disgust", "happiness", "repression", "surprise", "others"}


def _points(connections):
    return sorted({i for c in connections for i in (c.start, c.end)})


@pytest.fixture(scope="module")
def regions():
    """Face regions from mediapipe's own landmark groups (not the generator's constants)."""
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    return {
        "mouth": _points(C.FACE_LANDMARKS_LIPS),
        "brows": _points(C.FACE_LANDMARKS_LEFT_EYEBROW) + _points(C.FACE_LANDMARKS_RIGHT_EYEBROW),
        "nose": _points(C.FACE_LANDMARKS_NOSE),
        "face": _points(C.FACE_LANDMARKS_FACE_OVAL),
        "chin": [152, 148, 176, 149, 377, 400, 378],
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, pyfeat_data, face_model):
    root = tmp_path_factory.mktemp("embedded") / "casme2"
    return generate_embedded_dataset(root, seed=0, num_subjects=3, clips_per_subject=5,
                                     missing_apex_rate=0.3, data_dir=pyfeat_data,
                                     model_path=face_model)


@pytest.fixture(scope="module")
def aligner(face_model):
    with FaceAligner(face_model, output_size=64) as a:
        yield a


def _tree_hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_casme2_layout_and_sheet(dataset):
    csv = pd.read_csv(dataset / "CASME2-coding-embedded.csv", dtype=str)
    xlsx = pd.read_excel(dataset / "CASME2-coding-embedded.xlsx", engine="openpyxl", dtype=str)
    assert list(csv.columns) == COLUMNS and list(xlsx.columns) == COLUMNS
    pd.testing.assert_frame_equal(csv, xlsx)
    assert len(csv) == 15 and set(csv["Estimated Emotion"]) == CASME2_CLASSES
    assert (csv["ApexFrame"] == "/").any() and (csv["ApexFrame"] != "/").any()
    onsets = []
    for row in csv.itertuples(index=False):
        onset, offset = int(row.OnsetFrame), int(row.OffsetFrame)
        folder = dataset / "CASME2_RAW_selected" / f"sub{int(row.Subject):02d}" / row.Filename
        numbers = [media.frame_number(p) for p in media.list_frame_files(folder)]
        assert numbers == list(range(onset, offset + 1))
        assert all(p.name == f"img{n}.jpg" for p, n in zip(media.list_frame_files(folder), numbers))
        assert 12 <= len(numbers) <= 40
        if row.ApexFrame != "/":
            assert onset < int(row.ApexFrame) < offset
        onsets.append(onset)
    assert any(o != 1 for o in onsets)
    frame = media.read_image(next((dataset / "CASME2_RAW_selected").rglob("*.jpg")))
    assert frame.shape == (320, 320, 3)


def test_same_seed_same_bytes_other_seed_differs(tmp_path, pyfeat_data, face_model):
    kwargs = dict(num_subjects=2, clips_per_subject=2, data_dir=pyfeat_data, model_path=face_model)
    a = _tree_hashes(generate_embedded_dataset(tmp_path / "a", seed=0, **kwargs))
    b = _tree_hashes(generate_embedded_dataset(tmp_path / "b", seed=0, **kwargs))
    c = _tree_hashes(generate_embedded_dataset(tmp_path / "c", seed=1, **kwargs))
    assert a == b
    assert sum(name.endswith(".xlsx") for name in a) == 1
    jpegs = lambda hashes: {v for k, v in hashes.items() if k.endswith(".jpg")}  # noqa: E731
    assert jpegs(a).isdisjoint(jpegs(c))


def _region_mask(landmarks, indices, shape, grow):
    hull = cv2.convexHull(landmarks[indices].astype(np.float32)).astype(np.int32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    if grow:
        mask = cv2.dilate(mask, np.ones((grow, grow), np.uint8))
    return mask.astype(bool)


def _clip_measures(dataset, row, aligner, regions):
    folder = dataset / "CASME2_RAW_selected" / f"sub{row.subject:02d}" / row.filename
    onset = media.read_image(folder / f"img{row.onset}.jpg")
    apex = media.read_image(folder / f"img{row.apex}.jpg")
    landmarks = aligner.landmarks(onset, str(folder))
    diff = np.abs(apex.astype(np.float64) - onset.astype(np.float64)).mean(axis=-1)
    grow = int(0.05 * np.linalg.norm(landmarks[234] - landmarks[454]))
    means = {name: diff[_region_mask(landmarks, idx, diff.shape, 0 if name == "face" else grow)]
             .mean() for name, idx in regions.items()}
    # Largest displacement after the preprocessing's 64x64 alignment (Farneback optical flow).
    aligned = aligner.align_clip(np.stack([onset, apex]), source=str(folder))
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in aligned]
    flow = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 2, 9, 3, 5, 1.1, 0)
    return means, float(np.percentile(np.linalg.norm(flow, axis=-1), 99))


def test_movement_is_subtle_and_where_the_class_says(dataset, aligner, regions):
    truth = pd.read_csv(dataset / "embedded_manifest.csv")
    sheet = pd.read_csv(dataset / "CASME2-coding-embedded.csv", dtype=str)
    shown = sheet["ApexFrame"] != "/"
    assert (sheet.loc[shown, "ApexFrame"].astype(int).values == truth.loc[shown.values, "apex"]).all()
    checked = 0
    for row in truth.itertuples(index=False):
        blinking = row.blink_frame <= row.apex < row.blink_frame + row.blink_length
        if blinking:
            continue  # a blink at the apex moves the eyes too: the class test needs a clean apex
        means, flow = _clip_measures(dataset, row, aligner, regions)
        # Subtle: a few grey levels on average over the face, a few pixels at 64x64.
        assert means["face"] < 0.06 * 255, (row.filename, means)
        assert 1.0 < flow < 8.0, (row.filename, flow)
        mouth, brows = means["mouth"], means["brows"]
        if row.emotion in ("happiness", "repression"):
            assert mouth > 2.5 * brows, (row.emotion, means)
        elif row.action_units == "17":
            assert means["chin"] > 2.5 * brows, (row.emotion, means)
        elif row.emotion == "surprise" or row.action_units == "4":
            assert brows > 2.5 * mouth, (row.emotion, means)
        else:  # disgust: nose wrinkle and brow lowering, not the chin
            assert row.emotion == "disgust"
            assert min(means["nose"], brows) > 2.5 * means["chin"], (row.emotion, means)
        checked += 1
    assert checked >= 8


def test_bad_arguments(tmp_path, dataset, pyfeat_data):
    with pytest.raises(ValueError, match="num_subjects"):
        generate_embedded_dataset(tmp_path, num_subjects=0, data_dir=pyfeat_data)
    with pytest.raises(ValueError, match="clips_per_subject"):
        generate_embedded_dataset(tmp_path, clips_per_subject=0, data_dir=pyfeat_data)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_embedded_dataset(dataset, data_dir=pyfeat_data)


def test_cli(tmp_path, pyfeat_data, face_model, capsys):
    out = tmp_path / "cli"
    code = main(["--out", str(out), "--seed", "3", "--subjects", "1", "--clips-per-subject", "2",
                 "--data-dir", str(pyfeat_data), "--model", str(face_model)])
    assert code == 0
    assert "wrote 2 clips" in capsys.readouterr().out
    assert len(pd.read_csv(out / "CASME2-coding-embedded.csv")) == 2
    assert main(["--out", str(out), "--subjects", "1", "--data-dir", str(pyfeat_data)]) == 2
