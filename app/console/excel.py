"""Excel exports of the console (members of a search, members of a segment): a write-only workbook whose
rows go to a temporary file as they are appended, so memory stays flat however many rows there are.

Every text cell is written as text, never as a formula: a nickname of "=HYPERLINK(…)" must not run in
the operator's Excel. Phones are the callers' to mask (`app.pii.mask_phone`); no export holds a full
number."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # openpyxl is imported when an export runs: it costs every start-up 0.4 s
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook_of(
    sheet_name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> tuple[BytesIO, int]:
    """An .xlsx of one sheet (a header row, then `rows`) ready to send, and how many rows it holds."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append([_cell(sheet, name) for name in columns])
    count = 0
    for row in rows:
        sheet.append([_cell(sheet, value) for value in row])
        count += 1
    buffer = BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    return buffer, count


def _cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # text, even when it starts with "="
    return cell
