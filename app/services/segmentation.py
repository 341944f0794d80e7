"""The nightly facts about members: purchase statistics, RFM scores and segments, lifecycle stages.

Everything here is set-based SQL (INSERT … SELECT, UPDATE … FROM a derived table) over a range of
member ids at a time, never a Python loop per member, and reads the same on SQLite and MariaDB.
Each batch is its own transaction and every step can run again with the same result, so an
interrupted refresh is simply run again.

Time windows are business days of the mall, today included: "30 days" is from the start of business
day today − 29 to the end of today. Purchases fully refunded do not count; spend is net of refunds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, case, extract, func, literal, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import RetryableConflict
from app.mall_time import MallTime
from app.models import Member, Purchase, Store
from app.models.tag import LifecycleStage, LifecycleTransition, MemberStats, RfmSegment, SegmentationSettings

STAT_WINDOWS = (30, 90, 180, 365)


@dataclass(frozen=True)
class Thresholds:
    """The settings in force, and the instants they mean on business day `as_of`."""

    as_of: date
    settings: SegmentationSettings
    at: MallTime

    def window_start(self, days: int) -> datetime:
        """Start of the window of the last `days` business days, `as_of` included."""
        return self.at.start_of(self.as_of - timedelta(days=days - 1))

    @property
    def end(self) -> datetime:
        """End of business day `as_of`: later purchases are not counted."""
        return self.at.start_of(self.as_of + timedelta(days=1))

    def days_since_at_least(self, days: int) -> datetime:
        """An instant at least `days` business days before `as_of` is earlier than this."""
        return self.at.start_of(self.as_of - timedelta(days=days - 1))


def settings_of(session: Session) -> SegmentationSettings:
    return session.get(SegmentationSettings, 1) or SegmentationSettings.with_defaults()


def thresholds(session: Session, at: MallTime, as_of: date | None = None) -> Thresholds:
    return Thresholds(as_of=as_of or at.today, settings=settings_of(session), at=at)


def member_id_batches(session: Session, batch_size: int) -> list[tuple[int, int]]:
    """Half-open ranges [low, high) of member ids, each holding at most `batch_size` ids."""
    low, high = session.execute(select(func.min(Member.id), func.max(Member.id))).one()
    if low is None:
        return []
    return [(start, min(start + batch_size, high + 1)) for start in range(low, high + 1, batch_size)]


# --- step 1: purchase statistics --------------------------------------------------------------------


def refresh_stats(session: Session, low: int, high: int, limits: Thresholds) -> int:
    """Recompute the statistics of members with ids in [low, high). Returns the rows written.

    Lifecycle and RFM columns are left as they are (their own steps compare against them)."""
    dialect = session.get_bind().dialect.name
    categories = list(session.scalars(select(Store.category).distinct().order_by(Store.category)))
    select_stats = _stats_select(
        low, high, limits, categories, greatest=func.max if dialect == "sqlite" else func.greatest
    )
    columns = list(select_stats.selected_columns.keys())
    updated = [name for name in columns if name != "member_id"]
    table = MemberStats.__table__
    if dialect == "sqlite":
        insert = sqlite.insert(table).from_select(columns, select_stats)
        statement: Any = insert.on_conflict_do_update(
            index_elements=["member_id"], set_={name: insert.excluded[name] for name in updated}
        )
    else:
        insert = mysql.insert(table).from_select(columns, select_stats)
        statement = insert.on_duplicate_key_update({name: insert.inserted[name] for name in updated})
    return session.execute(statement).rowcount  # type: ignore[attr-defined]


def _stats_select(
    low: int, high: int, limits: Thresholds, categories: list[str], *, greatest: Any
) -> Select[Any]:
    """One pass over the range's purchases, in member order (the covering index
    ix_purchases_member_cover): counts and sums per window, and net spend per store category over
    365 days, from which the favourite category is the first by name among the largest."""
    purchase = Purchase.__table__
    counted = purchase.c.amount_fen > purchase.c.refunded_fen
    net = purchase.c.amount_fen - purchase.c.refunded_fen

    def count_since(since: datetime) -> Any:
        return func.sum(case((and_(counted, purchase.c.purchased_at >= since), 1), else_=0))

    def spend_since(since: datetime) -> Any:
        return func.sum(case((purchase.c.purchased_at >= since, net), else_=0))

    rfm_since, year_since = limits.window_start(limits.settings.rfm_window_days), limits.window_start(365)
    category_spend = [
        func.sum(
            case(
                (and_(Store.category == category, counted, purchase.c.purchased_at >= year_since), net),
                else_=0,
            )
        ).label(f"category_{index}")
        for index, category in enumerate(categories)
    ]
    aggregates = [
        func.min(case((counted, purchase.c.purchased_at))).label("first_purchase_at"),
        func.max(case((counted, purchase.c.purchased_at))).label("last_purchase_at"),
        *(count_since(limits.window_start(days)).label(f"purchases_{days}d") for days in STAT_WINDOWS),
        *(spend_since(limits.window_start(days)).label(f"spend_{days}d_fen") for days in STAT_WINDOWS),
        count_since(rfm_since).label("rfm_frequency"),
        spend_since(rfm_since).label("rfm_monetary_fen"),
        *category_spend,
    ]
    per_member = (
        select(purchase.c.member_id, *aggregates)
        .join(Store, Store.id == purchase.c.store_id)
        .where(
            purchase.c.member_id >= low,
            purchase.c.member_id < high,
            purchase.c.purchased_at < limits.end,
        )
        .group_by(purchase.c.member_id)
        # Purchases first, through the member-id range: MariaDB would otherwise start from the
        # small stores table and read every purchase of every store.
        .prefix_with("STRAIGHT_JOIN", dialect="mysql")
        .subquery("per_member")
    )

    def zero_if_none(name: str) -> Any:
        return func.coalesce(per_member.c[name], 0).label(name)

    purchases_365d = func.coalesce(per_member.c.purchases_365d, 0)
    return (
        select(
            Member.id.label("member_id"),
            literal(limits.as_of).label("as_of"),
            per_member.c.first_purchase_at,
            per_member.c.last_purchase_at,
            *(zero_if_none(f"purchases_{days}d") for days in STAT_WINDOWS),
            *(zero_if_none(f"spend_{days}d_fen") for days in STAT_WINDOWS),
            case(
                (purchases_365d > 0, func.coalesce(per_member.c.spend_365d_fen, 0) // purchases_365d), else_=0
            ).label("avg_ticket_365d_fen"),
            _favourite(per_member, categories, greatest).label("favourite_category"),
            (extract("month", Member.birthday) * 100 + extract("day", Member.birthday)).label(
                "birthday_mmdd"
            ),
            zero_if_none("rfm_frequency"),
            zero_if_none("rfm_monetary_fen"),
        )
        .select_from(Member)
        .outerjoin(per_member, per_member.c.member_id == Member.id)
        .where(Member.id >= low, Member.id < high)
    )


def _favourite(per_member: Any, categories: list[str], greatest: Any) -> Any:
    """The category with the largest spend (ties: the first by name); none without any spend."""
    if not categories:
        return literal(None, String)
    spends = [per_member.c[f"category_{index}"] for index in range(len(categories))]
    top = greatest(*spends) if len(spends) > 1 else spends[0]
    return case(
        (func.coalesce(top, 0) <= 0, literal(None, String)),
        *((spend == top, literal(category)) for spend, category in zip(spends, categories, strict=True)),
    )


# --- step 2: RFM ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RfmAverages:
    """Sums of the scores and how many members were scored: "above average" is compared in integers."""

    scored: int
    r_sum: int
    f_sum: int
    m_sum: int


def score_rfm(session: Session) -> RfmAverages:
    """Score R, F and M 1–5 by quintile over the members who bought in the RFM window.

    A member's score is ⌊(rank − 1) × 5 / n⌋ + 1, where rank is the RANK() of their value among the n
    scored members (ascending: the oldest last purchase, the fewest purchases and the least spend rank
    first). Equal values share a rank, so ties always get the same score. Others get no score."""
    stats = MemberStats.__table__
    scored = session.scalar(select(func.count()).where(stats.c.rfm_frequency > 0)) or 0
    session.execute(
        update(MemberStats)
        .where(MemberStats.rfm_frequency == 0, MemberStats.rfm_r.is_not(None))
        .values(rfm_r=None, rfm_f=None, rfm_m=None)
    )
    if scored:
        ranked = (
            select(
                stats.c.member_id,
                func.rank().over(order_by=stats.c.last_purchase_at).label("r_rank"),
                func.rank().over(order_by=stats.c.rfm_frequency).label("f_rank"),
                func.rank().over(order_by=stats.c.rfm_monetary_fen).label("m_rank"),
            )
            .where(stats.c.rfm_frequency > 0)
            .subquery("ranked")
        )

        def score(rank: Any) -> Any:
            return (rank - 1) * 5 // scored + 1

        session.execute(
            update(MemberStats)
            .where(MemberStats.member_id == ranked.c.member_id)
            .values(rfm_r=score(ranked.c.r_rank), rfm_f=score(ranked.c.f_rank), rfm_m=score(ranked.c.m_rank))
        )
    sums = session.execute(
        select(
            func.coalesce(func.sum(MemberStats.rfm_r), 0),
            func.coalesce(func.sum(MemberStats.rfm_f), 0),
            func.coalesce(func.sum(MemberStats.rfm_m), 0),
        ).where(MemberStats.rfm_frequency > 0)
    ).one()
    return RfmAverages(scored, int(sums[0]), int(sums[1]), int(sums[2]))


def segment_expression(averages: RfmAverages) -> Any:
    """The segment of a scored member: each score above the average (score × n > sum) is "high"."""
    if not averages.scored:
        return literal(RfmSegment.NO_PURCHASE.value)
    n = averages.scored
    r_high = MemberStats.rfm_r * n > averages.r_sum
    f_high = MemberStats.rfm_f * n > averages.f_sum
    m_high = MemberStats.rfm_m * n > averages.m_sum
    segment_of = {
        (True, True, True): RfmSegment.IMPORTANT_VALUE,
        (True, False, True): RfmSegment.IMPORTANT_DEVELOP,
        (False, True, True): RfmSegment.IMPORTANT_KEEP,
        (False, False, True): RfmSegment.IMPORTANT_RETAIN,
        (True, True, False): RfmSegment.GENERAL_VALUE,
        (True, False, False): RfmSegment.GENERAL_DEVELOP,
        (False, True, False): RfmSegment.GENERAL_KEEP,
        (False, False, False): RfmSegment.GENERAL_RETAIN,
    }
    whens = [(MemberStats.rfm_r.is_(None), literal(RfmSegment.NO_PURCHASE.value))]
    for (r, f, m), segment in segment_of.items():
        whens.append(
            (
                and_(r_high if r else ~r_high, f_high if f else ~f_high, m_high if m else ~m_high),
                literal(segment.value),
            )
        )
    return case(*whens)


def assign_segments(session: Session, low: int, high: int, averages: RfmAverages) -> int:
    segment = segment_expression(averages)
    return session.execute(
        update(MemberStats)
        .where(
            MemberStats.member_id >= low,
            MemberStats.member_id < high,
            func.coalesce(MemberStats.rfm_segment, "") != segment,
        )
        .values(rfm_segment=segment)
    ).rowcount  # type: ignore[attr-defined]


# --- step 3: lifecycle ------------------------------------------------------------------------------


def stage_expression(limits: Thresholds) -> Any:
    """new: joined within the last `new_member_days` days; otherwise by the days since the last
    purchase (or since joining, for a member who never bought): churned from `churned_after_days`,
    dormant from `dormant_after_days`, active below."""
    settings = limits.settings
    reference = func.coalesce(MemberStats.last_purchase_at, Member.joined_at)
    return case(
        (
            Member.joined_at >= limits.at.start_of(limits.as_of - timedelta(days=settings.new_member_days)),
            literal(LifecycleStage.NEW.value),
        ),
        (
            reference < limits.days_since_at_least(settings.churned_after_days),
            literal(LifecycleStage.CHURNED.value),
        ),
        (
            reference < limits.days_since_at_least(settings.dormant_after_days),
            literal(LifecycleStage.DORMANT.value),
        ),
        else_=literal(LifecycleStage.ACTIVE.value),
    )


def classify_lifecycle(session: Session, low: int, high: int, limits: Thresholds) -> int:
    """Move members in [low, high) to their stage as of `as_of`; record each move from a known stage.
    Returns the number of transitions recorded. Run after `refresh_stats` for the same range."""
    stage = stage_expression(limits)
    in_batch = and_(
        MemberStats.member_id >= low,
        MemberStats.member_id < high,
        MemberStats.member_id == Member.id,
    )
    moves = select(
        MemberStats.member_id,
        MemberStats.lifecycle_stage,
        stage.label("to_stage"),
        literal(limits.as_of).label("business_date"),
    ).where(in_batch, MemberStats.lifecycle_stage.is_not(None), MemberStats.lifecycle_stage != stage)
    table = LifecycleTransition.__table__
    recorded = session.execute(
        table.insert().from_select(["member_id", "from_stage", "to_stage", "business_date"], moves)
    ).rowcount  # type: ignore[attr-defined]
    session.execute(
        update(MemberStats)
        .where(in_batch, func.coalesce(MemberStats.lifecycle_stage, "") != stage)
        .values(lifecycle_stage=stage, lifecycle_since=limits.as_of)
    )
    return recorded


def save_settings(
    session: Session, values: dict[str, int], *, operator_id: int | None
) -> SegmentationSettings:
    """Replace the settings (they apply from the next refresh)."""
    settings = session.get(SegmentationSettings, 1, with_for_update=True)
    if settings is None:
        settings = SegmentationSettings.with_defaults()
        session.add(settings)
    for name, value in values.items():
        setattr(settings, name, value)
    settings.updated_by_operator_id = operator_id
    try:
        session.flush()
    except IntegrityError as exc:  # another operator created the row at the same moment
        raise RetryableConflict() from exc
    return settings
