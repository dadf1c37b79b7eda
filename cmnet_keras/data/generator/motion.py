"""The movements of each class and their displacement fields (Gaussian radial basis functions around landmarks)."""

import dataclasses
import math

import numpy as np

from cmnet_keras.data.face import eye_centres

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
