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

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.models import Member, MemberSource, PointsEntry, PointsEntryKind, Tier, TierChange
from app.services import points, tiers
from app.services.import_batches import BatchContext, BatchResult, Loader, Row
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


@dataclass
class PreparedMembers:
    rows: list[MemberRow]
    result: BatchResult
    ladder: list[Tier]


def prepare_members(rows: list[Row], ladder: list[Tier], context: BatchContext) -> PreparedMembers:
    """Parse and check the batch; no database (tiers come with the run's reference data)."""
    result = BatchResult()
    parsed: list[MemberRow] = []
    for row in rows:
        try:
            parsed.append(_parse(row, context, ladder))
        except CellInvalid as exc:
            result.reject(row, str(exc))
    return PreparedMembers(parsed, result, ladder)


def store_members(session: Session, prepared: PreparedMembers, context: BatchContext) -> BatchResult:
    parsed, result, ladder = prepared.rows, prepared.result, prepared.ladder
    known = _members_by_phone(session, {member_row.phone_index for member_row in parsed})
    credited = _opening_credits(session, context.source, [member.id for member in known.values()])
    firsts: dict[
        str, MemberRow
    ] = {}  # the first row of each phone the mall does not know yet: each becomes a member
    for member_row in parsed:
        if member_row.phone_index not in known:
            firsts.setdefault(member_row.phone_index, member_row)
    known |= _create_members(session, list(firsts.values()), context, ladder[0])
    openings = []
    for member_row in parsed:
        member = known[member_row.phone_index]
        if firsts.get(member_row.phone_index) is member_row:
            if member_row.points > 0:
                openings.append(_opening(member.id, member_row, context))
                credited[openings[-1].idempotency_key] = member_row.points
            result.created += 1
            continue
        changed = _merge(session, member, member_row, context, result)
        if _credit_opening_points(
            session, member, member_row, credited=credited, context=context, result=result
        ):
            changed = True
        if changed:
            result.merged += 1
        else:
            result.unchanged += 1
    points.open_new_accounts(session, openings, at=context.at, settings=points.points_settings(session))
    return result


MEMBERS_LOADER = Loader(reference=tiers.tiers_by_rank, prepare=prepare_members, store=store_members)


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


def _create_members(
    session: Session, member_rows: list[MemberRow], context: BatchContext, entry_tier: Tier
) -> dict[str, Member]:
    """Insert the new members of a batch in one statement; returns them (locked: ours) by phone."""
    if not member_rows:
        return {}
    values = []
    for member_row in member_rows:
        protected = context.vault.protect(member_row.phone)
        values.append(
            {
                "phone_ciphertext": protected.ciphertext,
                "phone_index": protected.blind_index,
                "phone_masked": protected.masked,
                "nickname": member_row.name,
                "birthday": member_row.birthday,
                "tier_id": (member_row.tier or entry_tier).id,
                "source": MemberSource.IMPORT,
                "joined_at": member_row.joined_at or context.at.now,
            }
        )
    try:
        session.connection().execute(insert(Member), values)
    except IntegrityError as exc:
        raise RetryableConflict() from exc  # one signed up meanwhile: the batch runs again and merges it
    created = {
        member.phone_index: member
        for member in session.scalars(
            select(Member).where(Member.phone_index.in_([value["phone_index"] for value in values]))
        )
    }
    session.add_all(
        TierChange(
            member_id=created[member_row.phone_index].id,
            from_tier_id=None,
            to_tier_id=member_row.tier.id,
            reason=TIER_REASON,
            rolling_spend_fen=0,
            created_at=context.at.now,
        )
        for member_row in member_rows
        if member_row.tier is not None and member_row.tier.id != entry_tier.id
    )
    return created


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


def _opening_key(source: str, member_id: int) -> str:
    return f"import:opening:{source}:{member_id}"


def _opening_credits(session: Session, source: str, member_ids: list[int]) -> dict[str, int]:
    """The opening balances already credited to these members from this source, by idempotency key."""
    if not member_ids:
        return {}
    keys = [_opening_key(source, member_id) for member_id in member_ids]
    rows = session.execute(
        select(PointsEntry.idempotency_key, PointsEntry.delta).where(PointsEntry.idempotency_key.in_(keys))
    )
    return {key: delta for key, delta in rows}


def _opening(member_id: int, member_row: MemberRow, context: BatchContext) -> points.Posting:
    return points.Posting(
        member_id=member_id,
        points=member_row.points,
        kind=PointsEntryKind.OPENING,
        idempotency_key=_opening_key(context.source, member_id),
        description=f"期初积分（{context.source} 导入）",
        reference=f"import:{context.job.id}",
        operator_id=context.job.operator_id,
        expires_on=member_row.points_expire_on,
    )


def _credit_opening_points(
    session: Session,
    member: Member,
    member_row: MemberRow,
    *,
    credited: dict[str, int],
    context: BatchContext,
    result: BatchResult,
) -> bool:
    """The row's balance as an existing member's opening entry for this source, once; True when credited.

    The member is locked (found FOR UPDATE in this transaction) and `credited` holds its earlier credit
    if any, so the posting needs no lookups of its own."""
    if member_row.points <= 0:
        return False
    key = _opening_key(context.source, member.id)
    if (earlier := credited.get(key)) is not None:
        if earlier != member_row.points:
            result.conflict(
                member_row.row,
                f"会员 {member.id} 已导入期初积分 {earlier}，文件为 {member_row.points}，未再次入账",
            )
        return False
    credited[key] = member_row.points
    points.earn(
        session,
        _opening(member.id, member_row, context),
        at=context.at,
        settings=points.points_settings(session),
        locked_member=member,
    )
    return True
