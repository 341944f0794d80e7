"""Loading historical purchases (a POS's sales before it reported in real time).

A batch is three statements whatever its size: the members of its phones, the receipts it repeats,
and one multi-row INSERT of the new purchases. Historical sales earn no points (an opening balance
carries what they earned in the old system) and change no tier at once: the nightly statistics, the
tier review and `flask kpis compute --date` pick them up.

Idempotent by (store, receipt) as the staff and POS APIs are: a receipt already recorded with the same
amount and member is unchanged; with a different one it is a conflict in the report, and the
recorded sale stays.
"""

from __future__ import annotations

import re
import tempfile
from collections import ChainMap, Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app import reference_cache
from app.db import RetryableConflict
from app.models import Purchase, Store
from app.services.import_batches import BatchContext, BatchResult, Loader, Row
from app.services.import_files import (
    PURCHASE_FIELDS,
    CellInvalid,
    LocalTimes,
    parse_phone,
    parse_yuan,
)

RECEIPT_MAX_LENGTH = 64


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds per row to build
class PurchaseRow:
    row: Row
    store_id: int
    receipt_no: str
    amount_fen: int
    purchased_at: datetime
    phone_index: str | None
    # store_id, receipt_no, amount_fen and purchased_at as LOAD DATA reads them, written by the
    # reader thread so that the main thread only adds the member.
    load_columns: str


# Phones a run remembers (their blind index, their member): ~450 bytes each, so at most ~90 MB
# however many members.
MEMBER_MAP_LIMIT = 200_000


@dataclass
class PurchaseRun:
    """What a run's batches share: the stores, whether to insert first (see `store_purchases`), and
    the members of the phones met so far (see `_member_ids`)."""

    stores: dict[str, int]
    insert_first: bool = True
    members: dict[str, int] = field(default_factory=dict)
    # The MEMBER_IDENTITIES version `members` holds for; a merge or a deletion moves it.
    identity_version: int | None = None
    # Blind index by phone cell, in the reader thread: an HMAC per row was its largest single cost.
    phone_indexes: dict[Any, str] = field(default_factory=dict)
    # The mall's wall-clock times to UTC, for the reader thread (created with the first batch).
    local_times: LocalTimes | None = None


def _start_run(session: Session) -> PurchaseRun:
    return PurchaseRun(_stores_by_code(session))


@dataclass
class PreparedPurchases:
    # By (store, receipt): the first row of each receipt in the batch.
    rows: dict[tuple[int, str], PurchaseRow]
    result: BatchResult
    run: PurchaseRun


def prepare_purchases(rows: list[Row], run: PurchaseRun, context: BatchContext) -> PreparedPurchases:
    """Parse and check the batch and drop repeated receipts within it; no database."""
    result = BatchResult()
    parsed: dict[tuple[int, str], PurchaseRow] = {}
    if run.local_times is None or run.local_times.tz != context.at.tz:
        run.local_times = LocalTimes(context.at.tz)
    for row in rows:
        try:
            purchase_row = _parse(row, context, run)
        except CellInvalid as exc:
            result.reject(row, str(exc))
            continue
        key = (purchase_row.store_id, purchase_row.receipt_no)
        if (first := parsed.get(key)) is not None:
            if (purchase_row.amount_fen, purchase_row.phone_index) != (first.amount_fen, first.phone_index):
                where = f"文件第 {first.row[0]} 行"
                result.conflict(purchase_row.row, f"与{where}小票号相同但内容不同，保留{where}")
            result.unchanged += 1
            continue
        parsed[key] = purchase_row
    return PreparedPurchases(parsed, result, run)


def store_purchases(session: Session, prepared: PreparedPurchases, context: BatchContext) -> BatchResult:
    parsed, result = prepared.rows, prepared.result
    members = _member_ids(
        session, prepared.run, {p.phone_index for p in parsed.values() if p.phone_index is not None}
    )
    candidates: dict[tuple[int, str], NewRow] = {}
    for key, purchase_row in parsed.items():
        member_id = members.get(purchase_row.phone_index) if purchase_row.phone_index else None
        if purchase_row.phone_index is not None and member_id is None:
            result.reject(purchase_row.row, "手机号不是会员（请先导入会员）")
            continue
        candidates[key] = (member_id, purchase_row)
    if not candidates:
        return result
    created_at = context.at.now
    # A first import's batches hold new receipts only: insert them all at once, and only where one
    # turns out to be recorded already, undo that and set the recorded ones apart first. From then on
    # (a re-import, most likely) the run looks its receipts up before inserting.
    if prepared.run.insert_first:
        if _insert(session, list(candidates.values()), created_at):
            result.created = len(candidates)
            return result
        prepared.run.insert_first = False
    recorded = _recorded(session, list(candidates))
    new_rows = []
    for key, (member_id, purchase_row) in candidates.items():
        if (existing := recorded.get(key)) is None:
            new_rows.append((member_id, purchase_row))
            continue
        amount_fen, existing_member_id = existing
        if (amount_fen, existing_member_id) != (purchase_row.amount_fen, member_id):
            recorded_as = f"¥{amount_fen / 100:.2f}，会员 {existing_member_id or '无'}"
            result.conflict(purchase_row.row, f"小票已登记（{recorded_as}），保留已登记的记录")
        result.unchanged += 1
    if new_rows and not _insert(session, new_rows, created_at):
        raise RetryableConflict()  # recorded meanwhile (by a terminal): the batch runs again and finds it
    result.created = len(new_rows)
    return result


# Sales lock only their own new rows, so their batches can be large: a tenth of a million-row file's
# time was each batch's fixed cost at 2,000.
PURCHASES_LOADER = Loader(
    reference=_start_run, prepare=prepare_purchases, store=store_purchases, batch_size=10_000
)


_REQUIRED = [(field.name, field.label) for field in PURCHASE_FIELDS if field.required]


def _parse(row: Row, context: BatchContext, run: PurchaseRun) -> PurchaseRow:
    _, cells = row
    if None in (cells["store"], cells["receipt_no"], cells["amount"], cells["purchased_at"]):
        raise CellInvalid(f"缺少{next(label for name, label in _REQUIRED if cells[name] is None)}")
    store_id = run.stores.get(_code(cells["store"]))
    if store_id is None:
        raise CellInvalid(f"未知门店「{cells['store']}」（请填门店编码）")
    receipt_no = _code(cells["receipt_no"])
    if len(receipt_no) > RECEIPT_MAX_LENGTH:
        raise CellInvalid(f"小票号超过 {RECEIPT_MAX_LENGTH} 个字符")
    amount_fen = parse_yuan(cells["amount"])
    if amount_fen <= 0:
        raise CellInvalid("金额须大于 0")
    assert run.local_times is not None
    purchased_at, purchased_at_text = run.local_times.utc(cells["purchased_at"])
    if purchased_at > context.at.now:
        raise CellInvalid("消费时间晚于现在")
    phone = cells.get("phone")
    return PurchaseRow(
        row=row,
        store_id=store_id,
        receipt_no=receipt_no,
        amount_fen=amount_fen,
        purchased_at=purchased_at,
        phone_index=_phone_index(phone, context, run) if phone is not None else None,
        load_columns=f"{store_id}\t{_escaped(receipt_no)}\t{amount_fen}\t{purchased_at_text}",
    )


def _phone_index(phone: Any, context: BatchContext, run: PurchaseRun) -> str:
    index = run.phone_indexes.get(phone)
    if index is None:
        index = context.vault.blind_index(parse_phone(phone))
        if len(run.phone_indexes) < MEMBER_MAP_LIMIT:
            run.phone_indexes[phone] = index
    return index


# A row to insert: its member (None for a non-member sale) and what the file says.
NewRow = tuple[int | None, PurchaseRow]
_COLUMNS = ("member_id", "store_id", "receipt_no", "amount_fen", "purchased_at", "created_at")
# LOAD DATA LOCAL disabled on the client or the server: MySQL's 1148 and 3948, MariaDB's 4166.
_LOCAL_INFILE_REFUSED = frozenset({1148, 3948, 4166})


def _insert(session: Session, rows: list[NewRow], created_at: datetime) -> bool:
    """INSERT the rows; False, with nothing inserted, when one's receipt is recorded already.

    On MySQL/MariaDB by LOAD DATA LOCAL INFILE of a temporary file (several times faster than the
    multi-row INSERTs of an executemany, whose every value PyMySQL escapes in Python); elsewhere, or
    where the server refuses LOCAL INFILE, by executemany. Either way within the batch's transaction,
    in a savepoint of its own."""
    connection = session.connection()
    with session.begin_nested() as savepoint:
        if connection.dialect.name == "mysql" and not _local_infile_refused:
            try:
                loaded = _load_data(connection, rows, created_at)
            except OperationalError as exc:
                if exc.orig is None or exc.orig.args[0] not in _LOCAL_INFILE_REFUSED:
                    raise
                _local_infile_refused.add(True)
            else:
                if loaded == len(rows):
                    return True
                savepoint.rollback()  # LOAD DATA LOCAL skips a duplicate key instead of failing
                return False
        try:
            connection.execute(
                insert(Purchase),
                [
                    {
                        "member_id": member_id,
                        "store_id": row.store_id,
                        "receipt_no": row.receipt_no,
                        "amount_fen": row.amount_fen,
                        "purchased_at": row.purchased_at,
                        "created_at": created_at,
                    }
                    | _NO_POINTS
                    for member_id, row in rows
                ],
            )
        except IntegrityError:
            savepoint.rollback()
            return False
    return True


_NO_POINTS: dict[str, Any] = {"refunded_fen": 0, "points_earned": 0, "points_clawed_back": 0}
_local_infile_refused: set[bool] = set()


def _load_data(connection: Connection, rows: list[NewRow], created_at: datetime) -> int:
    created = _utc_text(created_at)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", newline="\n") as file:
        file.write(
            "".join(
                f"{_NULL if member_id is None else member_id}\t{row.load_columns}\t{created}\n"
                for member_id, row in rows
            )
        )
        file.flush()
        # The members and stores these ids name were read in this transaction, and neither is ever
        # deleted: the foreign key checks, an index lookup per row and key, would only repeat that.
        connection.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        try:
            result = connection.exec_driver_sql(_LOAD_DATA, (file.name,))
        finally:
            connection.exec_driver_sql("SET SESSION foreign_key_checks = 1")
    return int(result.rowcount)


_LOAD_DATA = (
    f"LOAD DATA LOCAL INFILE %s INTO TABLE purchases CHARACTER SET utf8mb4 ({', '.join(_COLUMNS)}) "
    "SET refunded_fen = 0, points_earned = 0, points_clawed_back = 0"
)
_NULL = "\\N"


def _escaped(text: str) -> str:
    """A value in LOAD DATA's default format: backslash, tab and newline escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _code(value: Any) -> str:
    """A store code or receipt number as text; Excel holds an all-digit one as a number."""
    if type(value) is str:
        return value  # cells of a CSV come stripped
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _stores_by_code(session: Session) -> dict[str, int]:
    """Store id by code, and by name where no two stores share it (exports often carry only the name)."""
    stores = list(session.execute(select(Store.code, Store.name, Store.id)))
    names = Counter(name for _, name, _ in stores)
    by_name = {name: store_id for _, name, store_id in stores if names[name] == 1}
    return by_name | {code: store_id for code, _, store_id in stores}


def _member_ids(session: Session, run: PurchaseRun, phone_indexes: set[str]) -> Mapping[str, int]:
    """Member id per phone; a member merged into another gives the survivor's.

    A sales file names the same members again and again (each about eight times in a year's sales),
    so the run keeps the members it has found and looks up only phones it has not met. The map holds
    while no member has been merged or deleted since it was filled (one narrow read per batch tells);
    phones that are no member are looked up again each time (they may sign up meanwhile)."""
    version = reference_cache.version(session, reference_cache.MEMBER_IDENTITIES)
    if version != run.identity_version:
        run.members.clear()
        run.identity_version = version
    known = run.members
    found = _members_by_phone(session, {index for index in phone_indexes if index not in known})
    if len(known) + len(found) <= MEMBER_MAP_LIMIT:
        known.update(found)
        return known
    return ChainMap(found, known)


def _members_by_phone(session: Session, phone_indexes: set[str]) -> dict[str, int]:
    if not phone_indexes:
        return {}
    # The digests are written into the statement: they are hex (checked), and binding ~2,000 of them
    # cost a third of a batch's time in SQLAlchemy and PyMySQL.
    if not all(_HEX.fullmatch(index) for index in phone_indexes):
        raise ValueError("a phone index is not a hex digest")
    listed = ",".join(f"'{index}'" for index in phone_indexes)
    rows = session.connection().exec_driver_sql(
        f"SELECT phone_index, id, merged_into_member_id FROM members WHERE phone_index IN ({listed})"
    )
    return {phone_index: survivor or member_id for phone_index, member_id, survivor in rows}


_HEX = re.compile(r"[0-9a-f]{64}")


def _recorded(session: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple[int, int | None]]:
    if not keys:
        return {}
    rows = session.execute(
        select(Purchase.store_id, Purchase.receipt_no, Purchase.amount_fen, Purchase.member_id).where(
            tuple_(Purchase.store_id, Purchase.receipt_no).in_(keys)
        )
    )
    return {(store_id, receipt_no): (amount, member_id) for store_id, receipt_no, amount, member_id in rows}
