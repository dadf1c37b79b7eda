"""Reading clips from frame folders and video files as RGB uint8 arrays."""

import pathlib
import re

import numpy as np

from cmnet_keras import optional

cv2 = optional.require("cv2")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")


class FrameReadError(ValueError):
    """A frame or video could not be read; the message names the file."""


def frame_number(path):
    """Returns the last integer in a file name (`reg_img46.jpg` -> 46)."""
    numbers = re.findall(r"\d+", pathlib.Path(path).stem)
    if not numbers:
        raise FrameReadError(f"No frame number in the file name: {path}")
    return int(numbers[-1])


def list_frame_files(folder):
    """Lists the image files of a frame folder, sorted by frame number."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FrameReadError(f"Frame folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: (frame_number(p), p.name))


def is_video(path):
    return pathlib.Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_image(path):
    """Reads one image as RGB uint8 [H, W, 3]."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameReadError(f"Unreadable or missing frame: {path}")
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


def read_video(path, indices=None):
    """Reads a video as RGB uint8 [T, H, W, 3]: every frame, or the 0-based `indices`."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FrameReadError(f"Unreadable video: {path}")
    wanted = None if indices is None else sorted(set(int(i) for i in indices))
    frames = {}
    position = 0
    last = None if wanted is None else wanted[-1]
    while last is None or position <= last:
        if not capture.grab():
            break
        if wanted is None or position in wanted:
            ok, frame = capture.retrieve()
            if not ok:
                raise FrameReadError(f"Corrupt frame {position} in video: {path}")
            frames[position] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        position += 1
    capture.release()
    if not frames:
        raise FrameReadError(f"No decodable frames in video: {path}")
    order = sorted(frames) if indices is None else [int(i) for i in indices]
    missing = [i for i in order if i not in frames]
    if missing:
        raise FrameReadError(f"Video {path} has {position} frames; missing frames {missing[:5]}")
    return np.stack([frames[i] for i in order])


def clip_length(path):
    """Number of frames of a clip: a video file or a frame folder."""
    return video_frame_count(path) if is_video(path) else len(list_frame_files(path))


def read_clip(path, indices=None):
    """Reads a clip (video file or frame folder) as RGB uint8 [T, H, W, 3]."""
    if is_video(path):
        return read_video(path, indices)
    files = list_frame_files(path)
    if not files:
        raise FrameReadError(f"No image frames in folder: {path}")
    chosen = files if indices is None else [files[int(i)] for i in indices]
    return np.stack([read_image(f) for f in chosen])
