"""Partners (合作方) that credit points for activity outside the mall, e.g. a running track's calories.

An operator registers a partner with its earning rule and daily cap and hands it a
shared secret; the partner then reports events, each credited at most once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.errors import Conflict, NotFound
from app.mall_time import MallTime
from app.models import Member, Partner, PartnerActivityCredit, PointsEntryKind, PointsSettings
from app.pii import PhoneVault
from app.services import members, points

# Activities partners commonly report, as a shopper reads them in their points history.
_ACTIVITY_NAMES = {
    "running": "跑步",
    "walking": "步行",
    "cycling": "骑行",
    "swimming": "游泳",
    "fitness": "健身",
}


class PartnerExists(Conflict):
    code, message = "PARTNER_EXISTS", "该合作方编码已存在"


class PartnerNotFound(NotFound):
    code, message = "PARTNER_NOT_FOUND", "合作方不存在"


class MemberNotFound(NotFound):
    code, message = "MEMBER_NOT_FOUND", "会员不存在"


class EventConflict(Conflict):
    code, message = "EVENT_CONFLICT", "该事件编号已登记过一笔会员或数量不同的活动"


@dataclass(frozen=True)
class PartnerRules:
    """What an operator may change about a partner."""

    name: str
    activity_unit: int
    points_per_unit: int
    # 0 means no cap, as for purchases.
    daily_cap_points: int


@dataclass(frozen=True)
class ActivityReport:
    """One event as the partner reports it; the member by id or by phone."""

    event_id: str
    activity: str
    amount: int
    occurred_at: datetime
    member_id: int | None = None
    phone: str | None = None


@dataclass(frozen=True)
class CreditResult:
    credit: PartnerActivityCredit
    # The daily cap cut the points below what the activity earns.
    capped: bool
    created: bool


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def create_partner(session: Session, code: str, rules: PartnerRules) -> Partner:
    """A new, active partner with a freshly generated secret. Raises PartnerExists for a taken code."""
    if session.scalars(select(Partner.id).where(Partner.code == code)).first() is not None:
        raise PartnerExists()
    partner = Partner(
        code=code,
        name=rules.name,
        secret=new_secret(),
        activity_unit=rules.activity_unit,
        points_per_unit=rules.points_per_unit,
        daily_cap_points=rules.daily_cap_points,
        is_active=True,
    )
    session.add(partner)
    try:
        session.flush()
    except IntegrityError as exc:
        # A concurrent create of the same code won the unique key.
        raise PartnerExists() from exc
    return partner


def list_partners(session: Session) -> list[Partner]:
    return list(session.scalars(select(Partner).order_by(Partner.id)))


def update_partner(session: Session, partner_id: int, rules: PartnerRules, *, is_active: bool) -> Partner:
    """Change a partner's rules; they apply to events credited from now on."""
    partner = _partner_for_update(session, partner_id)
    partner.name = rules.name
    partner.activity_unit = rules.activity_unit
    partner.points_per_unit = rules.points_per_unit
    partner.daily_cap_points = rules.daily_cap_points
    partner.is_active = is_active
    session.flush()
    return partner


def rotate_secret(session: Session, partner_id: int) -> Partner:
    """Replace the partner's secret; requests signed with the old one fail from the commit on."""
    partner = _partner_for_update(session, partner_id)
    partner.secret = new_secret()
    session.flush()
    return partner


def active_partner(session: Session, code: str) -> Partner | None:
    """The active partner with exactly this code (MySQL's collation would also match other cases)."""
    partner = session.scalars(select(Partner).where(Partner.code == code)).one_or_none()
    if partner is None or partner.code != code or not partner.is_active:
        return None
    return partner


def activity_points(partner: Partner, amount: int) -> int:
    """Points the activity earns before the daily cap: per full unit, nothing for a partial one."""
    return amount // partner.activity_unit * partner.points_per_unit


def credit_activity(
    session: Session,
    partner: Partner,
    report: ActivityReport,
    *,
    vault: PhoneVault,
    at: MallTime,
    settings: PointsSettings,
) -> CreditResult:
    """Credit a partner's event once per (partner, event id), within the partner's daily cap per member.

    A repeat with the same member, activity and amount returns the first result; a different
    one raises EventConflict. An event worth no points (below one unit, cap reached) is still
    recorded, without a ledger entry. Raises RetryableConflict when a concurrent request
    records the same event first: run again, it returns that one.
    """
    member_id = _member_id(session, report, vault)
    if existing := _credit_of(session, partner.id, report.event_id):
        return _repeat(partner, existing, report, member_id)

    # Serialises this member's credits, so that the cap below cannot be read stale.
    points.lock_account(session, member_id)
    earned = activity_points(partner, report.amount)
    granted = earned
    if partner.daily_cap_points:
        already = _locked_total_today(session, partner.id, member_id, at)
        granted = max(min(earned, partner.daily_cap_points - already), 0)
    credit = PartnerActivityCredit(
        partner_id=partner.id,
        event_id=report.event_id,
        member_id=member_id,
        activity=report.activity,
        amount=report.amount,
        points=granted,
        occurred_at=report.occurred_at,
        created_at=at.now,
    )
    session.add(credit)
    try:
        session.flush()
    except IntegrityError as exc:
        raise RetryableConflict() from exc
    if granted:
        points.earn(
            session,
            points.Posting(
                member_id=member_id,
                points=granted,
                kind=PointsEntryKind.PARTNER,
                idempotency_key=f"partner:{partner.code}:{report.event_id}",
                description=f"{partner.name} {activity_name(report.activity)} {report.amount}",
                reference=f"partner_credit:{credit.id}",
            ),
            at=at,
            settings=settings,
        )
    return CreditResult(credit, capped=granted < earned, created=True)


def activity_name(activity: str) -> str:
    return _ACTIVITY_NAMES.get(activity, activity)


def _member_id(session: Session, report: ActivityReport, vault: PhoneVault) -> int:
    # A merged member (by id or phone) stands for the member it was merged into.
    if report.member_id is not None:
        found = session.scalar(
            select(func.coalesce(Member.merged_into_member_id, Member.id)).where(
                Member.id == report.member_id
            )
        )
    else:
        found = members.member_id_by_phone(session, vault, report.phone or "")
    if found is None:
        raise MemberNotFound()
    return found


def _credit_of(session: Session, partner_id: int, event_id: str) -> PartnerActivityCredit | None:
    return session.scalars(
        select(PartnerActivityCredit).where(
            PartnerActivityCredit.partner_id == partner_id, PartnerActivityCredit.event_id == event_id
        )
    ).one_or_none()


def _repeat(
    partner: Partner, existing: PartnerActivityCredit, report: ActivityReport, member_id: int
) -> CreditResult:
    # An event id differing only in case or trailing spaces collides under MySQL's collation:
    # it is another event, which cannot be stored, so it is a conflict rather than a repeat.
    same = (existing.event_id, existing.member_id, existing.activity, existing.amount) == (
        report.event_id,
        member_id,
        report.activity,
        report.amount,
    )
    if not same:
        raise EventConflict()
    # The cap is not stored; judged by today's rules, which is right unless they changed since.
    return CreditResult(
        existing, capped=existing.points < activity_points(partner, existing.amount), created=False
    )


def _locked_total_today(session: Session, partner_id: int, member_id: int, at: MallTime) -> int:
    """Points this partner credited the member on this business day; a locking read, so fresh."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(PartnerActivityCredit.points), 0))
            .where(
                PartnerActivityCredit.partner_id == partner_id,
                PartnerActivityCredit.member_id == member_id,
                PartnerActivityCredit.created_at >= at.start_of(at.today),
                PartnerActivityCredit.created_at < at.start_of(at.today + timedelta(days=1)),
            )
            .with_for_update()
        )
        or 0
    )


def _partner_for_update(session: Session, partner_id: int) -> Partner:
    partner = session.get(Partner, partner_id, with_for_update=True)
    if partner is None:
        raise PartnerNotFound()
    return partner
