"""The report and the rating records as CSV (UTF-8 with a BOM, so Excel opens the Chinese right) and XLSX
(openpyxl): one heading row, then one row per report row or record. Figures stay numbers in the XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from fleet.reports.figures import FIGURES, GROUP_LABELS
from fleet.reports.rating_records import RECORD_FIELDS

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def report_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Headings and rows of a report (build_report's answer)."""
    headings = [GROUP_LABELS[report["by"]], *[heading for _, heading in FIGURES]]
    rows = [[row["label"], *[row[name] for name, _ in FIGURES]] for row in report["rows"]]
    return headings, rows


def records_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    return [heading for _, heading in RECORD_FIELDS], [[record[name] for name, _ in RECORD_FIELDS]
                                                       for record in records]


def to_csv(headings: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headings)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(title: str, headings: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> bytes:
    """One sheet named `title`; `caption` (the period, the scope) in the first row when given."""
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]  # Excel's limit for a sheet name
    if caption:
        sheet.append([caption])
    sheet.append(list(headings))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(list(row))
    sheet.freeze_panes = sheet.cell(row=sheet.max_row - len(rows) + 1, column=1)
    for column in sheet.columns:
        width = max(len(str(cell.value or "")) for cell in column)
        sheet.column_dimensions[column[0].column_letter].width = min(40, max(10, 2 * width))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
