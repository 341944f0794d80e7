"""Merging two members (会员合并): the source member is folded into the survivor, history and all.

Typical case: a shopper changed phones and signed up again, or a POS import duplicated a WeChat
member. Everything the source owns moves to the survivor (points as ledger entries on both sides,
lots keeping their expiry), the source is marked merged and can no longer sign in or be found by
phone as an active member, and both members' statistics are queued for tonight's refresh.

A merge is one transaction that locks both member rows in id order (lower first), so two
concurrent merges of the same pair (either direction) serialise: the second sees the first's result
and is refused, never a second move and never a deadlock.

Every foreign key to `members.id` has a decision in `FK_DECISIONS`; a test compares it with the
model's metadata, so a new table referencing members cannot be forgotten here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app import reference_cache
from app.errors import Conflict, NotFound, ValidationFailed
from app.mall_time import MallTime
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    Coupon,
    Member,
    MemberConsent,
    MemberPlate,
    MemberTag,
    MemberTagHistory,
    ParkingPayment,
    ParkingPaymentStatus,
    ParkingQuote,
    PartnerActivityCredit,
    Purchase,
    QrScene,
    WeChatAccount,
)
from app.models.advisor import CorpTagSync, ExternalContact
from app.models.tag import MemberStatsQueue
from app.services import audit, points


class Decision(enum.StrEnum):
    MOVE = "move"  # rows now belong to the survivor
    KEEP = "keep"  # history that stays with the source (it records what happened to that member)
    CUSTOM = "custom"  # moved by a rule of its own (see `merge`)


# (table, column) of every foreign key to members.id, and what a merge does with its rows.
FK_DECISIONS: dict[tuple[str, str], Decision] = {
    ("coupons", "member_id"): Decision.MOVE,
    ("purchases", "member_id"): Decision.MOVE,  # refunds hang off the purchase and follow it
    ("member_plates", "member_id"): Decision.MOVE,
    ("wechat_accounts", "member_id"): Decision.MOVE,  # the openids sign in as the survivor now
    ("member_consents", "member_id"): Decision.MOVE,  # evidence follows the WeChat account
    ("wecom_external_contacts", "member_id"): Decision.MOVE,
    ("wecom_corp_tag_syncs", "member_id"): Decision.MOVE,  # queued syncs are about those contacts
    ("partner_activity_credits", "member_id"): Decision.MOVE,
    ("parking_payments", "member_id"): Decision.MOVE,  # only settled ones: open ones refuse a merge
    ("parking_quotes", "member_id"): Decision.MOVE,
    ("member_tag_history", "member_id"): Decision.MOVE,
    ("qr_scenes", "referrer_member_id"): Decision.MOVE,  # the source's referral codes credit the survivor
    ("member_tags", "member_id"): Decision.CUSTOM,  # union; a tag both have ends on the source (history)
    ("advisor_tasks", "member_id"): Decision.CUSTOM,  # moved unless the survivor has that task that day
    ("advisor_assignments", "member_id"): Decision.CUSTOM,  # survivor keeps their advisor, else takes
    ("members", "referred_by_member_id"): Decision.CUSTOM,  # members the source referred → survivor
    ("members", "merged_into_member_id"): Decision.CUSTOM,  # earlier merges into the source → survivor
    ("points_entries", "member_id"): Decision.CUSTOM,  # ledger stays; balances move as MERGE entries
    ("points_lots", "member_id"): Decision.CUSTOM,  # drained on the source, recreated on the survivor
    ("check_ins", "member_id"): Decision.KEEP,  # one per member and day; the streak is the survivor's
    ("tier_changes", "member_id"): Decision.KEEP,
    ("lifecycle_transitions", "member_id"): Decision.KEEP,
    ("member_stats", "member_id"): Decision.KEEP,  # both are queued for tonight's recomputation
    ("used_member_codes", "member_id"): Decision.KEEP,  # single-use digests that expire within minutes
}

_SIMPLE_MOVES: list[tuple[str, Any]] = [
    ("coupons", Coupon.member_id),
    ("purchases", Purchase.member_id),
    ("plates", MemberPlate.member_id),
    ("wechat_accounts", WeChatAccount.member_id),
    ("consents", MemberConsent.member_id),
    ("wecom_contacts", ExternalContact.member_id),
    ("wecom_tag_syncs", CorpTagSync.member_id),
    ("partner_credits", PartnerActivityCredit.member_id),
    ("parking_payments", ParkingPayment.member_id),
    ("parking_quotes", ParkingQuote.member_id),
    ("tag_history", MemberTagHistory.member_id),
    ("referral_scenes", QrScene.referrer_member_id),
]

_OPEN_PARKING = (ParkingPaymentStatus.PENDING, ParkingPaymentStatus.UNKNOWN)


class MergeRefused(Conflict):
    code, message = "MEMBER_MERGE_REFUSED", "无法合并这两个会员"


class SameMember(ValidationFailed):
    code, message = "MEMBER_MERGE_SAME", "不能把会员与自己合并，请填写另一位会员的 ID"


@dataclass(frozen=True)
class MergeOutcome:
    survivor_id: int
    source_id: int
    moved: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MergePreview:
    """What a merge would do, for the operator to confirm (phones masked)."""

    survivor: Member
    source: Member
    moves: dict[str, int]
    refusal: str | None


def _check_mergeable(session: Session, survivor: Member, source: Member) -> None:
    for member in (survivor, source):
        if member.merged_into_member_id is not None:
            raise MergeRefused(
                f"会员 {member.id} 已合并到会员 {member.merged_into_member_id}，不能再次合并",
                details={"member_id": member.id},
            )
    open_payment = session.execute(
        select(ParkingPayment.member_id, ParkingPayment.status)
        .where(
            ParkingPayment.member_id.in_([survivor.id, source.id]), ParkingPayment.status.in_(_OPEN_PARKING)
        )
        .limit(1)
    ).first()
    if open_payment is not None:
        member_id, status = open_payment
        if status == ParkingPaymentStatus.UNKNOWN:
            message = f"会员 {member_id} 有一笔停车缴费待与停车场对账（可能退回积分），请对账完成后再合并"
        else:
            message = f"会员 {member_id} 有一笔停车缴费尚未完成，请完成后再合并"
        raise MergeRefused(message, details={"member_id": member_id})


def _load_pair(session: Session, survivor_id: int, source_id: int, *, lock: bool) -> tuple[Member, Member]:
    if survivor_id == source_id:
        raise SameMember()
    found: dict[int, Member] = {}
    # Lower id first, always: two merges of the same pair lock in the same order and cannot deadlock.
    for member_id in sorted((survivor_id, source_id)):
        query = select(Member).where(Member.id == member_id).execution_options(populate_existing=True)
        member = session.scalars(query.with_for_update() if lock else query).one_or_none()
        if member is None:
            raise NotFound(f"会员 {member_id} 不存在")
        found[member_id] = member
    return found[survivor_id], found[source_id]


def _count(session: Session, column: Any, member_id: int) -> int:
    return int(session.scalar(select(func.count()).where(column == member_id)) or 0)


def preview(session: Session, survivor_id: int, source_id: int) -> MergePreview:
    """Both members and the rows that would move, with the reason a merge would be refused (if any).
    Raises SameMember or NotFound for a pair that cannot even be shown."""
    survivor, source = _load_pair(session, survivor_id, source_id, lock=False)
    moves = {name: _count(session, column, source_id) for name, column in _SIMPLE_MOVES}
    moves["tags"] = _count(session, MemberTag.member_id, source_id)
    moves["tasks"] = _count(session, AdvisorTask.member_id, source_id)
    moves["referred_members"] = _count(session, Member.referred_by_member_id, source_id)
    moves["points"] = source.points_balance
    moves["points_debt"] = source.points_debt
    refusal = None
    try:
        _check_mergeable(session, survivor, source)
    except MergeRefused as refused:
        refusal = refused.message
    return MergePreview(survivor=survivor, source=source, moves=moves, refusal=refusal)


def merge(
    session: Session,
    survivor_id: int,
    source_id: int,
    *,
    operator_id: int | None,
    at: MallTime,
    client_ip: str | None = None,
) -> MergeOutcome:
    """Fold member `source_id` into `survivor_id`, all or nothing, and audit it (`member.merge`).

    Refuses (MergeRefused, 409) when either member is already merged (so a repeat never moves
    twice) or has a parking payment not yet settled; SameMember (422) for one member twice.
    Only flushes: the caller's transaction commits.
    """
    survivor, source = _load_pair(session, survivor_id, source_id, lock=True)
    _check_mergeable(session, survivor, source)

    moved: dict[str, int] = {}
    for name, column in _SIMPLE_MOVES:
        result = session.execute(
            update(column.class_)
            .where(column == source_id)
            .values({column.key: survivor_id})
            .execution_options(synchronize_session=False)
        )
        moved[name] = result.rowcount  # type: ignore[attr-defined]
    moved["tags"], moved["tags_already_held"] = _merge_tags(session, survivor_id, source_id, at)
    moved["tasks"], moved["tasks_kept"] = _merge_tasks(session, survivor_id, source_id)
    moved["advisor_taken"] = _merge_advisor(session, survivor, source, at)
    moved["referred_members"] = session.execute(
        update(Member)
        .where(Member.referred_by_member_id == source_id, Member.id != survivor_id)
        .values(referred_by_member_id=survivor_id)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.execute(
        update(Member)
        .where(Member.merged_into_member_id == source_id)
        .values(merged_into_member_id=survivor_id)
        .execution_options(synchronize_session=False)
    )
    merged_points = points.move_on_merge(
        session, source_id=source_id, survivor_id=survivor_id, operator_id=operator_id, at=at
    )
    moved["points"], moved["points_lots"], moved["points_debt"] = (
        merged_points.points,
        merged_points.lots,
        merged_points.debt,
    )
    # What the survivor lacks, the source's profile fills in; nothing the survivor has is overwritten.
    for attribute in ("nickname", "birthday", "advisor_note"):
        if getattr(survivor, attribute) is None and getattr(source, attribute) is not None:
            setattr(survivor, attribute, getattr(source, attribute))
    source.merged_into_member_id = survivor_id
    reference_cache.bump_versions(session, [reference_cache.MEMBER_IDENTITIES])
    source.merged_at = at.now
    _queue_stats(session, [survivor_id, source_id])
    session.flush()
    audit.record(
        session,
        operator_id=operator_id,
        action="member.merge",
        target_type="member",
        target_id=survivor_id,
        detail={"survivor_member_id": survivor_id, "source_member_id": source_id, "moved": moved},
        client_ip=client_ip,
    )
    return MergeOutcome(survivor_id=survivor_id, source_id=source_id, moved=moved)


def _merge_tags(session: Session, survivor_id: int, source_id: int, at: MallTime) -> tuple[int, int]:
    """Union of both members' tags; a tag both hold stays the survivor's and the source's ends in
    history, so no assignment is lost."""
    held = set(session.scalars(select(MemberTag.tag_id).where(MemberTag.member_id == survivor_id)))
    duplicates = session.scalars(
        select(MemberTag).where(MemberTag.member_id == source_id, MemberTag.tag_id.in_(held))
    ).all()
    for tag in duplicates:
        session.add(
            MemberTagHistory(
                member_id=survivor_id,
                tag_id=tag.tag_id,
                source=tag.source,
                since=tag.since,
                until=at.now,
            )
        )
    session.execute(
        delete(MemberTag)
        .where(MemberTag.member_id == source_id, MemberTag.tag_id.in_(held))
        .execution_options(synchronize_session=False)
    )
    moved = session.execute(
        update(MemberTag)
        .where(MemberTag.member_id == source_id)
        .values(member_id=survivor_id)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return moved, len(duplicates)


def _merge_tasks(session: Session, survivor_id: int, source_id: int) -> tuple[int, int]:
    """Moves the source's tasks, except one the survivor already has (same type, same day): that one
    stays with the source, where it is history (the survivor's own task is the one to do)."""
    survivor_tasks = {
        (task_type, day)
        for task_type, day in session.execute(
            select(AdvisorTask.task_type, AdvisorTask.business_date).where(
                AdvisorTask.member_id == survivor_id
            )
        )
    }
    source_tasks = session.execute(
        select(AdvisorTask.id, AdvisorTask.task_type, AdvisorTask.business_date).where(
            AdvisorTask.member_id == source_id
        )
    ).all()
    movable = [task_id for task_id, kind, day in source_tasks if (kind, day) not in survivor_tasks]
    if movable:
        session.execute(
            update(AdvisorTask)
            .where(AdvisorTask.id.in_(movable))
            .values(member_id=survivor_id)
            .execution_options(synchronize_session=False)
        )
    return len(movable), len(source_tasks) - len(movable)


def _merge_advisor(session: Session, survivor: Member, source: Member, at: MallTime) -> int:
    """The survivor keeps their advisor; one without takes the source's (with its assignment).
    Returns 1 when the survivor took the source's advisor."""
    open_of_source = (AdvisorAssignment.member_id == source.id, AdvisorAssignment.ended_at.is_(None))
    taken = survivor.advisor_id is None and source.advisor_id is not None
    if taken:
        survivor.advisor_id = source.advisor_id
        session.execute(
            update(AdvisorAssignment)
            .where(*open_of_source)
            .values(member_id=survivor.id)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(
            update(AdvisorAssignment)
            .where(*open_of_source)
            .values(ended_at=at.now, end_reason=AssignmentEnd.RETURNED_TO_POOL)
            .execution_options(synchronize_session=False)
        )
    source.advisor_id = None
    return int(taken)


def _queue_stats(session: Session, member_ids: list[int]) -> None:
    # IGNORE: the member may be queued already (by tonight's planning, or a purchase).
    session.execute(
        insert(MemberStatsQueue)
        .prefix_with("IGNORE", dialect="mysql")
        .prefix_with("OR IGNORE", dialect="sqlite"),
        [{"member_id": member_id} for member_id in member_ids],
    )


def active_member_id(session: Session, member_id: int) -> int:
    """The member that `member_id` now is: itself, or the survivor it was merged into."""
    merged_into = session.scalar(select(Member.merged_into_member_id).where(Member.id == member_id))
    return merged_into if merged_into is not None else member_id
