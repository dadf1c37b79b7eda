"""Copies of a release that passed through other systems: what is not a frame is never read as one.

Each clip folder of a CASME II, SAMM and SMIC tree gets macOS, Windows and
archive bookkeeping (ignored without a word) and, in some clips, a file named
like a frame that is not one (zero bytes, truncated, text, no number), named once
in that clip's note while the clip goes on with its real frames.
"""

import pytest

from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache, readers
from fixtures import SMIC_CLIPS, read_quietly, write_casme2_tree, write_samm_tree, write_smic_tree

APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + bytes(4072)  # 4096 bytes


def add_bookkeeping(folder):
    """What macOS, Windows and archivers leave beside the frames: never a frame, never named."""
    for frame in sorted(folder.iterdir())[:3]:
        (folder / f"._{frame.name}").write_bytes(APPLEDOUBLE)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\r\nIconResource=C:\\icon.ico\r\n")


def damage(folder, frame, how):
    """Turns the real frame `frame` of `folder` into a file named like a frame that is not one; its note text."""
    path = folder / frame
    if how == "zero":
        path.write_bytes(b"")
        return f"{frame} (0 bytes)"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
        return f"{frame} (truncated JPEG: no end-of-image marker)"
    path.write_bytes(b"not an image")
    return f"{frame} (not an image (12 bytes))"


def check(spec, clean, damaged):
    """The clean tree's clips and problems; each clip's frames are its real ones; one note per damaged clip."""
    assert spec.dropped.problems == clean.dropped.problems
    frames_before = clip_frames(clean)
    assert sorted(frames_before) == sorted(clip_frames(spec))
    for clip in spec.clips:
        key = f"{clip.subject}/{clip.clip_id}"
        texts = sorted(damaged.get(key, ()))
        left_out = {text.split(" (")[0] for text in texts}
        assert [f.name for f in clip.frame_files] == [n for n in frames_before[key] if n not in left_out]
        assert clip.num_frames == len(clip.frame_files)
        notes = [n for n in spec.dropped.notes if n.endswith(f" in {clip.path}")]
        if texts:
            (note,) = notes
            assert f": {len(texts)} files named like frames are not frames, left out: {', '.join(texts)} in" in note
        else:
            assert notes == []
    assert set(damaged) <= set(frames_before)


def clip_frames(spec):
    return {f"{c.subject}/{c.clip_id}": [f.name for f in c.frame_files] for c in spec.clips}


def test_casme2_copy(tmp_path):
    root = tmp_path / "casme2"
    write_casme2_tree(root)
    clean = read_quietly("casme2", root)
    base = root / "CASME2_RAW_selected"
    for folder in base.glob("sub*/*"):
        add_bookkeeping(folder)
    (base / "sub01" / "EP02_01f" / "cover.jpg").write_bytes((base / "sub01" / "EP02_01f" / "img50.jpg").read_bytes())
    damaged = {"sub01/EP02_01f": [damage(base / "sub01" / "EP02_01f", "img47.jpg", "zero"),
                                  "cover.jpg (no frame number in the name)"],
               "sub26/EP07_28": [damage(base / "sub26" / "EP07_28", "img40.jpg", "truncated")]}
    (root / "__MACOSX" / "CASME2_RAW_selected" / "sub01" / "EP02_01f").mkdir(parents=True)
    (root / "__MACOSX" / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "._img46.jpg").write_bytes(APPLEDOUBLE)
    check(read_quietly("casme2", root), clean, damaged)


def test_samm_copy(tmp_path):
    write_samm_tree(tmp_path)
    clean = read_quietly("samm", tmp_path)
    for folder in (tmp_path / "SAMM").glob("*/*"):
        add_bookkeeping(folder)
    third = clip_frames(clean)["006/006_1_2"][2]
    damaged = {"006/006_1_2": [damage(tmp_path / "SAMM" / "006" / "006_1_2", third, "text")]}
    check(read_quietly("samm", tmp_path), clean, damaged)


def test_smic_copy(tmp_path):
    write_smic_tree(tmp_path)
    clean = read_quietly("smic", tmp_path)
    raw = tmp_path / "SMIC_all_raw" / "HS"
    for subject, emotion, clip, first, _ in SMIC_CLIPS:
        add_bookkeeping(raw / subject / "micro" / emotion / clip)
    (raw / "s1" / "micro" / "negative" / "._s1_ne_09").mkdir()  # a folder of bookkeeping: no clip
    mirror = tmp_path / "__MACOSX" / "SMIC_all_raw" / "HS" / "s1" / "micro" / "negative" / "s1_ne_01"
    mirror.mkdir(parents=True)
    (mirror / "._image96.bmp").write_bytes(APPLEDOUBLE)
    damaged = {"s2/s2_sur_01": [damage(raw / "s2" / "micro" / "surprise" / "s2_sur_01", "image3.bmp", "zero"),
                             damage(raw / "s2" / "micro" / "surprise" / "s2_sur_01", "image5.bmp", "text")]}
    check(read_quietly("smic", tmp_path), clean, damaged)


def test_preprocess_of_a_copy_caches_every_clip(tmp_path, capsys):
    root = tmp_path / "casme2"
    write_casme2_tree(root, cropped=True)
    folder = root / "Cropped" / "sub01" / "EP02_01f"
    add_bookkeeping(folder)
    damage(folder, "reg_img50.jpg", "zero")
    out = tmp_path / "cache"
    with pytest.warns(UserWarning, match=r"1 files named like frames are not frames, left out: reg_img50\.jpg"):
        code = preprocess.main(["--dataset", "casme2", "--root", str(root), "--out", str(out), "--cropped",
                                "--size", "8", "--quiet"])
    assert code == preprocess.EXIT_OK
    printed = capsys.readouterr().out
    assert printed.count("reg_img50.jpg (0 bytes)") == 1
    assert len(cache.read_index(out)) == len(read_quietly("casme2", root).clips)
    assert readers.media.list_frame_files(folder)[0].name == "reg_img46.jpg"
