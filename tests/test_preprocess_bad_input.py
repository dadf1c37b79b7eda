"""Bad input never stops the rest (issue 10, item 3): one broken clip per case in a cropped CASME II tree.

Converted (valid images, processed): RGBA (alpha dropped), 16-bit (v -> round(v / 257)) and grayscale
frames; an apex outside onset..offset (kept, apex estimated, noted). Failed, named, the others processed
(exit 3): frames of different sizes in a clip, a video without decodable frames, onset after offset, a
frame cell that is not a number, a duplicated sheet row, conflicting rows for one clip. Fatal (exit 2): a
sheet missing a required column. Files named like frames that are not (zero bytes, truncated, no number)
are left out of their clip, which goes on: `test_dataset_copies.py`.
"""

import re

import cv2
import numpy as np
import pandas as pd
import pytest

from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache
from fixtures import bad_input_table as table
from fixtures import casme2_sheet_frame, frame_rgb, onset_after_offset, rewrite_sheet, run_preprocess
from fixtures import write_bad_input_tree as write_tree

SIZE = 8
BAD, BAD_FOLDER, ONSET_FRAME = "sub02/EP11_01", "Cropped/sub02/EP11_01", "reg_img16"
GOOD = ["sub01/EP02_01f", "sub26/EP07_28"]


def onset_image(n=16, size=8):
    image = np.empty((size, size, 3), np.uint8)
    image[...] = frame_rgb(n)
    return image


def sizes_differ(root):
    cv2.imwrite(str(root / BAD_FOLDER / f"{ONSET_FRAME}.png"), onset_image(size=10)[..., ::-1])


def video_without_frames(root):
    folder = root / BAD_FOLDER
    for frame in folder.iterdir():
        frame.unlink()
    folder.rmdir()
    writer = cv2.VideoWriter(str(folder.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), 25, (8, 8))
    writer.release()  # a container with no frame


def frame_cell_not_a_number(root):
    bad = table().astype({"onset": object})
    bad.loc[1, "onset"] = "16a"
    rewrite_sheet(root, casme2_sheet_frame(bad))


def duplicated_row(root):
    frame = casme2_sheet_frame(table())
    rewrite_sheet(root, pd.concat([frame, frame.iloc[[1]]], ignore_index=True))


def conflicting_rows(root):
    frame = casme2_sheet_frame(table())
    other = frame.iloc[[1]].copy()
    other["Estimated Emotion"] = "happiness"
    rewrite_sheet(root, pd.concat([frame, other], ignore_index=True))


def missing_column(root):
    rewrite_sheet(root, casme2_sheet_frame(table()).drop(columns=["OffsetFrame"]))


FAILED_CASES = [  # (id, suffix, break the tree, message expected in the summary)
    ("sizes-differ-in-a-clip", ".png", sizes_differ,
     rf"{BAD}: .*EP11_01: frames differ in size .*{ONSET_FRAME}\.png 10x10"),
    ("video-without-frames", ".png", video_without_frames,
     r"row 3: (video has no decodable frames|Unreadable video): .*EP11_01\.mp4"),
    ("onset-after-offset", ".png", onset_after_offset, r"row 3: offset frame 16 is before onset frame 106 .*EP11_01"),
    ("frame-cell-not-a-number", ".png", frame_cell_not_a_number,
     rf"row 3 \({BAD}\): onset cell '16a' is not a frame number"),
    ("duplicated-row", ".png", duplicated_row, rf"row 5: duplicate of .* row 3 \({BAD}\); the first is used"),
    ("conflicting-rows", ".png", conflicting_rows, rf"{BAD}: conflicting rows for one clip \(.*row 3 and .*row 5\)"),
]


def cached_names(out):
    index = cache.read_index(out)
    return (index.subject + "/" + index.clip_id).tolist()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("suffix, damage, message", [c[1:] for c in FAILED_CASES], ids=[c[0] for c in FAILED_CASES])
def test_bad_clip_is_named_and_the_others_processed(tmp_path, capsys, suffix, damage, message):
    root = write_tree(tmp_path / "casme2", suffix)
    damage(root)
    out = tmp_path / "cache"
    assert run_preprocess(root, out) == preprocess.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert re.search(message, printed), printed
    failures = 2 if damage is conflicting_rows else 1
    assert f"failed: {failures} (" in printed
    names = cached_names(out)
    assert set(GOOD) <= set(names)
    assert (BAD in names) == (damage is duplicated_row)  # a duplicate keeps its first row
    for file in cache.read_index(out).file:
        assert cache.load_clip(out, file)["frames"].shape == (16, SIZE, SIZE, 3)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sheet_missing_a_required_column_is_fatal(tmp_path, capsys):
    root = write_tree(tmp_path / "casme2")
    missing_column(root)
    assert run_preprocess(root, tmp_path / "cache") == preprocess.EXIT_FATAL
    err = capsys.readouterr().err
    assert "CASME2-coding-20140508.xlsx" in err and "['offset']" in err
    assert not (tmp_path / "cache").exists()


def rgba(image):
    return np.dstack([image[..., ::-1], np.full(image.shape[:2], 90, np.uint8)])  # BGRA, alpha not 255


def sixteen_bit(image):
    return np.minimum(image[..., ::-1].astype(np.uint32) * 257 + 100, 65535).astype(np.uint16)  # round(. / 257) = v


def grayscale(image):
    return image[..., 0]


CONVERTED_CASES = [("rgba-png", rgba), ("16-bit-png", sixteen_bit), ("grayscale-png", grayscale)]


@pytest.mark.parametrize("convert", [c[1] for c in CONVERTED_CASES], ids=[c[0] for c in CONVERTED_CASES])
def test_other_pixel_formats_are_converted(tmp_path, capsys, convert):
    """Every frame of the clip re-saved in another pixel format gives the clip of the plain RGB frames."""
    gray = convert is grayscale
    root = write_tree(tmp_path / "plain")
    if gray:  # a gray image is only comparable to RGB frames with R = G = B
        for frame in (root / BAD_FOLDER).iterdir():
            cv2.imwrite(str(frame), np.repeat(cv2.imread(str(frame))[..., 2:], 3, axis=2))
    assert run_preprocess(root, tmp_path / "plain_cache") == preprocess.EXIT_OK
    for frame in (root / BAD_FOLDER).iterdir():
        image = cv2.imread(str(frame))[..., ::-1]
        assert cv2.imwrite(str(frame), convert(image))
    assert cv2.imread(str(root / BAD_FOLDER / f"{ONSET_FRAME}.png"), cv2.IMREAD_UNCHANGED).dtype == (
        np.uint16 if convert is sixteen_bit else np.uint8)
    assert run_preprocess(root, tmp_path / "cache") == preprocess.EXIT_OK
    assert "failed: 0" in capsys.readouterr().out
    expected = cache.load_clip(tmp_path / "plain_cache", cache.clip_relpath("sub02", "EP11_01"))["frames"]
    got = cache.load_clip(tmp_path / "cache", cache.clip_relpath("sub02", "EP11_01"))["frames"]
    np.testing.assert_array_equal(got, expected)
    assert len(cached_names(tmp_path / "cache")) == 3


def test_apex_outside_onset_offset_is_estimated_and_noted(tmp_path, capsys):
    root = write_tree(tmp_path / "casme2")
    bad = table()
    bad.loc[1, "apex"] = 150  # onset..offset = 16..106
    rewrite_sheet(root, casme2_sheet_frame(bad))
    with pytest.warns(UserWarning, match=rf"row 3 \({BAD}\): apex frame 150 outside onset..offset 16..106"):
        assert run_preprocess(root, tmp_path / "cache") == preprocess.EXIT_OK
    assert "kept with a correction: 1" in capsys.readouterr().out
    index = cache.read_index(tmp_path / "cache").set_index("clip_id")
    assert index.loc["EP11_01", "apex_source"] == "estimated"
    assert index.loc["EP02_01f", "apex_source"] == "annotated"
