"""Loading members from a POS or an old CRM: one person is one member, found by phone.

The rule for a row whose phone is already a member's (documented in the README, listed in the report):
- the member is kept and updated, never duplicated; a phone of a member merged into another updates
  the survivor;
- name and birthday: the member's own value wins (they gave it in the mini-program, or an earlier
  import did); an empty one is filled from the file; a different one is a conflict in the report;
- tier: the higher of the two (an import raises a tier, never lowers it; a lower one is a conflict);
- joined: the earlier of the two (a customer since the old system's date);
- opening points: credited once per member and source, as an `opening` ledger entry with its own
  expiry; a different balance for a member already credited is a conflict, not a second credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict, insert_row
from app.models import Member, MemberSource, PointsEntry, PointsEntryKind, Tier, TierChange
from app.services import points, tiers
from app.services.import_batches import BatchContext, BatchResult, Row
from app.services.import_files import (
    CellInvalid,
    parse_date,
    parse_local_datetime,
    parse_phone,
    parse_points,
)

NAME_MAX_LENGTH = 64
TIER_REASON = "import"


@dataclass(frozen=True)
class MemberRow:
    row: Row
    phone: str
    phone_index: str
    name: str | None
    birthday: date | None
    tier: Tier | None
    points: int
    points_expire_on: date | None
    joined_at: datetime | None


def load_members(session: Session, rows: list[Row], context: BatchContext) -> BatchResult:
    result = BatchResult()
    ladder = tiers.tiers_by_rank(session)
    parsed: list[MemberRow] = []
    for row in rows:
        try:
            parsed.append(_parse(row, context, ladder))
        except CellInvalid as exc:
            result.reject(row, str(exc))
    known = _members_by_phone(session, {member_row.phone_index for member_row in parsed})
    settings = points.points_settings(session)
    for member_row in parsed:
        member = known.get(member_row.phone_index)
        if member is None:
            member = known[member_row.phone_index] = _create(session, member_row, context, ladder[0])
            _credit_opening_points(session, member, member_row, context, settings, result)
            result.created += 1
            continue
        changed = _merge(session, member, member_row, context, result)
        if _credit_opening_points(session, member, member_row, context, settings, result) or changed:
            result.merged += 1
        else:
            result.unchanged += 1
    return result


def _parse(row: Row, context: BatchContext, ladder: list[Tier]) -> MemberRow:
    _, cells = row
    if cells.get("phone") is None:
        raise CellInvalid("缺少手机号")
    phone = parse_phone(cells["phone"])
    name = str(cells["name"]) if cells.get("name") is not None else None
    if name is not None and len(name) > NAME_MAX_LENGTH:
        raise CellInvalid(f"姓名超过 {NAME_MAX_LENGTH} 个字")
    birthday = _optional(cells, "birthday", parse_date)
    if birthday is not None and not date(1900, 1, 1) <= birthday <= context.at.today:
        raise CellInvalid("生日不在合理范围内")
    joined_at = _optional(cells, "joined_at", lambda value: parse_local_datetime(value, context.at.tz))
    if joined_at is not None and joined_at > context.at.now:
        raise CellInvalid("入会时间晚于现在")
    balance = _optional(cells, "points", parse_points) or 0
    expire_on = _optional(cells, "points_expire_on", parse_date) or context.points_expire_on
    if balance and expire_on is not None and expire_on < context.at.today:
        raise CellInvalid(f"积分已于 {expire_on.isoformat()} 到期，未导入")
    return MemberRow(
        row=row,
        phone=phone,
        phone_index=context.vault.blind_index(phone),
        name=name,
        birthday=birthday,
        tier=_tier(cells.get("tier"), ladder),
        points=balance,
        points_expire_on=expire_on,
        joined_at=joined_at,
    )


def _optional(cells: dict[str, Any], name: str, parse: Any) -> Any:
    value = cells.get(name)
    return None if value is None else parse(value)


def _tier(value: Any, ladder: list[Tier]) -> Tier | None:
    if value is None:
        return None
    wanted = str(value).strip().lower()
    for tier in ladder:
        if wanted in (tier.code.lower(), tier.name.lower()):
            return tier
    names = "、".join(tier.name for tier in ladder)
    raise CellInvalid(f"未知会员等级「{value}」（可用：{names}）")


def _members_by_phone(session: Session, phone_indexes: set[str]) -> dict[str, Member]:
    """The members of these phones, locked in id order; a merged-away member's phone gives its survivor."""
    if not phone_indexes:
        return {}
    found = list(
        session.scalars(
            select(Member).where(Member.phone_index.in_(phone_indexes)).order_by(Member.id).with_for_update()
        )
    )
    by_phone = {member.phone_index: member for member in found}
    for member in found:
        if member.merged_into_member_id is not None:
            survivor = session.get(Member, member.merged_into_member_id, with_for_update=True)
            assert survivor is not None
            by_phone[member.phone_index] = survivor
    return by_phone


def _create(session: Session, member_row: MemberRow, context: BatchContext, entry_tier: Tier) -> Member:
    protected = context.vault.protect(member_row.phone)
    tier = member_row.tier or entry_tier
    member = Member(
        phone_ciphertext=protected.ciphertext,
        phone_index=protected.blind_index,
        phone_masked=protected.masked,
        nickname=member_row.name,
        birthday=member_row.birthday,
        tier_id=tier.id,
        source=MemberSource.IMPORT,
        joined_at=member_row.joined_at or context.at.now,
    )
    try:
        insert_row(session, member)
    except IntegrityError as exc:
        raise RetryableConflict() from exc  # signed up meanwhile: the batch runs again and merges
    if member_row.tier is not None and tier.id != entry_tier.id:
        session.add(
            TierChange(
                member_id=member.id,
                from_tier_id=None,
                to_tier_id=tier.id,
                reason=TIER_REASON,
                rolling_spend_fen=0,
                created_at=context.at.now,
            )
        )
    return member


def _merge(
    session: Session, member: Member, member_row: MemberRow, context: BatchContext, result: BatchResult
) -> bool:
    """Apply the documented rule; True when the member changed."""
    changed = False
    conflicts = []
    for attribute, label, value in (
        ("nickname", "姓名", member_row.name),
        ("birthday", "生日", member_row.birthday),
    ):
        current = getattr(member, attribute)
        if value is None or value == current:
            continue
        if current is None:
            setattr(member, attribute, value)
            changed = True
        else:
            conflicts.append(f"{label}：保留「{_text(current)}」，文件为「{_text(value)}」")
    if member_row.tier is not None and member_row.tier.id != member.tier_id:
        current_tier = tiers.tier_of(session, member.tier_id)
        if member_row.tier.rank > current_tier.rank:
            tiers.change_tier(
                session, member, current_tier, member_row.tier, reason=TIER_REASON, at=context.at
            )
            changed = True
        else:
            conflicts.append(
                f"等级：保留「{current_tier.name}」，文件为「{member_row.tier.name}」（导入不降级）"
            )
    if member_row.joined_at is not None and member_row.joined_at < member.joined_at:
        member.joined_at = member_row.joined_at
        changed = True
    if conflicts:
        result.conflict(member_row.row, f"与会员 {member.id} 不一致：" + "；".join(conflicts))
    session.flush()
    return changed


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _credit_opening_points(
    session: Session,
    member: Member,
    member_row: MemberRow,
    context: BatchContext,
    settings: Any,
    result: BatchResult,
) -> bool:
    """The row's balance as the member's opening entry for this source, once; True when credited."""
    if member_row.points <= 0:
        return False
    key = f"import:opening:{context.source}:{member.id}"
    credited = session.scalars(select(PointsEntry).where(PointsEntry.idempotency_key == key)).one_or_none()
    if credited is not None:
        if credited.delta != member_row.points:
            result.conflict(
                member_row.row,
                f"会员 {member.id} 已导入期初积分 {credited.delta}，文件为 {member_row.points}，未再次入账",
            )
        return False
    points.earn(
        session,
        points.Posting(
            member_id=member.id,
            points=member_row.points,
            kind=PointsEntryKind.OPENING,
            idempotency_key=key,
            description=f"期初积分（{context.source} 导入）",
            reference=f"import:{context.job.id}",
            operator_id=context.job.operator_id,
        ),
        at=context.at,
        settings=settings,
        expires_on=member_row.points_expire_on,
    )
    return True
