"""Writing a sheet as an xlsx workbook whose bytes depend on the sheet alone."""

import io
import re
import zipfile


def write_xlsx(path, sheet):
    """Writes the sheet as xlsx with fixed timestamps (same bytes for the same sheet)."""
    buffer = io.BytesIO()
    sheet.to_excel(buffer, index=False, sheet_name="Sheet1", engine="openpyxl")
    fixed = "2000-01-01T00:00:00Z"
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + fixed.encode(),
                              data)
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                         compress_type=zipfile.ZIP_DEFLATED)
