"""Prediction on a raw face video or frame folder: one clip, or a timeline of sliding windows.

The library behind `python -m cmnet_keras.predict`. A clip (the whole input,
or `onset`..`offset`) is planned as in the training cache: the N timeline
frames are placed uniformly (`temporal.temporal_plan`), only the frames they
need are decoded, and one eye-line crop is applied to all of them. The crop
comes from the clip's first frame that shows a face (searched frame by frame
from the clip's first frame on), so a video may start without a face. In a
timeline each window is such a clip, aligned on its own first face frame, and
a window without a face in any frame is a "no-face" row.

Times are frame numbers (0-based positions in the video, or in a frame
folder's frame-number order: "75") or seconds ("2.5s", the frame shown at that
time, which needs the video's frame rate or `fps`).
"""

import dataclasses
import json
import math
import os
import pathlib
import re
import sys
import warnings

import numpy as np
from tqdm import tqdm

from cmnet_keras import files, optional, reports
from cmnet_keras.data import face, media, temporal
from cmnet_keras.data.preprocessing import CROP_MARGIN

cv2 = optional.require("cv2")

RESULT_FILE = "result.json"
PLOT_FILE = "intensity.png"
TIMELINE_CSV = "timeline.csv"
TIMELINE_PLOT = "timeline.png"
NO_FACE = "no-face"
BATCH_SIZE = 8  # windows per model call
TIME_PATTERN = re.compile(r"(\d+)|(\d+(?:\.\d*)?|\.\d+)s")
CLIP_NEEDED = "a clip is needed: a video or a folder of frames"


class KerasPredictor:
    """A `.keras` CMNet: `__call__(frames [B, T, S, S, 3] uint8) -> {"probs", "intensity"}` numpy."""

    def __init__(self, path):
        import keras

        import cmnet_keras.models  # noqa: F401 (registers CMNet for load_model)

        self.model = keras.models.load_model(path, compile=False)
        config = self.model.config
        self.class_names = list(config.class_names)
        self.num_frames, self.image_size = config.num_frames, config.image_size

    def __call__(self, frames):
        from keras import ops

        outputs = self.model({"frames": frames}, training=False)
        return {k: ops.convert_to_numpy(outputs[k]).astype(np.float32) for k in ("probs", "intensity")}


class SavedModelPredictor:
    """A SavedModel from `cmnet_keras.export`, called through its `serving_default` signature."""

    def __init__(self, path):
        from cmnet_keras import optional
        from cmnet_keras.saved_model import INPUT_NAME, SIGNATURE_KEY, read_class_names, resolve_version_dir

        tf = optional.tensorflow_only(f"a SavedModel ({path})")
        self.path = resolve_version_dir(path)
        self.class_names = read_class_names(self.path)
        self._signature = tf.saved_model.load(str(self.path)).signatures[SIGNATURE_KEY]
        self._input = INPUT_NAME
        shape = self._signature.structured_input_signature[1][INPUT_NAME].shape
        self.num_frames, self.image_size = int(shape[1]), int(shape[2])

    def __call__(self, frames):
        import tensorflow as tf

        outputs = self._signature(**{self._input: tf.constant(frames, tf.uint8)})
        return {k: outputs[k].numpy().astype(np.float32) for k in ("probs", "intensity")}


def load_predictor(path):
    """KerasPredictor for a `.keras` file, SavedModelPredictor for a folder."""
    path = pathlib.Path(path)
    if path.is_file() and path.suffix == ".keras":
        return KerasPredictor(path)
    if path.is_dir():
        return SavedModelPredictor(path)
    if path.exists():
        raise ValueError(f"--model {path}: expected a .keras file or a SavedModel folder")
    raise FileNotFoundError(f"Model not found: {path}")


@dataclasses.dataclass(frozen=True)
class Source:
    """A video file or frame folder: its frame count and frame rate (None if unknown)."""

    path: pathlib.Path
    num_frames: int
    fps: float = None

    def describe(self):
        rate = f", {self.num_frames / self.fps:.2f} s at {self.fps:.2f} fps" if self.fps else ""
        return f"{self.path.name} ({self.num_frames} frames{rate})"

    def seconds(self, frame):
        """Start time of frame `frame` in seconds (None without a frame rate)."""
        return None if self.fps is None else frame / self.fps


def open_source(path, fps=None):
    """Checks that `path` is a readable clip and counts its frames.

    Args:
        path: a video file or a folder of frame images.
        fps: frame rate; default the video's own (a frame folder has none).

    Raises:
        FileNotFoundError, media.FrameReadError: names the input and what is wrong.
    """
    path = pathlib.Path(path)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a positive number, got {fps!r}")
    if not path.exists():
        raise FileNotFoundError(f"Input not found: {path}")
    if path.is_file() and path.suffix.lower() in media.IMAGE_SUFFIXES:
        raise media.FrameReadError(f"{path} is a still image; {CLIP_NEEDED}")
    if path.is_file() and not media.is_video(path):
        raise media.FrameReadError(f"{path}: not a video ({', '.join(media.VIDEO_SUFFIXES)}); {CLIP_NEEDED}")
    if path.is_file() and path.stat().st_size == 0:
        raise media.FrameReadError(f"Empty video file (0 bytes): {path}")
    skipped = []
    if path.is_dir() and not media.list_frame_files(path, skipped):
        raise media.FrameReadError(f"No image frames ({', '.join(media.IMAGE_SUFFIXES)}) in folder {path}; "
                                   f"{CLIP_NEEDED}")
    if skipped:
        warnings.warn(f"{path}: {len(skipped)} files named like frames are not frames, left out: {', '.join(skipped)}")
    count = media.clip_length(path)
    if count < 1:
        raise media.FrameReadError(f"No decodable frames in video: {path}")
    if fps is None and media.is_video(path):
        fps = media.video_fps(path)
    return Source(path, count, fps)


def parse_time(text, name):
    """A time option as ("frames", int) or ("seconds", float): "75" -> frame 75, "2.5s" -> 2.5 seconds."""
    match = TIME_PATTERN.fullmatch(str(text).strip())
    if match is None:
        raise ValueError(f"--{name} {text}: expected a frame number (e.g. 75) or seconds (e.g. 2.5s)")
    return ("frames", int(match[1])) if match[1] else ("seconds", float(match[2]))


def time_to_frames(text, name, source, duration=False):
    """Frames of a time option: a frame number, or the frame shown at that many seconds.

    With `duration`, seconds become a frame count (rounded) instead of a position.
    """
    unit, value = parse_time(text, name)
    if unit == "frames":
        return value
    if source.fps is None:
        raise ValueError(f"--{name} {text}: seconds need a frame rate and {source.path} has none; "
                         f"give --fps or frame numbers")
    # The epsilon keeps 4.1 s * 30 fps at frame 123 although 4.1 * 30 = 122.99999999999999.
    return round(value * source.fps) if duration else math.floor(value * source.fps + 1e-6)


def select_range(source, onset=None, offset=None):
    """(first, last) frame of the clip `onset`..`offset` (time options; default the whole input)."""
    first = 0 if onset is None else time_to_frames(onset, "onset", source)
    last = source.num_frames - 1 if offset is None else time_to_frames(offset, "offset", source)
    for name, text, frame in (("onset", onset, first), ("offset", offset, last)):
        if frame >= source.num_frames:
            raise ValueError(f"--{name} {text} (frame {frame}) is past the end of {source.describe()}; "
                             f"the last frame is {source.num_frames - 1}")
    if last <= first:
        end = "the last frame" if offset is None else f"--offset {offset}"
        start = "the first frame" if onset is None else f"--onset {onset}"
        raise ValueError(f"{end} (frame {last}) must come after {start} (frame {first}) in {source.describe()}")
    return first, last


def window_spans(source, first, last, window, stride=None):
    """Inclusive (start, end) frames of every whole window in first..last.

    `window` and `stride` are time options (`--window`, `--stride`); the stride
    defaults to half the window.
    """
    length = time_to_frames(window, "window", source, duration=True)
    step = max(length // 2, 1) if stride is None else time_to_frames(stride, "stride", source, duration=True)
    if length > last - first + 1:
        raise ValueError(f"--window {window} ({length} frames) is longer than the clip: frames {first}..{last} "
                         f"of {source.describe()}")
    if length < 2:
        raise ValueError(f"--window {window} ({length} frames) needs >= 2 frames")
    if step < 1:
        raise ValueError(f"--stride {stride} ({step} frames) needs >= 1 frame")
    return [(start, start + length - 1) for start in range(first, last - length + 2, step)]


@dataclasses.dataclass
class AlignedClip:
    """One span of frames, planned and face-cropped.

    Attributes:
        start, end: first and last source frame (inclusive).
        plan: the N-frame timeline plan of the span (positions relative to `start`).
        face_frame: the source frame whose face gave the crop; None: no frame of the span shows a face.
        frames: uint8 [N, S, S, 3] timeline frames; None without a face.
    """

    start: int
    end: int
    plan: temporal.TemporalPlan
    face_frame: int = None
    frames: np.ndarray = None

    @property
    def frames_used(self):
        """The source frames the timeline is made of."""
        return (self.start + self.plan.source_indices).tolist()


def align_spans(source, spans, num_frames, aligner, done=None):
    """Face-cropped N-frame clips of frame spans, in one pass over the source.

    Each span is searched for a face from its first frame on; the first frame
    showing one gives the crop of all of the span's timeline frames. Only the
    frames searched and the frames the plans need are decoded.

    Args:
        source: `Source`.
        spans: (start, end) inclusive frame ranges, starts ascending.
        num_frames: timeline length N.
        aligner: a face.FaceAligner (its output_size is the crop side).
        done: if given, called with no arguments as each span's last frame is passed.

    Returns:
        list of AlignedClip, in `spans` order.
    """
    clips = [AlignedClip(start, end, temporal.temporal_plan(end - start + 1, num_frames)) for start, end in spans]
    needed = [set(clip.frames_used) for clip in clips]
    held = [{} for _ in clips]  # per span: frames read before its face was found
    crops = [{} for _ in clips]
    transforms = [None] * len(clips)
    live, upcoming, shape = [], 0, None  # live: the spans holding the current frame
    for position, load in media.iter_clip(source.path, stop=max(end for _, end in spans) + 1):
        while upcoming < len(clips) and clips[upcoming].start <= position:
            live.append(upcoming)
            upcoming += 1
        searching = [k for k in live if transforms[k] is None]
        wanted = [k for k in live if position in needed[k]]
        if not searching and not wanted:
            continue
        frame = load()
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise media.FrameReadError(f"{source.path}: frame {position} is {frame.shape[1]}x{frame.shape[0]}, "
                                       f"the frames before are {shape[1]}x{shape[0]}")
        for k in wanted:
            held[k][position] = frame
        faces = aligner.faces(frame, source=f"{source.path} frame {position}") if searching else []
        if faces:
            transform = face.face_crop_transform(faces[0], aligner.output_size, aligner.margin)
            for k in searching:
                clips[k].face_frame, transforms[k] = position, transform
        for k in live:
            if transforms[k] is not None and held[k]:
                order = sorted(held[k])
                crops[k].update(zip(order, aligner.warp(np.stack([held[k][i] for i in order]), transforms[k])))
                held[k].clear()
            if position == clips[k].end:
                if transforms[k] is not None:
                    clips[k].frames = clips[k].plan.apply(np.stack([crops[k][i] for i in sorted(crops[k])]))
                held[k], crops[k] = {}, {}
                if done is not None:
                    done()
        live = [k for k in live if clips[k].end > position]
    return clips


def _progress_bar(total, what, progress):
    """A tqdm bar of `total` windows on stderr, "<what> windows: 40/212"; off unless `progress`."""
    return tqdm(total=total, desc=f"{what} windows", unit="window", disable=not progress, file=sys.stderr)


def _predict_clips(predictor, clips, progress=False):
    """Runs the model on the clips with a face; returns (probs, intensity) lists, None for the others."""
    found = [k for k, clip in enumerate(clips) if clip.frames is not None]
    probs, intensity = [None] * len(clips), [None] * len(clips)
    with _progress_bar(len(found), "predicting", progress) as bar:
        for begin in range(0, len(found), BATCH_SIZE):
            batch = found[begin:begin + BATCH_SIZE]
            outputs = predictor(np.stack([clips[k].frames for k in batch]))
            for k, p, i in zip(batch, outputs["probs"], outputs["intensity"]):
                probs[k], intensity[k] = p, i
            bar.update(len(batch))
    return probs, intensity


def _as_predictor(model):
    return load_predictor(model) if isinstance(model, (str, os.PathLike)) else model


def _aligned(source, spans, predictor, face_model, progress=False):
    """`align_spans` with a FaceAligner for the predictor; NoFaceError when no span shows a face.

    With `progress`, a bar of the spans aligned goes to stderr.
    """
    with (face.FaceAligner(model_path=face_model, output_size=predictor.image_size, margin=CROP_MARGIN) as aligner,
          _progress_bar(len(spans), "aligning", progress) as bar):
        clips = align_spans(source, spans, predictor.num_frames, aligner, done=bar.update)
    if all(clip.face_frame is None for clip in clips):
        raise face.NoFaceError(f"no face found in any frame of {source.describe()}: "
                               f"frames {spans[0][0]}..{spans[-1][1]} searched")
    return clips


def serving_request(frames):
    """TF Serving REST body (row format) for one preprocessed clip [T, S, S, 3] uint8."""
    return {"signature_name": "serving_default", "instances": [np.asarray(frames, np.uint8).tolist()]}


def predict_clip(path, model, out, face_model=None, request=None, onset=None, offset=None, fps=None):
    """Predicts one clip and writes `result.json` and `intensity.png` into `out`.

    Args:
        path: video file or frame folder.
        model: a predictor (`load_predictor`) or a model path.
        out: output folder.
        face_model: `face_landmarker.task` (default: cmnet_keras.assets).
        request: if given, a file to write the TF Serving REST request body to.
        onset, offset: first and last frame of the clip as time options
            ("75", "2.5s"); default the first and last frame.
        fps: frame rate for seconds (default: the video's).

    Returns:
        the result dict (as written to `result.json`); `frames_used` lists the
        source frames the timeline was made of, `face_frame` the frame whose face gave the crop.
    """
    source = open_source(path, fps)
    first, last = select_range(source, onset, offset)
    predictor = _as_predictor(model)
    clip, = _aligned(source, [(first, last)], predictor, face_model)
    if request is not None:
        files.write_bytes(request, json.dumps(serving_request(clip.frames), separators=(",", ":")).encode())
    (probs,), (intensity,) = _predict_clips(predictor, [clip])
    index = int(np.argmax(probs))
    apex = temporal.estimate_apex(clip.frames)
    result = {
        "source": str(path),
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__,
        "class": predictor.class_names[index],
        "class_index": index,
        "probabilities": {name: float(p) for name, p in zip(predictor.class_names, probs)},
        "intensity": [float(v) for v in intensity],
        "source_frame_count": source.num_frames,
        "fps": source.fps,
        "onset": first,
        "offset": last,
        "face_frame": clip.face_frame,
        "frames_used": clip.frames_used,
        "num_frames": int(len(clip.frames)),
        "estimated_apex": apex,
        "intensity_plot": PLOT_FILE,
    }
    out = pathlib.Path(out)
    title = f"{source.path.name} frames {first}..{last}: {result['class']} ({probs[index]:.2f})"
    reports.plot_clip_intensity(intensity, out / PLOT_FILE, title, apex)
    files.write_json(out / RESULT_FILE, result)
    return result


def timeline_fields(class_names):
    """Columns of `timeline.csv`."""
    return (["window", "start_frame", "end_frame", "start_s", "end_s", "face_frame", "class", "confidence"]
            + [f"prob_{name}" for name in class_names] + ["intensity_peak", "intensity_peak_frame"])


def timeline_row(number, clip, source, class_names, probs=None, intensity=None):
    """One `timeline.csv` row; a clip without a face has class "no-face" and empty scores."""
    end = source.seconds(clip.end + 1)  # the end of the last frame
    row = {"window": number, "start_frame": clip.start, "end_frame": clip.end,
           "start_s": None if end is None else round(source.seconds(clip.start), 4),
           "end_s": None if end is None else round(end, 4), "face_frame": clip.face_frame, "class": NO_FACE}
    if probs is None:
        return row
    peak = int(np.argmax(intensity))
    row.update({"class": class_names[int(np.argmax(probs))], "confidence": round(float(np.max(probs)), 6),
                **{f"prob_{name}": round(float(p), 6) for name, p in zip(class_names, probs)},
                "intensity_peak": round(float(intensity[peak]), 6),
                "intensity_peak_frame": clip.start + int(round(clip.plan.source_positions[peak]))})
    return row


def predict_timeline(path, model, out, window, stride=None, face_model=None, onset=None, offset=None, fps=None,
                     progress=False):
    """Slides a clip over the input and writes `timeline.csv` and `timeline.png` into `out`.

    Every whole window of `window` frames, `stride` apart, in onset..offset is
    resampled to the model's N frames (uniform plan) and aligned on its own
    first face frame; frames after the last whole window are not used.

    Args:
        path, model, out, face_model, onset, offset, fps: as in `predict_clip`.
        window, stride: window length and step as time options ("30", "1s");
            stride default half the window.
        progress: show on stderr how many windows are aligned, then predicted (tqdm bars).

    Returns:
        the rows written to `timeline.csv` (`timeline_fields`), one per window.
    """
    source = open_source(path, fps)
    spans = window_spans(source, *select_range(source, onset, offset), window, stride)
    predictor = _as_predictor(model)
    clips = _aligned(source, spans, predictor, face_model, progress)
    probs, intensity = _predict_clips(predictor, clips, progress)
    names = predictor.class_names
    rows = [timeline_row(k, clip, source, names, p, i) for k, (clip, p, i) in enumerate(zip(clips, probs, intensity))]
    out = pathlib.Path(out)
    files.write_csv(out / TIMELINE_CSV, rows, timeline_fields(names))
    title = (f"{source.describe()}: {len(rows)} windows of {clips[0].end - clips[0].start + 1} frames, "
             f"each resampled to {predictor.num_frames}")
    reports.plot_timeline(rows, names, out / TIMELINE_PLOT, title=title, seconds=source.fps is not None)
    return rows
