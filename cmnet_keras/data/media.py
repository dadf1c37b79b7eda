"""Reading clips from frame folders and video files as RGB uint8 arrays."""

import pathlib
import re

import numpy as np

from cmnet_keras import optional

cv2 = optional.require("cv2")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
IMAGE_SIGNATURES = (JPEG_START, b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*")  # JPEG, PNG, BMP, TIFF
JPEG_END_SEARCH = 1024  # bytes at the end searched for the end-of-image marker (some writers pad)


class FrameReadError(ValueError):
    """A frame or video could not be read; the message names the file."""


def frame_number(path):
    """Returns the last integer in a file name (`reg_img46.jpg` -> 46)."""
    numbers = re.findall(r"\d+", pathlib.Path(path).stem)
    if not numbers:
        raise FrameReadError(f"No frame number in the file name: {path}")
    return int(numbers[-1])


def is_metadata_name(name):
    """Whether a name is another system's bookkeeping: hidden (`._img1.jpg`, `.DS_Store`) or `__MACOSX`."""
    return name.startswith(".") or name == "__MACOSX"


def not_a_frame(path):
    """Why a file named like a frame (an `IMAGE_SUFFIXES` name) is not one, or None if it is a frame.

    A frame has a number in its name, and content that starts as a JPEG, PNG,
    BMP or TIFF file does; a JPEG also holds its end-of-image marker (not truncated).
    """
    if not re.search(r"\d", path.stem):
        return "no frame number in the name"
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(max(size - JPEG_END_SEARCH, 0))
            tail = handle.read()
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    if size == 0:
        return "0 bytes"
    if not head.startswith(IMAGE_SIGNATURES):
        return f"not an image ({size} bytes)"
    if head.startswith(JPEG_START) and JPEG_END not in tail:
        return "truncated JPEG: no end-of-image marker"
    return None


def list_frame_files(folder, skipped=None):
    """The frames of a frame folder, sorted by frame number.

    Frames are the files with an `IMAGE_SUFFIXES` name that `not_a_frame`
    accepts. Other systems' bookkeeping (`is_metadata_name`), files of other
    suffixes (`Thumbs.db`, `desktop.ini`, notes) and folders are ignored.

    Args:
        folder: a frame folder.
        skipped: a list to which "NAME (why)" is appended for each file named
            like a frame that is not one (0 bytes, truncated, not an image, no number).
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FrameReadError(f"Frame folder not found: {folder}")
    files = []
    for path in sorted(folder.iterdir()):
        if is_metadata_name(path.name) or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        reason = not_a_frame(path)
        if reason is None:
            files.append(path)
        elif skipped is not None:
            skipped.append(f"{path.name} ({reason})")
    return sorted(files, key=lambda p: (frame_number(p), p.name))


def is_video(path):
    return pathlib.Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_image(path):
    """Reads one image as RGB uint8 [H, W, 3].

    Grayscale, RGBA (alpha dropped) and 16-bit images are converted (16-bit
    values v become round(v / 257)); an empty file, a JPEG without its
    end-of-image marker (truncated) or an undecodable file raise.

    Raises:
        FrameReadError: names the file and what is wrong.
    """
    try:
        data = np.fromfile(path, np.uint8)  # also for non-ASCII paths, where cv2.imread fails on Windows
    except OSError as error:
        raise FrameReadError(f"Unreadable or missing frame: {path} ({error.strerror or error})") from error
    if data.size == 0:
        raise FrameReadError(f"Empty frame file (0 bytes): {path}")
    if data[:2].tobytes() == JPEG_START and JPEG_END not in data[-JPEG_END_SEARCH:].tobytes():
        raise FrameReadError(f"Truncated JPEG (no end-of-image marker): {path}")
    # ANYCOLOR | ANYDEPTH: gray stays 1 channel, 16 bits stay 16, alpha is dropped, EXIF orientation applied.
    image = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise FrameReadError(f"Unreadable or corrupt frame: {path}")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise FrameReadError(f"Unsupported pixel type {image.dtype} (use 8- or 16-bit images): {path}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def video_frame_count(path):
    """Counts the decodable frames of a video (decodes without converting)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameReadError(f"Unreadable video: {path}")
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def video_fps(path):
    """The frame rate a video declares (frames per second), or None when it declares none."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameReadError(f"Unreadable video: {path}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return float(fps) if np.isfinite(fps) and fps > 0 else None


def iter_video(path, stop=None):
    """Yields (position, load) for the frames of a video in order, the first `stop` at most.

    Frames are only grabbed; `load()` decodes frame `position` as RGB uint8
    [H, W, 3], and must be called before the next frame is taken.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameReadError(f"Unreadable video: {path}")
    try:
        position = 0
        while (stop is None or position < stop) and capture.grab():

            def load(position=position):
                ok, frame = capture.retrieve()
                if not ok:
                    raise FrameReadError(f"Corrupt frame {position} in video: {path}")
                return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

            yield position, load
            position += 1
    finally:
        capture.release()


def iter_clip(path, stop=None):
    """`iter_video` for a video file or a frame folder (frames in frame-number order)."""
    if is_video(path):
        yield from iter_video(path, stop)
        return
    for position, file in enumerate(list_frame_files(path)[:stop]):
        yield position, lambda file=file: read_image(file)


def read_video(path, indices=None):
    """Reads a video as RGB uint8 [T, H, W, 3]: every frame, or the 0-based `indices`."""
    wanted = None if indices is None else set(int(i) for i in indices)
    stop = None if wanted is None else max(wanted, default=-1) + 1
    frames = {}
    count = 0
    for position, load in iter_video(path, stop):
        count = position + 1
        if wanted is None or position in wanted:
            frames[position] = load()
    if not frames:
        raise FrameReadError(f"No decodable frames in video: {path}")
    order = sorted(frames) if indices is None else [int(i) for i in indices]
    missing = [i for i in order if i not in frames]
    if missing:
        raise FrameReadError(f"Video {path} has {count} frames; missing frames {missing[:5]}")
    return np.stack([frames[i] for i in order])


def clip_length(path):
    """Number of frames of a clip: a video file or a frame folder."""
    return video_frame_count(path) if is_video(path) else len(list_frame_files(path))
