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

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.models import Member, Purchase, Store
from app.services.import_batches import BatchContext, BatchResult, Row
from app.services.import_files import (
    PURCHASE_FIELDS,
    CellInvalid,
    parse_local_datetime,
    parse_phone,
    parse_yuan,
)

RECEIPT_MAX_LENGTH = 64


@dataclass(frozen=True)
class PurchaseRow:
    row: Row
    store_id: int
    receipt_no: str
    amount_fen: int
    purchased_at: datetime
    phone_index: str | None


def load_purchases(session: Session, rows: list[Row], context: BatchContext) -> BatchResult:
    result = BatchResult()
    stores = _stores_by_code(session)
    parsed: dict[tuple[int, str], PurchaseRow] = {}
    for row in rows:
        try:
            purchase_row = _parse(row, context, stores)
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

    members = _member_ids(session, {p.phone_index for p in parsed.values() if p.phone_index is not None})
    recorded = _recorded(session, list(parsed))
    new_rows = []
    for key, purchase_row in parsed.items():
        member_id = members.get(purchase_row.phone_index) if purchase_row.phone_index else None
        if purchase_row.phone_index is not None and member_id is None:
            result.reject(purchase_row.row, "手机号不是会员（请先导入会员）")
            continue
        if (existing := recorded.get(key)) is not None:
            amount_fen, existing_member_id = existing
            if (amount_fen, existing_member_id) != (purchase_row.amount_fen, member_id):
                recorded_as = f"¥{amount_fen / 100:.2f}，会员 {existing_member_id or '无'}"
                result.conflict(purchase_row.row, f"小票已登记（{recorded_as}），保留已登记的记录")
            result.unchanged += 1
            continue
        new_rows.append(
            {
                "member_id": member_id,
                "store_id": purchase_row.store_id,
                "receipt_no": purchase_row.receipt_no,
                "amount_fen": purchase_row.amount_fen,
                "refunded_fen": 0,
                "points_earned": 0,
                "points_clawed_back": 0,
                "purchased_at": purchase_row.purchased_at,
                "created_at": context.at.now,
            }
        )
    if new_rows:
        # A receipt recorded meanwhile (by a terminal) fails the whole statement on the unique key;
        # the batch then runs again and finds it among the recorded ones.
        try:
            session.execute(insert(Purchase), new_rows)
        except IntegrityError as exc:
            raise RetryableConflict() from exc
    result.created = len(new_rows)
    return result


def _parse(row: Row, context: BatchContext, stores: dict[str, int]) -> PurchaseRow:
    _, cells = row
    for field in PURCHASE_FIELDS:
        if field.required and cells.get(field.name) is None:
            raise CellInvalid(f"缺少{field.label}")
    store_id = stores.get(_code(cells["store"]))
    if store_id is None:
        raise CellInvalid(f"未知门店「{cells['store']}」（请填门店编码）")
    receipt_no = _code(cells["receipt_no"])
    if len(receipt_no) > RECEIPT_MAX_LENGTH:
        raise CellInvalid(f"小票号超过 {RECEIPT_MAX_LENGTH} 个字符")
    amount_fen = parse_yuan(cells["amount"])
    if amount_fen <= 0:
        raise CellInvalid("金额须大于 0")
    purchased_at = parse_local_datetime(cells["purchased_at"], context.at.tz)
    if purchased_at > context.at.now:
        raise CellInvalid("消费时间晚于现在")
    phone = cells.get("phone")
    return PurchaseRow(
        row=row,
        store_id=store_id,
        receipt_no=receipt_no,
        amount_fen=amount_fen,
        purchased_at=purchased_at,
        phone_index=context.vault.blind_index(parse_phone(phone)) if phone is not None else None,
    )


def _code(value: Any) -> str:
    """A store code or receipt number as text; Excel holds an all-digit one as a number."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _stores_by_code(session: Session) -> dict[str, int]:
    """Store id by code, and by name where no two stores share it (exports often carry only the name)."""
    stores = list(session.execute(select(Store.code, Store.name, Store.id)))
    names = Counter(name for _, name, _ in stores)
    by_name = {name: store_id for _, name, store_id in stores if names[name] == 1}
    return by_name | {code: store_id for code, _, store_id in stores}


def _member_ids(session: Session, phone_indexes: set[str]) -> dict[str, int]:
    """Member id per phone; a member merged into another gives the survivor's."""
    if not phone_indexes:
        return {}
    rows = session.execute(
        select(Member.phone_index, Member.id, Member.merged_into_member_id).where(
            Member.phone_index.in_(phone_indexes)
        )
    )
    return {phone_index: survivor or member_id for phone_index, member_id, survivor in rows}


def _recorded(session: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple[int, int | None]]:
    if not keys:
        return {}
    rows = session.execute(
        select(Purchase.store_id, Purchase.receipt_no, Purchase.amount_fen, Purchase.member_id).where(
            tuple_(Purchase.store_id, Purchase.receipt_no).in_(keys)
        )
    )
    return {(store_id, receipt_no): (amount, member_id) for store_id, receipt_no, amount, member_id in rows}
