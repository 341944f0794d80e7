"""Reading import files: CSV (UTF-8, UTF-8 with BOM or GBK/GB18030) and Excel .xlsx, row by row.

Nothing is read whole: a CSV streams through a text decoder, an .xlsx through openpyxl's read-only
worksheet, so memory stays flat however large the file. Columns are found by their header, through
the operator's mapping (field → header) or the usual Chinese and English headers of POS and CRM exports.
Cells come back as text, except Excel's dates and numbers, which the field parsers understand.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from app.errors import DomainError
from app.pii import InvalidPhone, normalize_phone

SNIFF_BYTES = 64 * 1024
CELL_MAX_LENGTH = 200


class ImportFileInvalid(DomainError):
    code, status, message = "IMPORT_FILE_INVALID", 422, "导入文件无法读取"


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # how the report and the console name it
    required: bool = False
    # Headers recognised without a mapping, compared after `_header_key`.
    aliases: tuple[str, ...] = ()


MEMBER_FIELDS = (
    Field("phone", "手机号", True, ("手机号", "手机号码", "手机", "电话", "联系电话", "mobile", "phone")),
    Field("name", "姓名", False, ("姓名", "会员姓名", "昵称", "name", "nickname")),
    Field("birthday", "生日", False, ("生日", "出生日期", "birthday", "birth_date")),
    Field("tier", "会员等级", False, ("会员等级", "等级", "卡等级", "tier", "level")),
    Field("points", "积分余额", False, ("积分余额", "积分", "可用积分", "points", "points_balance")),
    Field(
        "points_expire_on",
        "积分到期日",
        False,
        ("积分到期日", "积分有效期", "到期日", "points_expire_on", "points_expiry"),
    ),
    Field("joined_at", "入会时间", False, ("入会时间", "注册时间", "入会日期", "joined_at", "join_date")),
)

PURCHASE_FIELDS = (
    Field("store", "门店", True, ("门店编码", "门店代码", "门店", "店铺编码", "store", "store_code")),
    Field("receipt_no", "小票号", True, ("小票号", "小票号码", "单号", "流水号", "receipt_no", "receipt")),
    Field("amount", "金额", True, ("消费金额", "金额", "实收金额", "amount", "amount_yuan")),
    Field("purchased_at", "消费时间", True, ("消费时间", "交易时间", "时间", "purchased_at", "paid_at")),
    Field("phone", "手机号", False, ("手机号", "手机号码", "会员手机号", "手机", "phone", "mobile")),
)


def file_digest(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and size: the same content resumes the same job."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class SourceRows:
    """The data rows of a file as field → cell dicts, numbered as a spreadsheet shows them (header = 1)."""

    rows: Iterator[tuple[int, dict[str, Any]]]
    total: int | None  # data rows, when the format says so up front (Excel)
    encoding: str | None  # what a CSV was decoded as
    position: Any  # () -> fraction of the file read so far, for progress of CSV files


@contextmanager
def open_rows(
    path: Path,
    fields: tuple[Field, ...],
    mapping: Mapping[str, str] | None = None,
    *,
    encoding: str | None = None,
) -> Iterator[SourceRows]:
    """The rows of `path` (CSV or .xlsx, told apart by content, not by name) under `fields`.

    Raises ImportFileInvalid for a file that cannot be read, or whose header lacks a required field.
    """
    with path.open("rb") as file:
        if zipfile.is_zipfile(file):
            file.seek(0)
            yield _excel_rows(file, fields, mapping or {})
        else:
            file.seek(0)
            yield _csv_rows(file, fields, mapping or {}, encoding)


def _csv_rows(
    file: BinaryIO, fields: tuple[Field, ...], mapping: Mapping[str, str], encoding: str | None
) -> SourceRows:
    encoding = encoding or sniff_encoding(file.read(SNIFF_BYTES))
    file.seek(0)
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise ImportFileInvalid(f"不支持的文件编码：{encoding}") from exc
    text = io.TextIOWrapper(file, encoding=encoding, newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileInvalid("文件是空的") from None
    except UnicodeDecodeError as exc:
        raise ImportFileInvalid(f"文件不是 {encoding} 编码，请用 --encoding 指定") from exc
    columns = _columns(header, fields, mapping)
    size = max(os.fstat(file.fileno()).st_size, 1)
    wanted = list(columns.items())
    width = max(columns.values()) + 1

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        row_no = 1
        try:
            for cells in reader:
                row_no += 1
                if len(cells) < width:
                    cells += [""] * (width - len(cells))
                record = {name: cells[index].strip()[:CELL_MAX_LENGTH] or None for name, index in wanted}
                if any(record.values()) or any(cell.strip() for cell in cells):  # else a blank line
                    yield row_no, record
        except UnicodeDecodeError as exc:
            raise ImportFileInvalid(
                f"第 {row_no + 1} 行附近不是 {encoding} 编码，请用 --encoding 指定"
            ) from exc
        except csv.Error as exc:
            raise ImportFileInvalid(f"第 {row_no + 1} 行不是有效的 CSV：{exc}") from exc

    def position() -> float:
        # Holds `text`, which would close the file if it were collected before the rows are read.
        try:
            return 1.0 if text.closed else min(text.buffer.tell() / size, 1.0)
        except (OSError, ValueError):  # the reader thread is between two reads
            return 1.0

    return SourceRows(rows(), None, encoding, position)


def sniff_encoding(head: bytes) -> str:
    """UTF-8 with a BOM, UTF-8, or else GB18030 (a superset of the GBK that Chinese Excel saves)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _excel_rows(file: BinaryIO, fields: tuple[Field, ...], mapping: Mapping[str, str]) -> SourceRows:
    from openpyxl import load_workbook  # imported when used: it costs every command's start-up 0.4 s

    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign zip
        raise ImportFileInvalid("无法读取 Excel 文件，请确认是 .xlsx 格式") from exc
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    header = next(values, None)
    if header is None:
        raise ImportFileInvalid("Excel 的第一个工作表是空的")
    columns = _columns(["" if cell is None else str(cell) for cell in header], fields, mapping)
    total = sheet.max_row - 1 if sheet.max_row else None

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            for row_no, cells in enumerate(values, start=2):
                if any(cell not in (None, "") for cell in cells):
                    yield row_no, {name: _cell(cells, index) for name, index in columns.items()}
        finally:
            workbook.close()

    return SourceRows(rows(), total, None, lambda: 0.0)


def _cell(cells: Any, index: int) -> Any:
    if index >= len(cells):
        return None
    value = cells[index]
    if isinstance(value, str):
        value = value.strip()[:CELL_MAX_LENGTH]
        return value or None
    return value


def _header_key(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().lstrip("\ufeff").lower().replace(" ", "")


def _columns(header: list[str], fields: tuple[Field, ...], mapping: Mapping[str, str]) -> dict[str, int]:
    """field → column index; the mapping first, then the known headers."""
    known = {field.name for field in fields}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ImportFileInvalid(
            f"映射中有未知字段：{', '.join(unknown)}；可用字段：{', '.join(sorted(known))}"
        )
    positions = {_header_key(name): index for index, name in reversed(list(enumerate(header)))}
    columns: dict[str, int] = {}
    for field in fields:
        if field.name in mapping:
            index = positions.get(_header_key(mapping[field.name]))
            if index is None:
                raise ImportFileInvalid(f"文件中没有映射给「{field.label}」的列「{mapping[field.name]}」")
            columns[field.name] = index
            continue
        for alias in (field.name, *field.aliases):
            if (index := positions.get(_header_key(alias))) is not None:
                columns[field.name] = index
                break
    missing = [field.label for field in fields if field.required and field.name not in columns]
    if missing:
        raise ImportFileInvalid(f"文件缺少必需的列：{'、'.join(missing)}（可用映射指定列名）")
    return columns


class CellInvalid(ValueError):
    """A cell that cannot be what its field needs; the message (Chinese) goes into the report."""


def parse_phone(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(int(value))  # Excel stores an unformatted phone column as numbers
    try:
        return normalize_phone(str(value))
    except InvalidPhone:
        raise CellInvalid("手机号无效（须为 11 位中国大陆手机号）") from None


_PLAIN_YUAN = re.compile(r"(\d{1,12})(?:\.(\d{1,2}))?")


def parse_yuan(value: Any) -> int:
    """Yuan (as text or an Excel number) to fen; more than two decimals is an error, not rounded."""
    if isinstance(value, str) and (plain := _PLAIN_YUAN.fullmatch(value)):
        yuan, cents = plain.groups()
        return int(yuan) * 100 + int((cents or "0").ljust(2, "0"))
    try:
        amount = Decimal(str(value).replace(",", "").replace("¥", "").replace("￥", "").strip())
    except InvalidOperation:
        raise CellInvalid("金额格式错误") from None
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise CellInvalid("金额最多两位小数")
    return int(fen)


def parse_points(value: Any) -> int:
    try:
        points = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        raise CellInvalid("积分须为整数") from None
    if points != points.to_integral_value() or points < 0:
        raise CellInvalid("积分须为非负整数")
    return int(points)


_EXCEL_EPOCH = datetime(1899, 12, 30)
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
)


def parse_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _excel_serial(value).date()
    text = str(value).strip()
    for layout in _DATE_FORMATS:
        try:
            return datetime.strptime(text, layout).date()
        except ValueError:
            continue
    raise CellInvalid("日期格式错误（如 1990-05-20）")


def parse_local_datetime(value: Any, tz: ZoneInfo) -> datetime:
    """A wall-clock time of the mall (as exports write them) to an aware UTC datetime."""
    if isinstance(value, datetime):
        local = value
    elif isinstance(value, date):
        local = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        local = _excel_serial(value)
    else:
        local = _parse_datetime_text(str(value).strip())
    if local.tzinfo is None:
        local = local.replace(tzinfo=tz)
    return local.astimezone(UTC)


class LocalTimes:
    """`parse_local_datetime` for one zone, for files of many timestamps: the usual
    `YYYY-MM-DD HH:MM:SS` text goes to UTC with its hour's offset, worked out once per hour.

    An hour whose offset is the same at its first and last second has no transition inside, so every
    time in it has that offset (ambiguous hours keep the first occurrence, as `parse_local_datetime`
    does); other hours and other layouts take the general path."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._offsets: dict[str, timedelta | None] = {}

    def utc(self, value: Any) -> tuple[datetime, str]:
        """The moment in UTC (aware) and as the naive `YYYY-MM-DD HH:MM:SS` text SQL takes."""
        if type(value) is str and len(value) == 19 and value[4] == "-" and value[10] == " ":
            hour = value[:13]
            offset = self._offsets[hour] if hour in self._offsets else self._hour_offset(hour)
            if offset is not None:
                try:
                    naive = datetime.fromisoformat(value) - offset
                except ValueError:
                    pass  # the general path names the problem
                else:
                    text = naive.isoformat(" ")
                    # Parsing the text again is several times faster than datetime.replace(tzinfo=).
                    return datetime.fromisoformat(f"{text}+00:00"), text
        moment = parse_local_datetime(value, self.tz)
        return moment, moment.replace(tzinfo=None).isoformat(" ")

    def _hour_offset(self, hour: str) -> timedelta | None:
        try:
            start = datetime.fromisoformat(f"{hour}:00:00").replace(tzinfo=self.tz)
        except ValueError:
            return None  # not cached: the general path rejects the cell
        end = start + timedelta(minutes=59, seconds=59)
        offset = start.utcoffset()
        self._offsets[hour] = offset if offset == end.utcoffset() else None
        return self._offsets[hour]


def _parse_datetime_text(text: str) -> datetime:
    if len(text) == 19 and text[4] == "-" and text[10] == " ":  # the common case, without strptime's cost
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    for layout in (*_DATETIME_FORMATS, *_DATE_FORMATS):
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    raise CellInvalid("时间格式错误（如 2026-05-20 14:30:00）")


def _excel_serial(serial: float) -> datetime:
    if not 1 <= serial < 2958466:  # 1900-01-01 … 9999-12-31
        raise CellInvalid("日期超出范围")
    return _EXCEL_EPOCH + timedelta(days=serial)
