#!/usr/bin/env python3
"""Write examples/countries-info.xlsx from examples/countries-info.csv.

Usage: scripts/countries-xlsx.py [csv_in] [xlsx_out]
Defaults are examples/countries-info.csv and examples/countries-info.xlsx relative to the repository root
(this script's parent's parent), so it works from any directory. Needs openpyxl, e.g.:
    python3 -m venv /tmp/xlsxvenv && /tmp/xlsxvenv/bin/pip install openpyxl==3.1.5
    /tmp/xlsxvenv/bin/python scripts/countries-xlsx.py

One sheet, "Database_option2" (the sheet name of the course's InfoPaisosExtra file): the header row, then
one row per CSV row. Integers are written as int, decimals as float, the missing-value marker NA as the
text "NA" (as the course file does), everything else as text. The document timestamps (and the zip entry
timestamps) are fixed, so re-running on the same CSV gives a byte-identical file.
"""
import csv
import io
import re
import sys
import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

ROOT = Path(__file__).resolve().parent.parent
SHEET = "Database_option2"
FIXED_TIME = datetime(2020, 3, 1)

INT_RE = re.compile(r"-?[0-9]+")
FLOAT_RE = re.compile(r"-?[0-9]+\.[0-9]+")


def cell_value(text):
    if INT_RE.fullmatch(text):
        return int(text)
    if FLOAT_RE.fullmatch(text):
        return float(text)
    return text  # strings, including "NA"


def main(argv):
    src = Path(argv[1]) if len(argv) > 1 else ROOT / "examples" / "countries-info.csv"
    dst = Path(argv[2]) if len(argv) > 2 else ROOT / "examples" / "countries-info.xlsx"
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        sys.exit(f"{src}: empty")
    header, data = rows[0], rows[1:]

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.append(header)
    for r in data:
        if len(r) != len(header):
            sys.exit(f"{src}: row {r!r} has {len(r)} fields, expected {len(header)}")
        # The country name is always text, even if it looked numeric.
        ws.append([r[0]] + [cell_value(v) for v in r[1:]])
    wb.properties.creator = "snapsync"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    wb.properties.lastModifiedBy = None
    # Workbook.save() would overwrite properties.modified with the current time, and zipfile stamps each
    # entry with the current time: write through ExcelWriter into memory, then re-pack with fixed times.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as tmp:
        ExcelWriter(wb, tmp).save()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as tmp, \
            zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for info in tmp.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            out.writestr(fixed, tmp.read(info.filename))
    print(f"wrote {dst} ({len(data)} rows, sheet {SHEET})")


if __name__ == "__main__":
    main(sys.argv)
