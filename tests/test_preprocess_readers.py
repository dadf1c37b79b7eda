"""The readers' issue-14 options through `python -m cmnet_keras.preprocess` to a cache (cropped trees, 8 px).

Action-unit cells kept verbatim in index.csv, --sheet, --paper-clips, --smic-subset, SAMM onset/offset cells
that are not annotated, and dataset and cache paths with spaces and non-ASCII characters.
"""

import csv

import pytest

from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache
from fixtures import (AU_TEXT, SAMM_ROWS, SAMM_UNANNOTATED, casme2_rows_with_aus, casme2_table, casme2_workbook,
                      run_preprocess, write_casme2_tree, write_casme2_version, write_samm_tree, write_smic_subsets)

SIZE = 8


def index_column(out, column):
    """A column of index.csv as the file holds it (the csv module: no type guessing)."""
    with (out / cache.INDEX_FILE).open(newline="") as handle:
        return [row[column] for row in csv.DictReader(handle)]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("sheet", ["xlsx", "csv"])
def test_action_units_kept_verbatim_in_the_index(tmp_path, capsys, sheet):
    table = casme2_rows_with_aus()
    root, out = tmp_path / "casme2", tmp_path / "cache"
    write_casme2_version(root, table, "20190701", "number", sheet)
    assert run_preprocess(root, out, dataset="casme2") == preprocess.EXIT_OK
    assert index_column(out, "action_units") == AU_TEXT  # "12", not 12.0; "" for the blank cell
    assert cache.read_index(out)["action_units"].tolist() == AU_TEXT
    fingerprint = cache.cache_fingerprint(out)

    table.loc[1, "action_units"] = "R2+L4"  # a corrected AU cell: the index follows, no clip is redone
    write_casme2_version(root, table, "20190701", "number", sheet)
    capsys.readouterr()
    assert run_preprocess(root, out, dataset="casme2") == preprocess.EXIT_OK
    assert "reprocessed (cached but outdated or unreadable): 0" in capsys.readouterr().out
    assert index_column(out, "action_units")[:3] == ["4+L10", "R2+L4", "L1+R2+25"]
    assert cache.cache_fingerprint(out) == fingerprint  # action units do not change what is trained on

    index = (out / cache.INDEX_FILE).read_text().splitlines()  # an older cache: no action_units column
    (out / cache.INDEX_FILE).write_text("\n".join(line.rsplit(",", 1)[0] for line in index) + "\n")
    assert list(cache.read_index(out).columns) == list(cache.INDEX_COLUMNS)
    assert cache.cache_fingerprint(out) == fingerprint


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sheet_and_paper_clips_options(tmp_path, capsys):
    root = tmp_path / "casme2"
    table = casme2_table().iloc[:3]
    write_casme2_tree(root, table, cropped=True)
    workbook = root / "CASME2-coding-20140508.xlsx"
    casme2_workbook(workbook, {"notes": [["CASME II coding"]], "codes": table})
    assert run_preprocess(root, tmp_path / "bad", "--sheet", "Sheet1", dataset="casme2") == preprocess.EXIT_FATAL
    err = capsys.readouterr().err
    assert f"Annotation workbook {workbook} has no worksheet 'Sheet1'; its worksheets: 'notes', 'codes'" in err
    assert not (tmp_path / "bad").exists()
    assert run_preprocess(root, tmp_path / "cache", "--sheet", "codes", "--paper-clips",
                          dataset="casme2") == preprocess.EXIT_OK
    printed = capsys.readouterr().out
    assert "worksheet: 'codes' of 'notes', 'codes'" in printed
    assert "the paper's set leaves out sub09/EP02_02f" in printed and "not among the clips read here" in printed
    assert run_preprocess(root, tmp_path / "samm", "--paper-clips", dataset="samm") == preprocess.EXIT_FATAL
    assert "applies to ['casme2'] only, not samm" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_samm_onset_offset_not_annotated_fail_by_name(tmp_path, capsys):
    root, out = tmp_path / "samm", tmp_path / "cache"
    write_samm_tree(root, cropped_too=True, rows=SAMM_ROWS[1:2] + SAMM_UNANNOTATED)
    assert run_preprocess(root, out, dataset="samm") == preprocess.EXIT_SOME_FAILED
    printed = capsys.readouterr().out
    assert "failed: 3 (3 rows or folders not usable, 0 clips failed in processing)" in printed
    for row, name, column, cell in [(15, "006/006_1_2", "offset", "'-1'"), (16, "007/007_3_1", "onset", "''"),
                                    (17, "007/007_6_2", "onset", "'-1'")]:
        assert (f"  SAMM_Micro_FACS_Codes_v2.xlsx row {row} ({name}): {column} cell {cell} is not annotated "
                "(blank, negative or '/'); clip skipped") in printed
    assert cache.read_index(out)["clip_id"].tolist() == ["006_1_3"]


def casme2_tree(root):
    write_casme2_tree(root, casme2_table().iloc[:4], cropped=True)
    return ["EP02_01f", "EP03_02", "EP19_03f", "EP19_05f"]


def samm_tree(root):
    write_samm_tree(root, cropped_too=True)
    return [r[1] for r in SAMM_ROWS if r[-1] not in ("Disgust", "Fear")]


def smic_tree(root):
    write_smic_subsets(root)
    return ["s1_ne_01_HS", "s1_po_01_HS", "s2_sur_01_HS"]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dataset, folder, make", [("casme2", "Données CASME II", casme2_tree),
                                                   ("samm", "SAMM v2 — données", samm_tree),
                                                   ("smic", "SMIC (é) 数据", smic_tree)])
def test_roots_with_spaces_and_non_ascii(tmp_path, dataset, folder, make):
    root, out = tmp_path / folder, tmp_path / f"cache {folder}"
    clips = make(root)
    assert run_preprocess(root, out, dataset=dataset) == preprocess.EXIT_OK
    index = cache.read_index(out)
    assert index["clip_id"].tolist() == clips
    assert cache.read_meta(out)["dataset"] == dataset
    for file in index["file"]:
        assert cache.load_clip(out, file)["frames"].shape == (16, SIZE, SIZE, 3)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_smic_subset_option(tmp_path, capsys):
    root, out = tmp_path / "SMIC all", tmp_path / "cache"
    write_smic_subsets(root)
    assert run_preprocess(root, out, "--smic-subset", "vis", dataset="smic") == preprocess.EXIT_OK
    assert "VIS frames: 0_VIS under" in capsys.readouterr().out
    index = cache.read_index(out)
    assert len(index) == 5 and all(c.endswith("_VIS") for c in index["clip_id"])
    assert cache.read_meta(out)["dataset"] == "smic-vis"
