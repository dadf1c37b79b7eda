"""Temporal normalisation of a clip to N frames, apex mapping and apex estimation.

The paper unifies every clip to N = 16 frames: clips with at least N frames are
sampled at regular intervals, shorter ones are interpolated (here by linear
blending of the two neighbouring frames). Both cases place timeline frame i at
source position i * (N0 - 1) / (N - 1), so the onset (first) and offset (last)
frames are always kept ("uniform"). The "apex" method samples onset -> apex and
apex -> offset separately so the annotated apex frame is on the timeline.
"""

import dataclasses
import numbers

import numpy as np

from cmnet_keras import optional

cv2 = optional.require("cv2")


@dataclasses.dataclass(frozen=True)
class TemporalPlan:
    """Where each of the N timeline frames comes from in an N0-frame source clip.

    Timeline frame i = (1 - weight[i]) * source[lower[i]] + weight[i] * source[upper[i]].
    """

    num_source: int
    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray

    @property
    def num_frames(self):
        return len(self.lower)

    @property
    def source_indices(self):
        """Sorted source frames to read (nothing else is needed)."""
        used = np.concatenate([self.lower, self.upper[self.weight > 0]])
        return np.unique(used)

    @property
    def source_positions(self):
        """The (fractional) source position of every timeline frame."""
        return self.lower + self.weight

    def resample(self, values):
        """The timeline of per-source-frame values (e.g. a true intensity curve), blended as `apply`
        blends frames but not rounded.

        Args:
            values: [num_source, ...] one entry per source frame.

        Returns:
            [N, ...] float64.
        """
        values = np.asarray(values, np.float64)
        if len(values) != self.num_source:
            raise ValueError(f"Expected {self.num_source} values (one per source frame), got {len(values)}")
        w = self.weight.reshape((-1,) + (1,) * (values.ndim - 1)).astype(np.float64)
        return (1.0 - w) * values[self.lower] + w * values[self.upper]

    def apply(self, frames):
        """Builds the N timeline frames from the frames at `source_indices`.

        Args:
            frames: [len(source_indices), ...] uint8, in `source_indices` order.

        Returns:
            [N, ...] uint8.
        """
        frames = np.asarray(frames)
        indices = self.source_indices
        if len(frames) != len(indices):
            raise ValueError(f"Expected {len(indices)} frames (source_indices {indices.tolist()}), got {len(frames)}")
        lower = frames[np.searchsorted(indices, self.lower)]
        if not np.any(self.weight > 0):
            return lower
        upper = frames[np.searchsorted(indices, self.upper)]
        w = self.weight.reshape((-1,) + (1,) * (frames.ndim - 1)).astype(np.float32)
        blended = (1.0 - w) * lower.astype(np.float32) + w * upper.astype(np.float32)
        return np.clip(np.rint(blended), 0, 255).astype(frames.dtype)


METHODS = ("uniform", "apex")


def _check_apex(apex, num_source):
    """The apex as an int; ValueError unless it is a whole source frame 0..num_source - 1."""
    whole = isinstance(apex, numbers.Real) and not isinstance(apex, bool) and float(apex).is_integer()
    if not whole or not 0 <= apex < num_source:
        raise ValueError(f"apex must be a source frame in 0..{num_source - 1} (num_source {num_source}), "
                         f"got {apex!r}")
    return int(apex)


def _sample_segment(first, last, intervals):
    """Timeline frames at source positions first + j (last - first) / intervals, j = 0..intervals.

    A segment with at least as many source frames as timeline frames takes the
    frame nearest each position (halves round up); a shorter one blends frames
    floor(p) and floor(p) + 1 with weight frac(p). Exact integer arithmetic.

    Returns:
        (lower, upper, weight) arrays of length intervals + 1.
    """
    numerator = np.arange(intervals + 1, dtype=np.int64) * (last - first)
    if last - first >= intervals:
        nearest = first + (2 * numerator + intervals) // (2 * intervals)
        return nearest, nearest.copy(), np.zeros(intervals + 1, np.float32)
    lower = first + numerator // intervals
    weight = (numerator % intervals) / intervals
    return lower, np.minimum(lower + 1, last), weight.astype(np.float32)


def temporal_plan(num_source, num_frames=16, apex=None, method="uniform"):
    """Plans the N timeline frames of an N0-frame clip (onset..offset).

    "uniform" (the paper's regular-interval sampling): timeline frame i sits at
    source position p_i = i (N0 - 1) / (N - 1). N0 >= N: the frame nearest p_i
    (halves round up). N0 < N: blend of frames floor(p_i) and floor(p_i) + 1
    with weight frac(p_i).

    "apex" (needs `apex` = a; with apex None, or a at the onset or offset, it is
    "uniform"): the apex goes to timeline index k = round(a (N - 1) / (N0 - 1))
    (halves round up; the uniform frame nearest the apex), clamped to 1..N - 2 so
    the onset and offset stay. Frames 0..k sit at i a / k and frames k..N-1 at
    a + (i - k) (N0 - 1 - a) / (N - 1 - k): the N - 1 intervals are split
    between the two sides in proportion to their lengths, evenly spaced within
    each side, and frame k is exactly source frame a. Each side is sampled as
    "uniform" samples a clip: nearest frames when the side has at least as many
    source frames as timeline frames (always so when N0 >= N), else blended.

    Args:
        num_source: N0, frames in the source clip (onset..offset), >= 1.
        num_frames: N, frames of the timeline, >= 2 (>= 3 for "apex" with an
            apex strictly inside the clip).
        apex: 0-based source position of the apex (relative to the onset), or None.
        method: "uniform" or "apex".
    """
    if int(num_source) < 1:
        raise ValueError(f"num_source must be >= 1, got {num_source}")
    if int(num_frames) < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n0, n = int(num_source), int(num_frames)
    if apex is not None:
        apex = _check_apex(apex, n0)
    if method == "uniform" or apex is None or apex in (0, n0 - 1):
        return TemporalPlan(n0, *_sample_segment(0, n0 - 1, n - 1))
    if n < 3:
        raise ValueError(f"method 'apex' needs num_frames >= 3 for apex {apex} inside the clip "
                         f"(num_source {n0}), got num_frames {n}")
    k = min(max((2 * apex * (n - 1) + (n0 - 1)) // (2 * (n0 - 1)), 1), n - 2)
    before = _sample_segment(0, apex, k)
    after = _sample_segment(apex, n0 - 1, n - 1 - k)
    lower, upper, weight = (np.concatenate([left, right[1:]]) for left, right in zip(before, after))
    return TemporalPlan(n0, lower, upper, weight)


def map_apex(apex, plan):
    """The timeline index whose source position is nearest the apex (first on ties).

    For a plan made with method "apex" and this apex, that frame is the apex
    frame itself (source position exactly `apex`).

    Args:
        apex: 0-based source position of the apex (relative to the onset).
        plan: the clip's TemporalPlan.
    """
    apex = _check_apex(apex, plan.num_source)
    return int(np.argmin(np.abs(plan.source_positions - apex)))


def motion_curve(frames, max_side=32):
    """How far every frame departs from the straight onset -> offset path.

    d(t) = mean |g(t) - ((1 - a) g(0) + a g(T-1))|, a = t / (T - 1), on grey
    frames downscaled (area) so the longer side is at most `max_side` pixels.
    The onset and offset are (near) neutral, so the movement peaks at the apex,
    while a change that is linear over the clip (slow head drift, lighting)
    cancels; a plain difference from the onset frame would peak at the end of
    a drifting clip.

    Args:
        frames: [T, H, W, 3] or [T, H, W] uint8.

    Returns:
        [T] float32, 0 at the first and last frame.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(f"frames must be [T, H, W(, 3)] with T >= 1, got shape {frames.shape}")
    height, width = frames.shape[1:3]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    grey = []
    for frame in frames:
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        grey.append(cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float32))
    grey = np.stack(grey)
    a = np.linspace(0.0, 1.0, len(grey), dtype=np.float32)[:, None, None]
    path = (1.0 - a) * grey[0] + a * grey[-1]
    return np.abs(grey - path).mean(axis=(1, 2)).astype(np.float32)


def estimate_apex(frames, smooth=3, max_side=32):
    """Estimates the apex as the frame that departs most from the onset -> offset path.

    The motion curve (`motion_curve`) is smoothed with a centred moving average
    of `smooth` frames (edges repeated) so a single noisy frame cannot win; the
    apex is its argmax (first on ties). A clip with no motion gives 0 (onset).

    Args:
        frames: [T, H, W, 3] or [T, H, W] uint8, e.g. the 16 timeline frames.
        smooth: odd window length, >= 1.
        max_side: downscale size for the motion curve.

    Returns:
        int index into `frames`.
    """
    if smooth < 1 or smooth % 2 == 0:
        raise ValueError(f"smooth must be an odd window >= 1, got {smooth}")
    curve = motion_curve(frames, max_side)
    half = smooth // 2
    padded = np.pad(curve, half, mode="edge")
    smoothed = np.convolve(padded, np.ones(smooth, np.float32) / smooth, mode="valid")
    return int(np.argmax(smoothed))
