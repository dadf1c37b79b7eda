"""Non-learned intensity references: how far each timeline frame has moved from the first one.

Both work on a clip's cached, aligned frames and give one value per frame, 0
at the first: `flow_intensity` (the mean magnitude of OpenCV's Farnebäck dense
optical flow from the first frame to each frame) and `difference_intensity`
(the mean absolute grey-level difference from the first frame). They are what
a learned intensity k has to beat at following the true intensity, and at
ignoring what is not the expression (blinks, head drift, noise).
"""

import numpy as np

from cmnet_keras import optional

# Farnebäck parameters for 64-224 px faces: pyramid scale, levels, window, iterations, poly_n, poly_sigma.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=9, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def _grey(frames):
    cv2 = optional.require("cv2")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 1:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} {frames.shape}")
    return [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]


def flow_intensity(frames):
    """Mean Farnebäck optical-flow magnitude (pixels) from frame 0 to each frame, [T] float64.

    Args:
        frames: uint8 [T, H, W, 3] RGB.
    """
    cv2 = optional.require("cv2")
    grey = _grey(frames)
    values = [0.0]
    for frame in grey[1:]:
        flow = cv2.calcOpticalFlowFarneback(grey[0], frame, None, **FARNEBACK)
        values.append(float(np.linalg.norm(flow, axis=-1).mean()))
    return np.asarray(values, np.float64)


def difference_intensity(frames):
    """Mean absolute grey-level difference from frame 0 to each frame, [T] float64.

    Args:
        frames: uint8 [T, H, W, 3] RGB.
    """
    grey = np.stack(_grey(frames)).astype(np.float64)
    return np.abs(grey - grey[0]).mean(axis=(1, 2))
