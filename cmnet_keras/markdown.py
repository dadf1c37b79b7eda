"""The one Markdown table writer of the results files (ablation, seeds and λ search tables)."""

import math


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header, rows, right=()):
    """A Markdown table, one line per row, ending in a newline.

    Args:
        header: the column names.
        rows: sequences of cells, one per column: None and NaN are empty, floats
            are written with 6 significant digits, `|` is escaped.
        right: the names of the right-aligned (numeric) columns.
    """
    lines = [header, ["---:" if name in right else "---" for name in header], *([_cell(v) for v in row] for row in rows)]
    return "".join("| " + " | ".join(line) + " |\n" for line in lines)
