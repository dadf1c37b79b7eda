"""Test fixtures that several test files share: dataset trees in the released layouts, caches, command runs.

Every writer of a fixture tree is here, once; the test files import what they use.
"""

import csv
import io
import os
import pathlib
import subprocess
import warnings

import cv2
import numpy as np
import openpyxl
import pandas as pd

from cmnet_keras.commands import preprocess
from cmnet_keras.data import cache, readers

REPO = pathlib.Path(__file__).resolve().parents[1]
# A subprocess of the checkout (not of an installed copy), quiet TensorFlow.
REPO_ENV = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")


def no_tensorflow_env(folder, backend):
    """`REPO_ENV` under Keras `backend`, with a sitecustomize in `folder` that makes `import tensorflow` fail."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text('import sys\nsys.modules["tensorflow"] = None\n')
    return dict(REPO_ENV, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([str(folder), REPO_ENV["PYTHONPATH"]]))


def run_ok(cmd, env=REPO_ENV, timeout=900):
    """Runs `cmd` in the checkout; asserts it exits 0, showing the end of its output if not."""
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def preprocess_args(root, out, *extra, dataset="casme2", size=8):
    """The options of a quiet `cmnet_keras.preprocess` run on a cropped tree."""
    return ["--dataset", dataset, "--root", str(root), "--out", str(out), "--cropped", "--size", str(size),
            "--quiet", *extra]


def run_preprocess(root, out, *extra, dataset="casme2", size=8):
    """`cmnet_keras.preprocess.main(preprocess_args(...))`: its exit code."""
    return preprocess.main(preprocess_args(root, out, *extra, dataset=dataset, size=size))


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


def write_samm_tree(root, cropped_too=False, rows=SAMM_ROWS, sheet="xlsx"):
    """SAMM layout: the v2 sheet (preamble, header on row 13) + SAMM/006/006_1_2/006_05562.jpg.

    `rows` may hold -1 or None (a blank cell) for onset/offset: those clips' frames are 5000..5009.
    `sheet`: "xlsx" (openpyxl) or "csv" (the csv module, the same rows).
    """
    root.mkdir(parents=True, exist_ok=True)
    preamble = [["SAMM Micro-Movement FACS Codes v2"],
                *([f"Note {i}: coded by two FACS coders"] if i % 3 == 0 else [] for i in range(SAMM_PREAMBLE_ROWS - 2)),
                ["", "", "Micro-movements and micro-expressions"], SAMM_HEADER]
    path = root / f"SAMM_Micro_FACS_Codes_v2.{sheet}"
    if sheet == "xlsx":
        book = openpyxl.Workbook()
        for row in preamble + [list(r) for r in rows]:
            book.active.append(row)
        book.save(path)
    else:
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(preamble + [["" if v is None else v for v in r] for r in rows])
    for base in [root / "SAMM"] + ([root / "SAMM_CROP"] if cropped_too else []):
        for subject, name, _, onset, _, offset, *_ in rows:
            first, last = (onset, offset) if min(onset or -1, offset or -1) >= 0 else (5000, 5009)
            write_frames(base / f"{subject:03d}" / name, range(first, last + 1), prefix=f"{subject:03d}_0",
                         size=6)
    # Zero-padded numbers: 006_05562.jpg (prefix "006_0" + 5562).
    return root


SMIC_CLIPS = [  # subject, class folder, clip, first frame, frame count
    ("s1", "negative", "s1_ne_01", 96, 12),
    ("s1", "positive", "s1_po_01", 5001, 20),
    ("s2", "surprise", "s2_sur_01", 1, 9),
    ("s2", "negative", "s2_ne_02", 330, 18),
    ("s3", "positive", "s3_po_05", 7, 30),
]


def write_smic_tree(root, clips=SMIC_CLIPS, variants=("SMIC_all_raw", "SMIC_all_cropped")):
    """SMIC-HS layout `<variant>/HS/s1/micro/negative/s1_ne_01/image<n>.bmp`; `clips` as SMIC_CLIPS."""
    for variant in variants:
        for subject, emotion, clip, first, count in clips:
            folder = root / variant / "HS" / subject / "micro" / emotion / clip
            write_frames(folder, range(first, first + count), prefix="image", suffix=".bmp", size=4)
    return root


def write_video(path, count, value=lambda i: 20 * i, size=32, fourcc="mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (size, size))
    assert writer.isOpened(), f"cannot write {fourcc} video {path}"
    for i in range(count):
        writer.write(np.full((size, size, 3), value(i), np.uint8))
    writer.release()


AU_CELLS = ["4+L10", "R12", "L1+R2+25", "?", None, 12]  # None: a blank cell; 12: a number cell in a workbook


AU_TEXT = ["4+L10", "R12", "L1+R2+25", "?", "", "12"]  # what the index must hold, verbatim


def casme2_rows_with_aus():
    """Six kept rows of the table with the awkward AU cells (and one sadness row, dropped)."""
    table = casme2_table().iloc[[0, 1, 3, 4, 5, 6, 10]].reset_index(drop=True)
    table["action_units"] = pd.Series(AU_CELLS + ["1+4"], dtype=object)
    return table


# Public code reading both releases (e.g. `pd.read_excel(..., usecols=[0, 1, 3, 4, 5, 7, 8])` for either file)
# shows 9 columns, two without a header ("Unnamed: 2", "Unnamed: 6" in pandas); docs/design.md lists the 7 named
# ones. Subject ids are numbers; some copies hold them as text ("01") or as folder names ("sub01").
CASME2_VERSIONS = {
    "20140508": ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                 "Estimated Emotion"],
    "20190701": ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                 "Estimated Emotion"],
}


SUBJECT_STYLES = {"number": lambda s: s, "text": lambda s: f"{s:02d}", "folder": lambda s: f"sub{s:02d}"}


def casme2_version_rows(table, version, subject_style):
    """Header and rows of the table in one release's column layout."""
    header = CASME2_VERSIONS[version]
    rows = []
    for i, r in enumerate(table.itertuples()):
        cells = {"Subject": SUBJECT_STYLES[subject_style](r.subject), "Filename": r.filename,
                 "OnsetFrame": r.onset, "ApexFrame": "/" if r.apex < 0 else r.apex, "OffsetFrame": r.offset,
                 "Action Units": r.action_units, "Estimated Emotion": r.emotion}
        rows.append([cells[h] if h else 1000 + i for h in header])  # header-less columns: other numbers
    return header, rows


def write_casme2_version(root, table, version, subject_style, sheet="xlsx"):
    """The table as `CASME2-coding-<version>.<sheet>` (openpyxl or the csv module) beside frame folders."""
    write_casme2_tree(root, table, sheet="csv")
    (root / "CASME2-coding-20140508.csv").unlink()
    header, rows = casme2_version_rows(table, version, subject_style)
    path = root / f"CASME2-coding-{version}.{sheet}"
    if sheet == "xlsx":
        book = openpyxl.Workbook()
        for row in [header] + rows:
            book.active.append(row)
        book.save(path)
    else:
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([["" if v is None else v for v in row] for row in [header] + rows])
    return path


def casme2_workbook(path, worksheets):
    """A workbook of several worksheets: name -> table (or a list of rows)."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, content in worksheets.items():
        sheet = book.create_sheet(name)
        if isinstance(content, pd.DataFrame):
            header, rows = casme2_version_rows(content, "20140508", "number")
            content = [header] + rows
        for row in content:
            sheet.append(row)
    book.save(path)


def write_smic_subsets(root):
    """HS, NIR and VIS trees where sort order and depth both pick the wrong one (0_VIS: shallowest, first)."""
    subsets = {"HS": root / "SMIC" / "hs", "NIR": root / "NIR", "VIS": root / "0_VIS"}
    for k, (subset, base) in enumerate(subsets.items()):
        for subject, emotion, clip, first, count in SMIC_CLIPS[: 3 + k]:
            write_frames(base / subject / "micro" / emotion / f"{clip}_{subset}", range(first, first + count),
                         prefix="image", suffix=".bmp", size=4)
    return subsets


SAMM_UNANNOTATED = [  # onset/offset cells that are not frame numbers: -1 and blank
    (6, "006_1_2", 1, 5562, 5570, -1, 14, "Micro - 1/2", "4+7", "", "Anger"),
    (7, "007_3_1", 3, None, 1003, 1010, 13, "Micro - 1/2", "R14", "", "Contempt"),
    (7, "007_6_2", 6, -1, 101, 104, 10, "Micro - 1/2", "1+2", "", "Surprise"),
]


SYNTHETIC_CLASSES = ("negative", "positive", "surprise")
SYNTHETIC_SIZE = 32  # the tiny preset's image size


def write_synthetic_cache(folder, subjects, clips_per_subject=2, seed=0):
    """A cache in the documented format: 32 px noise clips whose brightness ramps with the label."""
    rng = np.random.default_rng(seed)
    size = SYNTHETIC_SIZE
    cache.prepare_cache(folder, {"dataset": "synthetic", "class_names": list(SYNTHETIC_CLASSES), "image_size": size,
                                 "num_frames": 16, "cropped": True})
    records = []
    for subject in subjects:
        for i in range(clips_per_subject):
            label = len(records) % len(SYNTHETIC_CLASSES)
            apex = int(rng.integers(0, 16))
            frames = rng.integers(0, 60, size=(16, size, size, 3)) + 60 * label
            record = {"clip_id": f"EP{i:02d}", "subject": subject, "label": label,
                      "emotion": SYNTHETIC_CLASSES[label], "apex": apex, "apex_source": "annotated",
                      "file": cache.clip_relpath(subject, f"EP{i:02d}"), "num_source_frames": 16}
            cache.save_clip(folder, record, frames.astype(np.uint8))
            records.append(record)
    cache.write_index(folder, records)
    return folder


# A three-clip cropped CASME II tree whose frames have known colours, for the bad-input tests.
BAD_INPUT_ROWS = ["EP02_01f", "EP11_01", "EP07_28"]  # sub01 46..86, sub02 16..106, sub26 31..71


def frame_rgb(n):
    """The colour of frame number n in `write_bad_input_tree`."""
    return (n % 256, (7 * n) % 256, 200 - n % 100)


def bad_input_table():
    """The sheet rows of `BAD_INPUT_ROWS`."""
    return casme2_table().set_index("filename").loc[BAD_INPUT_ROWS].reset_index()


def write_bad_input_tree(root, suffix=".png"):
    """The cropped CASME II tree of `BAD_INPUT_ROWS`, frames coloured by `frame_rgb`; returns `root`."""
    write_casme2_tree(root, bad_input_table(), cropped=True, suffix=suffix, value=frame_rgb)
    return root


def rewrite_sheet(root, frame):
    """Replaces the tree's CASME II sheet with `frame`."""
    frame.to_excel(root / "CASME2-coding-20140508.xlsx", index=False)


def onset_after_offset(root):
    """Makes the second clip's sheet row give its onset after its offset."""
    bad = bad_input_table()
    bad.loc[1, ["onset", "offset"]] = [106, 16]
    rewrite_sheet(root, casme2_sheet_frame(bad))
