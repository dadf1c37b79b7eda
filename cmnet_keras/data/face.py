"""Face alignment: landmarks once per clip, one eye-line crop for every frame.

`FaceAligner` finds the 478 mediapipe face-mesh landmarks on the reference
(onset) frame with the mediapipe Tasks `FaceLandmarker`, rotates so that the
eye centres lie on a horizontal line, takes a square box around the landmarks
with a margin, and applies that single affine transform to every frame of the
clip. A per-frame crop would jitter by more than the micro-movement itself.

Example:

    with FaceAligner(output_size=224) as aligner:
        crops = aligner.align_clip(frames, reference_index=0, source="sub01/EP02_01f")
"""

import math
import weakref

import numpy as np

from cmnet_keras import optional

cv2 = optional.require("cv2")

# Face-mesh eye landmarks (the subject's left eye is on the image's right);
# the point sets of mediapipe's FACE_LANDMARKS_LEFT_EYE / _RIGHT_EYE connections.
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)


class NoFaceError(ValueError):
    """No face was found; the message names the source (file or clip)."""


def _check_frame(frame, source):
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"{source or 'frame'}: expected a [H, W, 3] uint8 RGB frame, got shape "
            f"{frame.shape} dtype {frame.dtype}"
        )
    return np.ascontiguousarray(frame)


def _check_frames(frames, source):
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"{source or 'clip'}: expected [T, H, W, 3] uint8 RGB frames with T >= 1, got "
            f"shape {frames.shape} dtype {frames.dtype}"
        )
    return frames


def _check_size(size, name):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"{name} must be an int >= 8, got {size!r}")
    return int(size)


def eye_centres(landmarks):
    """Returns (image-left eye centre, image-right eye centre) as [2] arrays.

    Args:
        landmarks: [478, 2] landmark pixel coordinates.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    a = landmarks[list(RIGHT_EYE)].mean(axis=0)
    b = landmarks[list(LEFT_EYE)].mean(axis=0)
    return (a, b) if a[0] <= b[0] else (b, a)


def face_crop_transform(landmarks, output_size, margin=0.1):
    """Affine [2, 3] float32 mapping source pixels to an eye-aligned square crop.

    The rotation about the eye midpoint makes the eye line horizontal; the
    square box is the landmarks' bounding box in that rotated frame, its side
    the larger box side enlarged by `margin` on every side.

    Args:
        landmarks: [478, 2] landmark pixel coordinates in the source frame.
        output_size: side of the output square in pixels.
        margin: fraction of the box side added on each side.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    a, b = eye_centres(landmarks)
    theta = math.atan2(b[1] - a[1], b[0] - a[0])
    cos, sin = math.cos(theta), math.sin(theta)
    # Rotation by -theta: R maps source offsets to the upright face frame.
    rot = np.array([[cos, sin], [-sin, cos]])
    upright = landmarks @ rot.T
    low, high = upright.min(axis=0), upright.max(axis=0)
    side = float((high - low).max()) * (1.0 + 2.0 * margin)
    centre = (low + high) / 2.0
    scale = output_size / side
    linear = scale * rot
    # Pixel centres: output pixel (S-1)/2 is the box centre.
    offset = (output_size - 1) / 2.0 - scale * centre
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)


def warp_frames(frames, transform, output_size):
    """Applies one affine transform to every frame; anti-aliased when shrinking.

    When the crop shrinks the face 2x or more, frames are warped to an
    integer multiple of `output_size` and box-averaged down (cv2.INTER_AREA),
    which equals the same transform up to resampling.

    Args:
        frames: [T, H, W, 3] uint8.
        transform: [2, 3] affine mapping source pixels to output pixels.
        output_size: side of the output square.

    Returns:
        [T, output_size, output_size, 3] uint8.
    """
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (2, 3) or not np.isfinite(transform).all():
        raise ValueError(f"transform must be a finite [2, 3] affine, got {transform!r}")
    scale = math.sqrt(abs(np.linalg.det(transform[:, :2])))
    factor = int(min(8, max(1, math.floor(1.0 / max(scale, 1e-6)))))
    mid_size = output_size * factor
    # Output pixel x comes from intermediate pixel factor * x + (factor - 1) / 2.
    mid = np.concatenate([factor * transform[:, :2],
                          factor * transform[:, 2:] + (factor - 1) / 2.0], axis=1)
    out = np.empty((len(frames), output_size, output_size, 3), np.uint8)
    for i, frame in enumerate(frames):
        warped = cv2.warpAffine(frame, mid, (mid_size, mid_size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        if factor > 1:
            warped = cv2.resize(warped, (output_size, output_size), interpolation=cv2.INTER_AREA)
        out[i] = warped
    return out


def resize_clip(frames, size):
    """Resizes already-cropped frames [T, H, W, 3] uint8 to [T, size, size, 3] uint8."""
    size = _check_size(size, "size")
    frames = _check_frames(frames, "")
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        shrink = frame.shape[0] > size or frame.shape[1] > size
        out[i] = cv2.resize(frame, (size, size),
                            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


class FaceAligner:
    """Eye-line face alignment with the mediapipe Tasks FaceLandmarker.

    Not thread-safe: use one aligner per thread or process. Use it as a context
    manager or call `close()`: a landmarker still open at interpreter exit
    makes mediapipe print an ignored exception.

    Args:
        model_path: `face_landmarker.task` file; default from
            `cmnet_keras.assets.face_landmarker_path`.
        output_size: side of the square output crop in pixels.
        margin: fraction of the landmark box side added on each side.
        num_faces: faces the landmarker looks for; the largest one is used.
    """

    def __init__(self, model_path=None, output_size=224, margin=0.1, num_faces=4):
        self.output_size = _check_size(output_size, "output_size")
        if not 0.0 <= margin <= 1.0:
            raise ValueError(f"margin must be in [0, 1], got {margin!r}")
        if isinstance(num_faces, bool) or not isinstance(num_faces, int) or num_faces < 1:
            raise ValueError(f"num_faces must be an int >= 1, got {num_faces!r}")
        self.margin = float(margin)
        self.num_faces = num_faces
        # Deferred imports: mediapipe is slow to import and only needed here.
        optional.require("mediapipe")
        from mediapipe.tasks.python import BaseOptions, vision

        from cmnet_keras.assets import face_landmarker_path

        self.model_path = face_landmarker_path(model_path)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=num_faces,
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._finalizer = weakref.finalize(self, self._landmarker.close)
        # mediapipe cannot close once interpreter shutdown has begun.
        self._finalizer.atexit = False

    def close(self):
        """Frees the landmarker; the aligner cannot be used afterwards."""
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def faces(self, frame, source=""):
        """Landmarks of every face found (up to `num_faces`), largest first.

        Args:
            frame: [H, W, 3] uint8 RGB.
            source: file or clip name used in error messages.

        Returns:
            list of [478, 2] float32 pixel coordinates (x, y); empty if no face.
        """
        mp = optional.require("mediapipe")

        frame = _check_frame(frame, source)
        if not self._finalizer.alive:
            raise RuntimeError("FaceAligner was closed")
        result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame))
        h, w = frame.shape[:2]
        faces = [np.array([[p.x * w, p.y * h] for p in face], np.float32)
                 for face in result.face_landmarks]
        return sorted(faces, key=lambda f: -float(np.prod(f.max(axis=0) - f.min(axis=0))))

    def landmarks(self, frame, source=""):
        """Landmarks [478, 2] float32 (x, y pixels) of the largest face.

        Raises:
            NoFaceError: no face in the frame; the message names `source`.
        """
        faces = self.faces(frame, source)
        if not faces:
            raise NoFaceError(f"no face found in {source or 'the given frame'}")
        return faces[0]

    def crop_transform(self, frame, source=""):
        """[2, 3] float32 affine mapping `frame` pixels to the aligned square crop."""
        return face_crop_transform(self.landmarks(frame, source), self.output_size, self.margin)

    def warp(self, frames, transform):
        """Applies `transform` to every frame: [T, H, W, 3] -> [T, S, S, 3] uint8."""
        return warp_frames(_check_frames(frames, ""), transform, self.output_size)

    def align_clip(self, frames, reference_index=0, source=""):
        """Crops every frame with the transform found on the reference frame.

        Args:
            frames: [T, H, W, 3] uint8 RGB.
            reference_index: frame whose landmarks define the crop (the onset).
            source: file or clip name used in error messages.

        Returns:
            [T, output_size, output_size, 3] uint8.
        """
        frames = _check_frames(frames, source)
        if not -len(frames) <= reference_index < len(frames):
            raise ValueError(f"{source or 'clip'}: reference_index {reference_index} out of "
                             f"range for {len(frames)} frames")
        transform = self.crop_transform(frames[reference_index], source)
        return warp_frames(frames, transform, self.output_size)
