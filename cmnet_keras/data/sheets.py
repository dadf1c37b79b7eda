"""Reading annotation sheets (.xlsx or .csv) into a table with canonical columns.

Real sheets differ in column spelling ("OnsetFrame", "Onset Frame"), may carry
preamble rows above the header (SAMM) and hold non-numeric cells ("/" for an
unknown apex). `read_sheet` locates the header row, renames the columns to
canonical names and remembers each row's line number in the file for messages.
"""

import csv
import io
import math
import pathlib
import re
import zipfile

import pandas as pd

from cmnet_keras import archives

# Canonical column -> accepted spellings after `normalise_column`.
COLUMN_ALIASES = {
    "subject": ("subject", "sub", "subjectid", "participant"),
    "filename": ("filename", "clip", "clipid", "clipname", "video", "path", "clippath"),
    "onset": ("onsetframe", "onset"),
    "apex": ("apexframe", "apex"),
    "offset": ("offsetframe", "offset"),
    "emotion": ("estimatedemotion", "emotion", "label", "class"),
    "action_units": ("actionunits", "actionunit", "aus", "au"),
}
HEADER_SEARCH_ROWS = 50
UNKNOWN_FRAME_CELLS = ("/", "-", "?", "n/a", "na", "none")  # how releases mark an unannotated frame
ROW_COLUMN = "_row"
# Bytes of XML a workbook may inflate to per byte of the file: real ones hold 4-15x; far more is a zip bomb.
WORKBOOK_INFLATION = 100


class SheetError(ValueError):
    """An annotation sheet is unreadable or lacks required columns; names the file."""


def normalise_column(name):
    """Lower-cases a header cell and drops spaces, underscores and dashes ("Onset Frame" -> "onsetframe")."""
    return re.sub(r"[\s_\-]+", "", str(name).strip().lower())


def canonical_column(name):
    """Returns the canonical name of a header cell, or None if it is not an annotation column."""
    key = normalise_column(name)
    for canonical, aliases in COLUMN_ALIASES.items():
        if key in aliases:
            return canonical
    return None


def _read_raw(path, worksheet=None):
    """All cells of the file, no header: (worksheet names, {worksheet name: DataFrame}).

    A CSV has no worksheet names and one table, keyed None; with `worksheet`,
    only that worksheet of a workbook is read.
    """
    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".xlsm", ".csv", ".txt"):
        raise SheetError(f"Unsupported annotation sheet type {suffix!r}: {path} (use .xlsx or .csv)")
    if worksheet is not None and suffix not in (".xlsx", ".xlsm"):
        raise SheetError(f"Annotation sheet {path} is a {suffix} file, not a workbook: it has no worksheet "
                         f"{worksheet!r} to choose (a worksheet is named only for .xlsx)")
    try:
        if suffix not in (".xlsx", ".xlsm"):
            return [], {None: _read_csv_cells(path)}
        with zipfile.ZipFile(path) as archive:  # sized before openpyxl inflates it whole
            archives.check_inflation(path, {i.filename: i.file_size for i in archive.infolist()}, WORKBOOK_INFLATION,
                                     SheetError)
        with pd.ExcelFile(path) as book:
            names = list(book.sheet_names)
            if worksheet is not None and worksheet not in names:
                raise SheetError(f"Annotation workbook {path} has no worksheet {worksheet!r}; its worksheets: "
                                 + ", ".join(repr(n) for n in names))
            chosen = names if worksheet is None else [worksheet]
            return names, pd.read_excel(book, sheet_name=chosen, header=None, dtype=object)
    except SheetError:
        raise
    except Exception as error:  # openpyxl/pandas raise many types for a broken file
        raise SheetError(f"Cannot read annotation sheet {path}: {error}") from error


def _read_csv_cells(path):
    # The csv module, not pandas: preamble lines may have fewer fields than the table.
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    width = max((len(r) for r in rows), default=0)
    return pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=object)


def _find_header(raw, required):
    """(row, canonical columns found) of the first row holding every required column, else the best row."""
    best_row, best_found = None, set()
    for row in range(min(HEADER_SEARCH_ROWS, len(raw))):
        found = {canonical_column(v) for v in raw.iloc[row] if not _is_blank(v)} - {None}
        if best_row is None or len(found & set(required)) > len(best_found & set(required)):
            best_row, best_found = row, found
        if set(required) <= found:
            break
    return best_row, best_found


def read_sheet(path, required=("subject", "filename", "emotion"), worksheet=None):
    """Reads an annotation sheet, locating its header row below any preamble.

    Args:
        path: `.xlsx` or `.csv` file.
        required: canonical columns that must be present.
        worksheet: name of the workbook's worksheet to read; default: the
            first one holding every required column (else the closest).

    Returns:
        DataFrame with canonical column names (unrecognised columns keep their
        header text) plus `_row`, the 1-based line of each row in the file.
        Fully empty rows are dropped. Cells are left as read (strings or numbers).
        `attrs["worksheet"]` is the worksheet read (None for a CSV) and
        `attrs["worksheets"]` all worksheets of the workbook.

    Raises:
        SheetError: the file is unreadable or a workbook that would inflate to
            over `WORKBOOK_INFLATION` times its size, a required column is
            missing, or `worksheet` is not in the workbook (the message names
            the file and the missing columns or the worksheets it has).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise SheetError(f"Annotation sheet not found: {path}")
    worksheets, sheets = _read_raw(path, worksheet)
    candidates = []  # (worksheet, cells, header row, columns found)
    for name, raw in sheets.items():
        row, found = _find_header(raw, required)
        if row is not None:
            candidates.append((name, raw, row, found))
            if set(required) <= found:
                break
    if not candidates:
        raise SheetError(f"Annotation sheet {path} is empty" + (f" (worksheet {worksheet!r})" if worksheet else ""))
    chosen, raw, best_row, best_found = max(candidates, key=lambda c: len(c[3] & set(required)))
    missing = [c for c in required if c not in best_found]
    if missing:
        expected = {c: COLUMN_ALIASES[c][0] for c in missing}
        raise SheetError(
            f"Annotation sheet {path} lacks required column(s) {missing} "
            f"(accepted spellings e.g. {expected}); searched the first {HEADER_SEARCH_ROWS} rows "
            + (f"of worksheet {chosen!r} " if chosen is not None else "") + "for a header"
        )
    header = [str(v).strip() if not _is_blank(v) else f"column{i}" for i, v in enumerate(raw.iloc[best_row])]
    names, seen = [], set()
    for cell in header:
        canonical = canonical_column(cell)
        name = canonical if canonical and canonical not in seen else cell
        seen.add(name)
        names.append(name)
    table = raw.iloc[best_row + 1 :].copy()
    table.columns = names
    table[ROW_COLUMN] = [i + 1 for i in range(best_row + 1, len(raw))]
    blank = table.drop(columns=[ROW_COLUMN]).apply(lambda col: col.map(_is_blank)).all(axis=1)
    table = table[~blank].reset_index(drop=True)
    table.attrs = {"worksheet": chosen, "worksheets": worksheets}
    return table


def _is_blank(value):
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def parse_frame_number(value):
    """Parses a frame-number cell: 46, 46.0, "46" -> 46; blank, NaN, "/", "-", "?", "n/a", negative (-1) -> None.

    Raises:
        ValueError: any other cell ("12a", 46.5): not a frame number.
    """
    if _is_blank(value) or (isinstance(value, str) and value.strip().lower() in UNKNOWN_FRAME_CELLS):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?\d+(\.0*)?", text):
            raise ValueError(f"{value!r} is not a frame number")
        number = float(text)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not a frame number")
    return None if number < 0 else int(number)


def cell_text(value):
    """A cell as stripped text ("" when blank; 6.0 -> "6")."""
    if _is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
