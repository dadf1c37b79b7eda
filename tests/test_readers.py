"""Dataset readers on small fixture trees in each released layout (built here)."""

import io
import warnings

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from cmnet_keras.data import readers, sheets

# Real CASME II rows (bob.db.casme2, /work/shared/data/casme2_annotations.csv, BSD-3-Clause):
# subject, filename, onset, apex, offset, emotion, action units. Apex -1 = not annotated.
CASME2_ROWS = """subject,filename,onset,apex,offset,emotion,action_units
1,EP02_01f,46,59,86,happiness,12
1,EP03_02,131,139,161,others,18
1,EP19_03f,81,96,161,others,4
1,EP19_05f,396,416,446,disgust,4+L10
2,EP01_11f,46,91,96,repression,15
2,EP11_01,16,69,106,surprise,1+L2
4,EP12_01f,261,-1,321,disgust,4+7
9,EP13_02,71,96,131,fear,20
10,EP13_01,11,59,76,fear,L16
17,EP15_01,81,104,111,sadness,1
26,EP15_01,42,61,81,sadness,1+4
26,EP07_28,31,51,71,others,14
"""
CASME2_CLASSES = ("disgust", "happiness", "repression", "surprise", "others")


def casme2_table():
    return pd.read_csv(io.StringIO(CASME2_ROWS), dtype={"action_units": str})


def write_frames(folder, numbers, prefix="img", suffix=".jpg", value=None, size=8):
    """Writes uniform frames `<prefix><number><suffix>`; value(number) -> RGB triple (default from the number)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        rgb = value(n) if value else (n % 256, (3 * n) % 256, 100)
        image = np.empty((size, size, 3), np.uint8)
        image[...] = rgb
        assert cv2.imwrite(str(folder / f"{prefix}{n}{suffix}"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def casme2_sheet_frame(table):
    """The table as the released CASME II sheet: real column names, '/' where the apex is unknown."""
    apex = [("/" if a < 0 else int(a)) for a in table["apex"]]
    return pd.DataFrame({
        "Subject": table["subject"], "Filename": table["filename"], "OnsetFrame": table["onset"],
        "ApexFrame": pd.Series(apex, dtype=object), "OffsetFrame": table["offset"],
        "Action Units": table["action_units"], "Estimated Emotion": table["emotion"],
    })


def write_casme2_tree(root, table=None, sheet="xlsx", cropped=False, suffix=".jpg", value=None):
    """CASME II layout: sheet + CASME2_RAW_selected/subNN/<clip>/imgN (or Cropped/.../reg_imgN)."""
    table = casme2_table() if table is None else table
    frame = casme2_sheet_frame(table)
    root.mkdir(parents=True, exist_ok=True)
    sheet_path = root / f"CASME2-coding-20140508.{sheet}"
    if sheet == "xlsx":
        frame.to_excel(sheet_path, index=False)
    else:
        frame.to_csv(sheet_path, index=False)
    base, prefix = (root / "Cropped", "reg_img") if cropped else (root / "CASME2_RAW_selected", "img")
    for row in table.itertuples():
        write_frames(base / f"sub{row.subject:02d}" / row.filename, range(row.onset, row.offset + 1),
                     prefix, suffix, value)
    return sheet_path


def read_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return readers.read_dataset(*args, **kwargs)


@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
@pytest.mark.parametrize("cropped", [False, True])
def test_casme2_reader(tmp_path, sheet, cropped):
    table = casme2_table()
    write_casme2_tree(tmp_path, sheet=sheet, cropped=cropped)
    spec = read_quietly("casme2", tmp_path, cropped=cropped)

    assert spec.class_names == CASME2_CLASSES
    kept = table[table.emotion.isin(CASME2_CLASSES)]
    assert [(c.subject, c.clip_id) for c in spec.clips] == [
        (f"sub{s:02d}", f) for s, f in zip(kept.subject, kept.filename)
    ]
    assert [c.label for c in spec.clips] == [CASME2_CLASSES.index(e) for e in kept.emotion]
    folder = "Cropped" if cropped else "CASME2_RAW_selected"
    prefix = "reg_img" if cropped else "img"
    for clip, row in zip(spec.clips, kept.itertuples()):
        assert clip.path == tmp_path / folder / clip.subject / clip.clip_id
        assert clip.num_frames == row.offset - row.onset + 1 == clip.length
        assert (clip.onset, clip.offset) == (0, clip.num_frames - 1)
        assert [f.name for f in clip.frame_files] == [f"{prefix}{n}.jpg" for n in range(row.onset, row.offset + 1)]
        if row.apex < 0:
            assert clip.apex is None  # '/' in the sheet
        else:
            assert clip.apex == row.apex - row.onset
            assert clip.frame_files[clip.apex].name == f"{prefix}{row.apex}.jpg"

    dropped = table[~table.emotion.isin(CASME2_CLASSES)]
    assert dict(spec.dropped.by_class) == dropped.emotion.value_counts().to_dict()
    expected_subjects = dropped.subject.map(lambda s: f"sub{s:02d}").value_counts().to_dict()
    assert dict(spec.dropped.by_subject) == expected_subjects
    assert spec.dropped.problems == []
    text = spec.summary()
    assert "fear 2" in text and "sadness 2" in text and "sub26 1" in text and "sub09 1" in text


def test_casme2_numeric_frame_order(tmp_path):
    write_casme2_tree(tmp_path)
    clip = next(c for c in read_quietly("casme2", tmp_path).clips if c.clip_id == "EP19_03f")
    names = [f.name for f in clip.frame_files]
    assert names[18:21] == ["img99.jpg", "img100.jpg", "img101.jpg"]  # not img100 < img99 (text order)
    assert sorted(names) != names


def test_casme2_frame_numbers_mapped_to_positions_in_a_longer_folder(tmp_path):
    """A folder holding more than onset..offset: positions index the whole folder."""
    table = casme2_table().iloc[[0]]  # sub01 EP02_01f: 46, 59, 86
    write_casme2_tree(tmp_path, table)
    write_frames(tmp_path / "CASME2_RAW_selected/sub01/EP02_01f", range(40, 46))
    clip = readers.read_dataset("casme2", tmp_path).clips[0]
    assert (clip.onset, clip.apex, clip.offset, clip.num_frames) == (6, 19, 46, 47)
    assert clip.frame_files[clip.onset].name == "img46.jpg"
    assert clip.frame_files[clip.offset].name == "img86.jpg"


def test_missing_clip_folder_is_named_and_others_kept(tmp_path):
    write_casme2_tree(tmp_path)
    for f in (tmp_path / "CASME2_RAW_selected/sub02/EP11_01").iterdir():
        f.unlink()
    (tmp_path / "CASME2_RAW_selected/sub02/EP11_01").rmdir()
    with pytest.warns(UserWarning, match=r"row 7: clip folder not found: .*sub02[/\\]EP11_01"):
        spec = readers.read_dataset("casme2", tmp_path)
    assert len(spec.clips) == 7 and "EP11_01" not in {c.clip_id for c in spec.clips}
    assert len(spec.dropped.problems) == 1


def test_broken_sheet_names_file_and_missing_columns(tmp_path):
    write_casme2_tree(tmp_path)
    sheet = tmp_path / "CASME2-coding-20140508.xlsx"
    casme2_sheet_frame(casme2_table()).drop(columns=["ApexFrame", "Estimated Emotion"]).to_excel(sheet, index=False)
    with pytest.raises(sheets.SheetError, match=r"CASME2-coding-20140508\.xlsx.*\['apex', 'emotion'\]"):
        readers.read_dataset("casme2", tmp_path)


def test_unreadable_sheet_names_file(tmp_path):
    path = tmp_path / "CASME2-coding-broken.xlsx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(sheets.SheetError, match="CASME2-coding-broken.xlsx"):
        sheets.read_sheet(path)


def test_unknown_emotion_warns_with_file_and_row(tmp_path):
    table = casme2_table()
    table.loc[4, "emotion"] = "happyness"  # a typo; sheet row 6 (header is row 1)
    write_casme2_tree(tmp_path, table)
    with pytest.warns(UserWarning, match=r"CASME2-coding-20140508\.xlsx row 6: unknown emotion 'happyness'"):
        spec = readers.read_dataset("casme2", tmp_path)
    assert spec.dropped.by_class["happyness"] == 1
    assert "EP01_11f" not in {c.clip_id for c in spec.clips}


@pytest.mark.parametrize(
    "cell, expected",
    [(46, 46), (46.0, 46), ("46", 46), (" 46 ", 46), ("/", None), ("", None), (float("nan"), None),
     (-1, None), ("-1", None), ("-", None), ("?", None), ("N/A", None), (None, None)],
)
def test_parse_frame_number(cell, expected):
    assert sheets.parse_frame_number(cell) == expected


@pytest.mark.parametrize("cell", ["12a", 46.5, "forty", "4 6"])
def test_parse_frame_number_refuses_text(cell):
    with pytest.raises(ValueError, match=f"{cell!r} is not a frame number"):
        sheets.parse_frame_number(cell)


def test_match_subject():
    assert readers.match_subject(1, ["sub02", "sub01", "sub10"]) == "sub01"
    assert readers.match_subject("10", ["sub01", "sub10"]) == "sub10"
    assert readers.match_subject(6.0, ["006", "016"]) == "006"
    assert readers.match_subject("006", ["006"]) == "006"
    assert readers.match_subject("s3", ["s1", "s3"]) == "s3"
    assert readers.match_subject(7, ["006"]) is None


SAMM_ROWS = [
    # Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes, Emotion
    (6, "006_1_2", 1, 5562, 5570, 5575, 14, "Micro - 1/2", "4+7", "", "Anger"),
    (6, "006_1_3", 1, 3912, 3920, 3925, 14, "Micro - 1/2", "12", "", "Happiness"),
    (6, "006_5_9", 5, 1020, "/", 1031, 12, "Micro - 1/2", "9", "", "Disgust"),
    (7, "007_3_1", 3, 998, 1003, 1010, 13, "Micro - 1/2", "R14", "", "Contempt"),
    (7, "007_6_2", 6, 95, 101, 104, 10, "Micro - 1/2", "1+2", "", "Surprise"),
    (7, "007_7_1", 7, 200, 204, 209, 10, "Micro - 1/2", "4", "", "Other"),
    (11, "011_2_3", 2, 5000, 5004, 5009, 10, "Micro - 1/2", "1+4", "", "Fear"),
    (11, "011_1_1", 1, 40, 45, 52, 13, "Micro - 1/2", "R12", "", "Happiness"),
]
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
               "Duration", "Type", "Action Units", "Notes", "Estimated Emotion"]
SAMM_PREAMBLE_ROWS = 12


def write_samm_tree(root, cropped_too=False):
    root.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["SAMM Micro-Movement FACS Codes v2"])
    for i in range(SAMM_PREAMBLE_ROWS - 2):
        sheet.append([f"Note {i}: coded by two FACS coders"] if i % 3 == 0 else [])
    sheet.append(["", "", "Micro-movements and micro-expressions"])
    sheet.append(SAMM_HEADER)
    for row in SAMM_ROWS:
        sheet.append(list(row))
    book.save(root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    for base in [root / "SAMM"] + ([root / "SAMM_CROP"] if cropped_too else []):
        for subject, name, _, onset, _, offset, *_ in SAMM_ROWS:
            write_frames(base / f"{subject:03d}" / name, range(onset, offset + 1), prefix=f"{subject:03d}_0",
                         size=6)
    # Zero-padded numbers: 006_05562.jpg (prefix "006_0" + 5562).
    return root


def test_samm_reader_with_preamble(tmp_path):
    write_samm_tree(tmp_path, cropped_too=True)
    spec = read_quietly("samm", tmp_path)
    assert spec.class_names == ("anger", "contempt", "happiness", "surprise", "others")
    expected = [r for r in SAMM_ROWS if r[-1] not in ("Disgust", "Fear")]
    assert [(c.subject, c.clip_id, c.emotion) for c in spec.clips] == [
        (f"{r[0]:03d}", r[1], r[-1].lower().replace("other", "others")) for r in expected
    ]
    for clip, row in zip(spec.clips, expected):
        assert clip.path.parent.parent.name == "SAMM"
        assert (clip.onset, clip.offset) == (0, row[5] - row[3])
        assert clip.apex == row[4] - row[3]
        assert clip.frame_files[0].name == f"{row[0]:03d}_0{row[3]}.jpg"
    emotions = pd.Series([r[-1].lower() for r in SAMM_ROWS])
    dropped = emotions[~emotions.isin(["anger", "contempt", "happiness", "surprise", "other"])]
    assert dict(spec.dropped.by_class) == dropped.value_counts().to_dict()
    assert dict(spec.dropped.by_subject) == {"006": 1, "011": 1}
    cropped = read_quietly("samm", tmp_path, cropped=True)
    assert {c.path.parent.parent.name for c in cropped.clips} == {"SAMM_CROP"}


def test_samm_sheet_header_found_below_preamble(tmp_path):
    write_samm_tree(tmp_path)
    table = sheets.read_sheet(tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert {"subject", "filename", "onset", "apex", "offset", "emotion", "action_units"} <= set(table.columns)
    assert len(table) == len(SAMM_ROWS)
    assert table["_row"].tolist() == list(range(SAMM_PREAMBLE_ROWS + 2, SAMM_PREAMBLE_ROWS + 2 + len(SAMM_ROWS)))
    assert sheets.parse_frame_number(table["apex"][2]) is None  # '/'


SMIC_CLIPS = [  # subject, class folder, clip, first frame, frame count
    ("s1", "negative", "s1_ne_01", 96, 12),
    ("s1", "positive", "s1_po_01", 5001, 20),
    ("s2", "surprise", "s2_sur_01", 1, 9),
    ("s2", "negative", "s2_ne_02", 330, 18),
    ("s3", "positive", "s3_po_05", 7, 30),
]


def write_smic_tree(root):
    for variant in ("SMIC_all_raw", "SMIC_all_cropped"):
        for subject, emotion, clip, first, count in SMIC_CLIPS:
            folder = root / variant / "HS" / subject / "micro" / emotion / clip
            write_frames(folder, range(first, first + count), prefix="image", suffix=".bmp", size=4)
        (root / variant / "HS" / "s4" / "micro").mkdir(parents=True)  # an empty subject
    return root


def test_smic_reader(tmp_path):
    write_smic_tree(tmp_path)
    with pytest.warns(UserWarning, match=r"subject folder has no clips.*SMIC_all_raw[/\\]HS[/\\]s4"):
        spec = readers.read_dataset("smic", tmp_path)
    assert spec.class_names == ("negative", "positive", "surprise")
    got = sorted((c.subject, c.emotion, c.clip_id, c.num_frames) for c in spec.clips)
    assert got == sorted((s, e, c, n) for s, e, c, _, n in SMIC_CLIPS)
    for clip in spec.clips:
        assert "SMIC_all_raw" in str(clip.path)
        assert clip.apex is None and (clip.onset, clip.offset) == (0, clip.num_frames - 1)
        assert clip.label == spec.class_names.index(clip.emotion)
    first = next(c for c in spec.clips if c.clip_id == "s1_ne_01")
    assert [f.name for f in first.frame_files][3:6] == ["image99.bmp", "image100.bmp", "image101.bmp"]
    cropped = read_quietly("smic", tmp_path, cropped=True)
    assert all("SMIC_all_cropped" in str(c.path) for c in cropped.clips) and len(cropped.clips) == 5


def write_video(path, count, value=lambda i: 20 * i, size=32, fourcc="mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (size, size))
    assert writer.isOpened(), f"cannot write {fourcc} video {path}"
    for i in range(count):
        writer.write(np.full((size, size, 3), value(i), np.uint8))
    writer.release()


def test_manifest_with_video_and_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "p1_smile.mp4", 10)
    write_frames(tmp_path / "frames" / "p2_frown", range(1, 31))
    (tmp_path / "manifest.csv").write_text(
        "subject,path,label,onset,apex,offset\n"
        "p1,videos/p1_smile.mp4,positive,1,5,8\n"
        "p2,frames/p2_frown,negative,3,12,25\n"
        "p2,videos/missing.mp4,negative,,,\n"
    )
    with pytest.warns(UserWarning, match=r"manifest.csv row 4: video not found"):
        spec = readers.read_dataset("manifest", tmp_path / "manifest.csv")
    assert spec.class_names == ("negative", "positive")
    video, folder = spec.clips
    assert video.frame_files is None and video.num_frames == 10
    assert (video.subject, video.clip_id, video.label) == ("p1", "p1_smile", 1)
    assert (video.onset, video.apex, video.offset, video.length) == (1, 5, 8, 8)
    assert (folder.onset, folder.apex, folder.offset) == (2, 11, 24)  # frame numbers 3, 12, 25 from 1
    assert folder.label == 0
    assert [c.clip_id for c in read_quietly("manifest", tmp_path).clips] == ["p1_smile", "p2_frown"]


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="Unknown dataset 'casme3'"):
        readers.read_dataset("casme3", ".")


def test_csv_sheet_with_ragged_preamble_and_second_worksheet(tmp_path):
    """Preamble lines with fewer fields than the table (CSV); the table on a later worksheet (xlsx)."""
    csv_path = tmp_path / "codes.csv"
    csv_path.write_text("SAMM codes\n\nversion,2\n" + ",".join(SAMM_HEADER) + "\n"
                        + "\n".join(",".join(str(v) for v in r) for r in SAMM_ROWS[:2]) + "\n")
    table = sheets.read_sheet(csv_path)
    assert table["filename"].tolist() == ["006_1_2", "006_1_3"] and table["_row"].tolist() == [5, 6]
    book = openpyxl.Workbook()
    book.active.append(["notes only"])
    data = book.create_sheet("codes")
    data.append(SAMM_HEADER)
    data.append(list(SAMM_ROWS[0]))
    book.save(tmp_path / "codes.xlsx")
    table = sheets.read_sheet(tmp_path / "codes.xlsx")
    assert table["onset"].tolist() == [5562] and table["_row"].tolist() == [2]


def test_empty_sheet_is_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(sheets.SheetError, match="empty.csv is empty"):
        sheets.read_sheet(tmp_path / "empty.csv")


def test_casme2_clip_as_video(tmp_path):
    table = casme2_table().iloc[[0, 1]]  # EP02_01f 46/59/86 (41 frames) becomes a video
    write_casme2_tree(tmp_path, table)
    folder = tmp_path / "CASME2_RAW_selected/sub01/EP02_01f"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    write_video(folder.with_suffix(".mp4"), 41, value=lambda i: 5 * i)
    video, frames = readers.read_dataset("casme2", tmp_path).clips
    assert video.path == folder.with_suffix(".mp4") and video.frame_files is None
    assert (video.onset, video.apex, video.offset, video.num_frames) == (0, 13, 40, 41)
    assert frames.frame_files is not None
