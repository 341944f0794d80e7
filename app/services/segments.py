"""Segments (人群分组): saved rules over tags and member facts, counted live, used as audiences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.mall_time import MallTime
from app.models import CouponCampaign, Member, Segment, Tier
from app.services.tag_rules import RuleContext, compile_rule, members_matching


class SegmentNameTaken(Conflict):
    code, message = "SEGMENT_NAME_TAKEN", "人群名称已存在"


class SegmentInUse(Conflict):
    code, message = "SEGMENT_IN_USE", "该人群已用于发券活动，不能删除"


def create_segment(
    session: Session,
    *,
    name: str,
    rule: dict[str, Any],
    description: str | None,
    operator_id: int | None,
    at: MallTime,
) -> Segment:
    compile_rule(rule, RuleContext.load(session, at))
    segment = Segment(name=name, rule=rule, description=description, created_by_operator_id=operator_id)
    session.add(segment)
    _flush_named(session, name)
    return segment


def update_segment(
    session: Session,
    segment_id: int,
    *,
    name: str,
    rule: dict[str, Any],
    description: str | None,
    at: MallTime,
) -> Segment:
    segment = get_segment(session, segment_id)
    compile_rule(rule, RuleContext.load(session, at))
    segment.name, segment.rule, segment.description = name, rule, description
    _flush_named(session, name)
    return segment


def delete_segment(session: Session, segment_id: int) -> None:
    segment = get_segment(session, segment_id)
    if session.scalar(select(func.count()).where(CouponCampaign.segment_id == segment_id)):
        raise SegmentInUse()
    session.delete(segment)


def get_segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound("人群不存在")
    return segment


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(Segment.id)))


def _matching(session: Session, segment: Segment, at: MallTime) -> Any:
    return members_matching(compile_rule(segment.rule, RuleContext.load(session, at)))


def live_count(session: Session, segment: Segment, at: MallTime) -> int:
    """How many members the segment holds now (tags as of the last refresh)."""
    return session.scalar(select(func.count()).select_from(_matching(session, segment, at).subquery())) or 0


def member_page(
    session: Session, segment: Segment, at: MallTime, *, after_member_id: int, limit: int
) -> list[Any]:
    ids = _matching(session, segment, at).where(Member.id > after_member_id).order_by(Member.id).limit(limit)
    page = ids.subquery()
    return list(
        session.execute(
            select(Member.id, Member.nickname, Member.phone_masked)
            .where(Member.id.in_(select(page.c.id)))
            .order_by(Member.id)
        ).all()
    )


EXPORT_BATCH = 1_000


def export_rows(
    session: Session, segment: Segment, at: MallTime, *, batch_size: int | None = None
) -> Iterator[Any]:
    """Every member of the segment now, by member id, for an export: id, nickname, masked phone, tier
    name, points balance, joined at. Read a batch at a time (keyset on the member id), so a large
    segment is never held in memory at once; the phone is only ever the masked one."""
    matching, size = _matching(session, segment, at), batch_size or EXPORT_BATCH
    after = 0
    while True:
        page = matching.where(Member.id > after).order_by(Member.id).limit(size).subquery()
        rows = session.execute(
            select(
                Member.id,
                Member.nickname,
                Member.phone_masked,
                Tier.name.label("tier_name"),
                Member.points_balance,
                Member.joined_at,
            )
            .join(Tier, Tier.id == Member.tier_id)
            .where(Member.id.in_(select(page.c.id)))
            .order_by(Member.id)
        ).all()
        yield from rows
        if len(rows) < size:
            return
        after = rows[-1].id


def member_ids(session: Session, segment: Segment, at: MallTime, *, limit: int) -> list[int]:
    """The ids of the segment's members now, at most `limit` (by member id)."""
    return list(session.scalars(_matching(session, segment, at).order_by(Member.id).limit(limit)))


def _flush_named(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise SegmentNameTaken(details={"name": name}) from exc
