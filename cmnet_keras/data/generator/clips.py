"""One clip: its random parameters (`plan_clip`) and its frames (`render_clip`)."""

import dataclasses
import math

import numpy as np

from cmnet_keras import optional
from cmnet_keras.data.generator.motion import CHEEKS, CLASS_MOVEMENTS, blink_field, movement_field
from cmnet_keras.data.truth import raised_cosine

cv2 = optional.require("cv2")


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
