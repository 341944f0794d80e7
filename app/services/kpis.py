"""Daily KPI snapshots: computed from purchases, members, points and coupons for any business day
(so a past day can be recomputed), by store and for the whole mall, with a few aggregate queries.

The rates operators are judged on (DOMAIN.md), derived from the stored counts when read:
- activation rate: members who bought in the last 30 days / members;
- churn rate: members who bought in the 30 days before those but not in the last 30 / the former;
- repurchase rate: members with ≥ 2 purchases in 90 days / members with ≥ 1;
- member share of sales: member sales / all sales of the day (non-members' included);
- average ticket: member sales / member purchases of the day.
Purchases fully refunded do not count; amounts are net of refunds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from app.db import in_memory_group_by
from app.mall_time import MallTime
from app.models import (
    Coupon,
    CouponRedemption,
    Member,
    PointsEntry,
    PointsEntryKind,
    Purchase,
    QrScene,
    Store,
    Tier,
)
from app.models.kpi import MALL_WIDE, KpiDaily
from app.models.tag import MemberStats, RfmSegment
from app.services.tags import RFM_SEGMENT_NAMES

COUNT_COLUMNS = (
    "members_total",
    "new_members",
    "active_30d",
    "active_90d",
    "previous_active_30d",
    "churned_30d",
    "repeat_buyers_90d",
    "member_purchases",
    "member_sales_fen",
    "non_member_purchases",
    "non_member_sales_fen",
    "points_issued",
    "points_spent",
    "points_expired",
    "coupons_issued",
    "coupons_used",
)

# The 90-day tallies per (store, member) are ~2.2M groups for a mall of a million members: held in
# memory they take 4 s on MariaDB, spilled to disk 25 s.
ACTIVITY_GROUP_BY_MB = 256

# Per store and for the mall (key MALL_WIDE): metric → value.
Counts = dict[int, dict[str, int]]


@dataclass(frozen=True)
class Day:
    """Business day `day` and the instants bounding the windows that end with it."""

    day: date
    at: MallTime

    def start(self, days_back: int = 0) -> datetime:
        return self.at.start_of(self.day - timedelta(days=days_back))

    @property
    def end(self) -> datetime:
        return self.at.start_of(self.day + timedelta(days=1))


def compute_day(session: Session, day: date, at: MallTime) -> int:
    """(Re)compute the snapshots of business day `day`. Returns the rows written (mall + stores).

    Distributions are taken only when `day` is today (they describe the present); recomputing a
    past day keeps the ones stored then."""
    window = Day(day, at)
    counts: Counts = defaultdict(lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    for metric, per_store in _all_metrics(session, window).items():
        for store_id, value in per_store.items():
            counts[store_id][metric] = int(value or 0)
    counts[MALL_WIDE]  # always a mall-wide row, even on a day without anything
    store_ids = set(session.scalars(select(Store.id)))
    kept = {
        row.store_id: row
        for row in session.execute(
            select(KpiDaily.store_id, KpiDaily.tier_distribution, KpiDaily.segment_distribution).where(
                KpiDaily.business_date == day
            )
        )
    }
    distributions: dict[str, Any] = {}
    if day == at.today:
        distributions = {
            "tier_distribution": _tier_distribution(session),
            "segment_distribution": _segment_distribution(session),
        }
    elif MALL_WIDE in kept:
        distributions = {
            "tier_distribution": kept[MALL_WIDE].tier_distribution,
            "segment_distribution": kept[MALL_WIDE].segment_distribution,
        }
    rows = []
    for store_id in sorted(store_ids | {MALL_WIDE}):
        extra = distributions if store_id == MALL_WIDE else {}
        rows.append(
            {"business_date": day, "store_id": store_id, "computed_at": at.now, **counts[store_id], **extra}
        )
    session.execute(delete(KpiDaily).where(KpiDaily.business_date == day))
    session.execute(insert(KpiDaily), rows)
    return len(rows)


def _all_metrics(session: Session, window: Day) -> dict[str, dict[int, int]]:
    metrics: dict[str, dict[int, int]] = {}
    metrics.update(_members(session, window))
    with in_memory_group_by(session, ACTIVITY_GROUP_BY_MB):
        metrics.update(_activity(session, window))
    metrics.update(_sales(session, window))
    metrics.update(_points(session, window))
    metrics.update(_coupons(session, window))
    return metrics


def _by_store_and_mall(session: Session, per_store: Select[Any], mall: Select[Any]) -> dict[int, int]:
    """Run a (store_id, value) query and its mall-wide (value) twin."""
    values = {store_id: value for store_id, value in session.execute(per_store) if store_id is not None}
    values[MALL_WIDE] = session.scalar(mall) or 0
    return values


def _members(session: Session, window: Day) -> dict[str, dict[int, int]]:
    """Members by the store of their sign-up scene, and in the whole mall (with those who signed up
    without a scene)."""
    joined_today = func.sum(case((Member.joined_at >= window.start(), 1), else_=0))
    counted = (func.count(), joined_today)
    joined_by_then = Member.joined_at < window.end
    metrics: dict[str, dict[int, int]] = {"members_total": {}, "new_members": {}}
    per_store = session.execute(
        select(QrScene.store_id, *counted)
        .select_from(Member)
        .join(QrScene, QrScene.id == Member.signup_scene_id)
        .where(joined_by_then, QrScene.store_id.is_not(None))
        .group_by(QrScene.store_id)
    )
    mall = session.execute(select(literal(MALL_WIDE), *counted).where(joined_by_then)).one()
    for store_id, total, new in [*per_store, mall]:
        metrics["members_total"][store_id] = int(total or 0)
        metrics["new_members"][store_id] = int(new or 0)
    return metrics


def _counted(purchase: Any) -> Any:
    return purchase.amount_fen > purchase.refunded_fen


def _activity(session: Session, window: Day) -> dict[str, dict[int, int]]:
    """Buyers of the last 30 and 90 days, of the 30 days before the last 30, churned and repeat buyers:
    one pass over the 90 days of purchases per (store, member) and one per member (the mall-wide
    figures count a member once, however many stores they bought at)."""
    last_30_start, previous_30_start = window.start(29), window.start(59)
    in_last_30 = Purchase.purchased_at >= last_30_start
    in_previous_30 = and_(Purchase.purchased_at >= previous_30_start, Purchase.purchased_at < last_30_start)

    def per_buyer(*keys: Any) -> Any:
        return (
            select(
                *keys,
                func.sum(case((in_last_30, 1), else_=0)).label("last_30"),
                func.sum(case((in_previous_30, 1), else_=0)).label("previous_30"),
                func.count().label("last_90"),
            )
            .where(
                Purchase.member_id.is_not(None),
                Purchase.purchased_at >= window.start(89),
                Purchase.purchased_at < window.end,
                _counted(Purchase),
            )
            .group_by(*keys)
            .subquery("per_buyer")
        )

    def tallies(buyers: Any) -> list[Any]:
        def members_where(condition: Any) -> Any:
            return func.sum(case((condition, 1), else_=0))

        return [
            members_where(buyers.c.last_30 > 0).label("active_30d"),
            func.count().label("active_90d"),
            members_where(buyers.c.previous_30 > 0).label("previous_active_30d"),
            members_where(and_(buyers.c.previous_30 > 0, buyers.c.last_30 == 0)).label("churned_30d"),
            members_where(buyers.c.last_90 >= 2).label("repeat_buyers_90d"),
        ]

    metrics: dict[str, dict[int, int]] = defaultdict(dict)
    per_store = per_buyer(Purchase.store_id, Purchase.member_id)
    by_store = select(per_store.c.store_id, *tallies(per_store)).group_by(per_store.c.store_id)
    for row in session.execute(by_store):
        for name, value in row._mapping.items():
            if name != "store_id":
                metrics[name][row.store_id] = int(value or 0)
    mall = per_buyer(Purchase.member_id)
    for name, value in session.execute(select(*tallies(mall))).one()._mapping.items():
        metrics[name][MALL_WIDE] = int(value or 0)
    return metrics


def _sales(session: Session, window: Day) -> dict[str, dict[int, int]]:
    rows = session.execute(
        select(
            Purchase.store_id,
            Purchase.member_id.is_not(None).label("member"),
            func.count(),
            func.sum(Purchase.amount_fen - Purchase.refunded_fen),
        )
        .where(
            Purchase.purchased_at >= window.start(), Purchase.purchased_at < window.end, _counted(Purchase)
        )
        .group_by(Purchase.store_id, Purchase.member_id.is_not(None))
    )
    metrics: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for store_id, is_member, purchases, sales in rows:
        prefix = "member" if is_member else "non_member"
        for key in (store_id, MALL_WIDE):
            metrics[f"{prefix}_purchases"][key] += purchases
            metrics[f"{prefix}_sales_fen"][key] += int(sales or 0)
    return metrics


def _points(session: Session, window: Day) -> dict[str, dict[int, int]]:
    (day,) = points_flows(session, window.day, window.day)
    return {
        "points_issued": {MALL_WIDE: day.issued},
        "points_spent": {MALL_WIDE: day.spent},
        "points_expired": {MALL_WIDE: day.expired},
    }


def _coupons(session: Session, window: Day) -> dict[str, dict[int, int]]:
    issued = (
        session.scalar(select(func.count()).select_from(Coupon).where(Coupon.issued_on == window.day)) or 0
    )
    in_day = and_(
        CouponRedemption.redeemed_at >= window.start(),
        CouponRedemption.redeemed_at < window.end,
        CouponRedemption.undone_at.is_(None),
    )
    used = _by_store_and_mall(
        session,
        select(CouponRedemption.store_id, func.count()).where(in_day).group_by(CouponRedemption.store_id),
        select(func.count()).select_from(CouponRedemption).where(in_day),
    )
    return {"coupons_issued": {MALL_WIDE: issued}, "coupons_used": used}


def _tier_distribution(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Tier.code, func.count(Member.id))
        .outerjoin(Member, Member.tier_id == Tier.id)
        .group_by(Tier.code)
    )
    return {code: count for code, count in rows}


def _segment_distribution(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(MemberStats.rfm_segment, func.count())
        .where(MemberStats.rfm_segment.is_not(None))
        .group_by(MemberStats.rfm_segment)
    )
    return {segment.value: count for segment, count in rows}


# --- reading ----------------------------------------------------------------------------------------


def rate(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(numerator, denominator) if denominator else None


def trend(session: Session, first: date, last: date, store_id: int) -> list[KpiDaily]:
    return list(
        session.scalars(
            select(KpiDaily)
            .where(
                KpiDaily.business_date >= first, KpiDaily.business_date <= last, KpiDaily.store_id == store_id
            )
            .order_by(KpiDaily.business_date)
        )
    )


@dataclass(frozen=True)
class Summary:
    """The dashboard's cards for a range of days: levels as of its last day, flows over all of it."""

    last_day: date | None
    members_total: int
    new_members: int
    activation_rate: Fraction | None
    churn_rate: Fraction | None
    repurchase_rate: Fraction | None
    member_share_of_sales: Fraction | None


def summarize(days: list[KpiDaily]) -> Summary:
    """`days` in date order, as `trend` returns them."""
    member_sales = sum(day.member_sales_fen for day in days)
    all_sales = member_sales + sum(day.non_member_sales_fen for day in days)
    if not days:
        return Summary(None, 0, 0, None, None, None, None)
    last = days[-1]
    return Summary(
        last_day=last.business_date,
        members_total=last.members_total,
        new_members=sum(day.new_members for day in days),
        activation_rate=rate(last.active_30d, last.members_total),
        churn_rate=rate(last.churned_30d, last.previous_active_30d),
        repurchase_rate=rate(last.repeat_buyers_90d, last.active_90d),
        member_share_of_sales=rate(member_sales, all_sales),
    )


@dataclass(frozen=True)
class PointsFlow:
    """Points that moved on one business day, all positive numbers."""

    business_date: date
    issued: int  # earned: purchases, check-ins, sharing, referrals, welcome, birthday, partners
    spent: int  # redeemed for rewards
    expired: int


_NOT_ISSUED = (PointsEntryKind.REFUND, PointsEntryKind.ADJUSTMENT, PointsEntryKind.OPENING)


def points_flows(session: Session, first: date, last: date) -> list[PointsFlow]:
    """Points issued, spent and expired on each business day from `first` to `last` (every day, zeros
    included), read from the ledger with one query grouped by day and kind, so today counts too.

    The whole mall's: a ledger entry does not record a store. Refunds and operators' adjustments are
    corrections, not issuing or spending, and are left out (a refund's clawback is not "spent"); so are
    imported opening balances, issued by the mall's previous system."""
    totals = {first + timedelta(days=n): [0, 0, 0] for n in range((last - first).days + 1)}
    rows = session.execute(
        select(PointsEntry.business_date, PointsEntry.kind, func.sum(PointsEntry.delta))
        .where(PointsEntry.business_date >= first, PointsEntry.business_date <= last)
        .group_by(PointsEntry.business_date, PointsEntry.kind)
    )
    for day, kind, total in rows:
        total = int(total or 0)
        issued_spent_expired = totals[day]
        if kind is PointsEntryKind.EXPIRY:
            issued_spent_expired[2] -= total
        elif kind is PointsEntryKind.REDEMPTION:
            issued_spent_expired[1] -= total
        elif total > 0 and kind not in _NOT_ISSUED:
            issued_spent_expired[0] += total
    return [PointsFlow(day, *figures) for day, figures in totals.items()]


@dataclass(frozen=True)
class CouponFlow:
    business_date: date
    issued: int  # coupons members received that day, in the whole mall (a coupon has no store)
    used: int  # redeemed that day (less the undone), at `store_id` or in the whole mall


def coupon_flows(session: Session, first: date, last: date, store_id: int) -> list[CouponFlow]:
    """Coupons issued and used per day from the daily snapshots (days not yet computed are absent):
    issued is always the whole mall's, used is the chosen store's (or the mall's for MALL_WIDE)."""
    rows = session.execute(
        select(KpiDaily.business_date, KpiDaily.store_id, KpiDaily.coupons_issued, KpiDaily.coupons_used)
        .where(
            KpiDaily.business_date >= first,
            KpiDaily.business_date <= last,
            KpiDaily.store_id.in_({MALL_WIDE, store_id}),
        )
        .order_by(KpiDaily.business_date)
    )
    issued: dict[date, int] = {}
    used: dict[date, int] = {}
    for day, row_store_id, coupons_issued, coupons_used in rows:
        if row_store_id == MALL_WIDE:
            issued[day] = coupons_issued
        if row_store_id == store_id:
            used[day] = coupons_used
    return [CouponFlow(day, issued.get(day, 0), used[day]) for day in sorted(used)]


@dataclass(frozen=True)
class Distributions:
    """Members by tier (in rank order) and by RFM segment, as (Chinese name, count), on `as_of`."""

    as_of: date
    tiers: list[tuple[str, int]]
    segments: list[tuple[str, int]]


def latest_distributions(session: Session, first: date, last: date) -> Distributions | None:
    """The most recent tier and segment distributions taken between `first` and `last`. They are
    the whole mall's: taken once a day, on the mall-wide snapshot of the day they were computed."""
    taken = session.execute(
        select(KpiDaily.business_date, KpiDaily.tier_distribution, KpiDaily.segment_distribution)
        .where(
            KpiDaily.store_id == MALL_WIDE,
            KpiDaily.business_date >= first,
            KpiDaily.business_date <= last,
            KpiDaily.tier_distribution.is_not(None),
        )
        .order_by(KpiDaily.business_date.desc())
    )
    # JSON null passes IS NOT NULL on some databases; the first real distribution wins.
    latest = next((row for row in taken if row.tier_distribution), None)
    if latest is None:
        return None
    tier_names = dict(session.execute(select(Tier.code, Tier.name).order_by(Tier.rank)).all())
    by_tier = latest.tier_distribution
    tiers = [(name, int(by_tier.get(code, 0))) for code, name in tier_names.items()]
    tiers += [(code, int(count)) for code, count in by_tier.items() if code not in tier_names]
    by_segment = latest.segment_distribution or {}
    segments = [
        (RFM_SEGMENT_NAMES[segment], int(by_segment[segment.value]))
        for segment in RfmSegment
        if segment.value in by_segment
    ]
    return Distributions(latest.business_date, tiers, segments)
