"""Dataset readers on small fixture trees in each released layout (written by `fixtures.py`)."""

import io
import pathlib
import shutil
import warnings

import openpyxl
import pandas as pd
import pytest

from cmnet_keras.data import readers, sheets
from fixtures import (AU_CELLS, AU_TEXT, CASME2_CLASSES, CASME2_ROWS, SAMM_HEADER, SAMM_PREAMBLE_ROWS, SAMM_ROWS,
                      SAMM_UNANNOTATED, SMIC_CLIPS, casme2_rows_with_aus, casme2_sheet_frame, casme2_table,
                      casme2_version_rows, casme2_workbook, read_quietly, write_casme2_tree, write_casme2_version,
                      write_frames, write_samm_tree, write_smic_subsets, write_smic_tree, write_video)


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


def test_emotion_spellings_of_other_sheets_map_to_their_classes(tmp_path):
    """Adjectives and capitals as some copies of the sheets write them: happy, surprised, disgusted, Other."""
    table = casme2_table().iloc[[0, 1, 3, 5]].reset_index(drop=True)
    table["emotion"] = ["Happy", "Other", "DISGUSTED", "surprised"]
    write_casme2_tree(tmp_path, table, sheet="csv")
    spec = read_quietly("casme2", tmp_path)
    assert [(c.clip_id, c.emotion, c.label) for c in spec.clips] == [
        ("EP02_01f", "happiness", 1), ("EP03_02", "others", 4), ("EP19_05f", "disgust", 0), ("EP11_01", "surprise", 3)]
    assert spec.dropped.problems == [] and not spec.dropped.by_class


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


def test_smic_reader(tmp_path):
    write_smic_tree(tmp_path)
    (tmp_path / "SMIC_all_raw" / "HS" / "s4" / "micro").mkdir(parents=True)  # an empty subject
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


# --- Issue 14, readers: action units, both CASME II sheet versions, worksheets, the paper's 246 clips, SMIC
# subsets, SAMM onset/offset not annotated.


@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
@pytest.mark.parametrize("version, subject_style", [("20140508", "number"), ("20190701", "number"),
                                                    ("20190701", "text"), ("20140508", "folder")])
def test_casme2_sheet_versions(tmp_path, version, subject_style, sheet):
    table = casme2_rows_with_aus()
    write_casme2_version(tmp_path, table, version, subject_style, sheet)
    spec = read_quietly("casme2", tmp_path)
    assert spec.dropped.problems == [] and dict(spec.dropped.by_class) == {"sadness": 1}
    kept = table.iloc[:6]
    assert [(c.subject, c.clip_id) for c in spec.clips] == [(f"sub{s:02d}", f) for s, f in zip(kept.subject,
                                                                                             kept.filename)]
    assert [(c.onset, c.apex, c.offset) for c in spec.clips] == [
        (0, None if a < 0 else a - on, off - on) for on, a, off in zip(kept.onset, kept.apex, kept.offset)]
    assert [c.action_units for c in spec.clips] == AU_TEXT
    assert spec.info == [f"annotation sheet: CASME2-coding-{version}.{sheet}"]


def test_sheet_cells_read_as_written(tmp_path):
    """openpyxl/pandas keep a number cell a number (12, not 12.0) and text as text; cell_text gives the AU text."""
    path = write_casme2_version(tmp_path, casme2_rows_with_aus(), "20190701", "number")
    table = sheets.read_sheet(path)
    assert table["action_units"].tolist()[:4] == AU_CELLS[:4] and table["action_units"][5] == 12
    assert [sheets.cell_text(v) for v in table["action_units"][:6]] == AU_TEXT
    assert sheets.cell_text(12.0) == "12" and sheets.cell_text(float("nan")) == ""


def test_worksheet_choice_is_printed_and_can_be_named(tmp_path):
    table = casme2_rows_with_aus()
    relabelled = table.copy()
    relabelled.loc[0, "emotion"] = "surprise"
    write_casme2_tree(tmp_path, table)
    casme2_workbook(tmp_path / "CASME2-coding-20140508.xlsx",
                    {"README": [["CASME II coding"], ["see the paper"]], "2014": table, "2019": relabelled})
    spec = read_quietly("casme2", tmp_path)
    assert spec.clips[0].emotion == "happiness"  # the first worksheet with the required columns
    assert "worksheet: '2014' of 'README', '2014', '2019' (name another with --sheet)" in spec.summary()
    assert read_quietly("casme2", tmp_path, worksheet="2019").clips[0].emotion == "surprise"
    with pytest.raises(sheets.SheetError, match=r"CASME2-coding-20140508\.xlsx has no worksheet 'Sheet9'; "
                                                r"its worksheets: 'README', '2014', '2019'"):
        readers.read_dataset("casme2", tmp_path, worksheet="Sheet9")
    with pytest.raises(sheets.SheetError, match=r"20140508\.xlsx lacks required column.*of worksheet 'README'"):
        readers.read_dataset("casme2", tmp_path, worksheet="README")


def test_worksheet_of_a_csv_or_of_smic_is_refused(tmp_path):
    write_casme2_tree(tmp_path, casme2_table().iloc[:2], sheet="csv")
    with pytest.raises(sheets.SheetError, match=r"CASME2-coding-20140508\.csv is a \.csv file, not a workbook"):
        readers.read_dataset("casme2", tmp_path, worksheet="Sheet1")
    with pytest.raises(ValueError, match="only for datasets with a sheet, not smic"):
        readers.read_dataset("smic", tmp_path, worksheet="Sheet1")


def test_several_sheet_files_choice_is_printed_and_root_may_name_one(tmp_path):
    table = casme2_rows_with_aus()
    relabelled = table.copy()
    relabelled.loc[0, "emotion"] = "surprise"
    write_casme2_version(tmp_path, relabelled, "20190701", "number")
    header, rows = casme2_version_rows(table, "20140508", "number")
    pd.DataFrame(rows, columns=header).to_excel(tmp_path / "CASME2-coding-20140508.xlsx", index=False)
    spec = read_quietly("casme2", tmp_path)
    assert spec.clips[0].emotion == "happiness"
    assert spec.info == ["annotation sheet: CASME2-coding-20140508.xlsx (chosen of 2 found; the others: "
                         "CASME2-coding-20190701.xlsx; give another as --root to read it)"]
    chosen = read_quietly("casme2", tmp_path / "CASME2-coding-20190701.xlsx")
    assert chosen.clips[0].emotion == "surprise" and len(chosen.clips) == 6  # frames found beside the sheet
    assert chosen.info == ["annotation sheet: CASME2-coding-20190701.xlsx (given as the root)"]


# The one CASME II happiness clip without an annotated apex (bob.db.casme2: apex -1; the xlsx: '/').
EP02_02F = "9,EP02_02f,26,-1,171,happiness,L12\n"


def test_casme2_paper_clips(tmp_path):
    table = pd.read_csv(io.StringIO(CASME2_ROWS + EP02_02F), dtype={"action_units": str})
    write_casme2_tree(tmp_path, table)
    spec = read_quietly("casme2", tmp_path)
    assert ("sub09", "EP02_02f") in {(c.subject, c.clip_id) for c in spec.clips}
    assert "; differs in disgust 2 here vs 63, happiness 2 here vs 32" in spec.summary().split("the paper's set leaves out")[0]
    assert "the paper's set leaves out sub09/EP02_02f (happiness, apex not annotated;" in spec.summary()
    assert "it is kept here: --paper-clips leaves it out" in spec.summary()
    paper = read_quietly("casme2", tmp_path, paper_clips=True)
    assert [c.name for c in paper.clips] == [c.name for c in spec.clips if c.name != "sub09/EP02_02f"]
    text = paper.summary()
    assert "left out to match the paper (--paper-clips): 1\n    CASME2-coding-20140508.xlsx row 14 (sub09/EP02_02f)" in text
    assert paper.dropped.problems == [] and "--paper-clips leaves it out" not in text
    write_casme2_tree(tmp_path / "without", casme2_table())
    assert "it is not among the clips read here" in read_quietly("casme2", tmp_path / "without").summary()
    with pytest.raises(ValueError, match=r"paper_clips \(--paper-clips\) applies to \['casme2'\] only, not samm"):
        readers.read_dataset("samm", tmp_path, paper_clips=True)


def test_summary_compares_with_the_paper_counts():
    """The table's 247 against the paper's 246 (counts from the README of the reference data, by hand)."""
    counts = {"others": 99, "disgust": 63, "happiness": 33, "repression": 27, "surprise": 25}
    clips = [readers.ClipSpec("casme2", "sub01", f"{e}{i}", None, [], 0, e, 0, None, 1, 2)
             for e, n in counts.items() for i in range(n)]
    spec = readers.DatasetSpec("casme2", CASME2_CLASSES, clips, readers.DropSummary())
    assert ("the paper's 246 clips: disgust 63, happiness 32, repression 27, surprise 25, others 99; "
            "differs in happiness 33 here vs 32") in spec.summary()
    spec.clips = [c for c in clips if c.clip_id != "happiness0"]
    assert "others 99; the same per class" in spec.summary()


@pytest.mark.skipif(not pathlib.Path("/work/shared/data/megc2019_composite.csv").is_file(),
                    reason="the reference tables of /work/shared/data are not on this machine")
def test_paper_left_out_clip_is_the_happiness_clip_missing_from_megc2019():
    """Independent evidence: the MEGC 2019 composite list holds 32 CASME II happiness clips, all but this one."""
    table = pd.read_csv("/work/shared/data/casme2_annotations.csv")
    megc = pd.read_csv("/work/shared/data/megc2019_composite.csv", dtype=str)
    positive = megc[(megc.dataset == "casme2") & (megc.label == "1")]
    listed = set(zip(positive["subject"], positive["clip"]))
    happiness = table[table.emotion == "happiness"]
    missing = {(f"sub{s:02d}", f) for s, f in zip(happiness.subject, happiness.filename)} - listed
    assert len(happiness) == 33 and len(positive) == 32
    assert missing == set(readers.PAPER_LEFT_OUT["casme2"])
    no_apex = happiness[happiness.apex < 0]
    assert {(f"sub{s:02d}", f) for s, f in zip(no_apex.subject, no_apex.filename)} == missing


@pytest.mark.parametrize("subset", [None, "HS", "NIR", "VIS", "nir"])
def test_smic_subset_chosen_by_path_component(tmp_path, subset):
    folders = write_smic_subsets(tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in folders.values())[0] == "0_VIS"  # what sort order picks
    spec = read_quietly("smic", tmp_path, smic_subset=subset)
    wanted = (subset or "HS").upper()
    assert {c.clip_id.rsplit("_", 1)[1] for c in spec.clips} == {wanted}
    assert len(spec.clips) == 3 + list(folders).index(wanted)
    assert all(c.path.parent.parent.parent.parent == folders[wanted] for c in spec.clips)
    assert spec.name == ("smic" if wanted == "HS" else f"smic-{wanted.lower()}")
    assert f"{wanted} frames: {folders[wanted].relative_to(tmp_path)} under" in spec.summary()


def test_smic_subset_missing_is_named(tmp_path):
    folders = write_smic_subsets(tmp_path)
    shutil.rmtree(folders["HS"])
    with pytest.raises(FileNotFoundError, match=r"No HS folder \(a path component named HS\).*found in: 0_VIS, NIR"):
        readers.read_dataset("smic", tmp_path)
    with pytest.raises(ValueError, match=r"smic_subset \(--smic-subset\) must be one of \('HS', 'NIR', 'VIS'\)"):
        readers.read_dataset("smic", tmp_path, smic_subset="IR")
    with pytest.raises(ValueError, match="with the smic dataset, got 'NIR' for casme2"):
        readers.read_dataset("casme2", tmp_path, smic_subset="NIR")


def test_samm_onset_offset_not_annotated_is_warned_and_skipped(tmp_path):
    write_samm_tree(tmp_path, rows=SAMM_ROWS[1:2] + SAMM_UNANNOTATED)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = readers.read_dataset("samm", tmp_path)
    expected = [
        "SAMM_Micro_FACS_Codes_v2.xlsx row 15 (006/006_1_2): offset cell '-1' is not annotated",
        "SAMM_Micro_FACS_Codes_v2.xlsx row 16 (007/007_3_1): onset cell '' is not annotated",
        "SAMM_Micro_FACS_Codes_v2.xlsx row 17 (007/007_6_2): onset cell '-1' is not annotated",
    ]
    messages = [str(w.message) for w in caught]
    assert [m.split(" (blank")[0] for m in messages] == expected
    assert all(m.endswith("clip skipped, not filled in from the folder's frames") for m in messages)
    assert [c.clip_id for c in spec.clips] == ["006_1_3"] and spec.dropped.problems == messages
