"""The nightly facts about members: purchase statistics, RFM scores and segments, lifecycle stages.

Everything here is set-based SQL (INSERT … SELECT, UPDATE … FROM a derived table) over a range of
member ids at a time, never a Python loop per member, and reads the same on SQLite and MariaDB.
Each batch is its own transaction and every step can run again with the same result, so an
interrupted refresh is simply run again.

Time windows are business days of the mall, today included: "30 days" is from the start of business
day today − 29 to the end of today. Purchases fully refunded do not count; spend is net of refunds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, and_, case, delete, exists, extract, func, literal, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session

from app.mall_time import MallTime
from app.models import Member, Purchase, PurchaseRefund, Store
from app.models.tag import (
    LifecycleStage,
    LifecycleTransition,
    MemberStats,
    MemberStatsQueue,
    RfmSegment,
    SegmentationSettings,
    StatsRefresh,
)
from app.services.singletons import replace_settings

STAT_WINDOWS = (30, 90, 180, 365)

# Whole-table UPDATEs: no ORM objects to keep in step (the ORM would first SELECT the ids it changes).
BULK = {"synchronize_session": False}


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

    @property
    def new_since(self) -> datetime:
        """Members who joined from this instant on are new."""
        return self.at.start_of(self.as_of - timedelta(days=self.settings.new_member_days))


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

# Ids are handed out before commit, so a purchase can commit after one with a higher id that a night's
# watermark already covered: the next night looks back this many ids below the watermark.
WATERMARK_MARGIN = 10_000


@dataclass(frozen=True)
class StatsPlan:
    """What tonight's statistics step recomputes: everyone (`previous` is None), or only the members
    whose figures can have changed since the refresh of business day `previous`."""

    previous: date | None
    previous_purchase_watermark: int
    previous_refund_watermark: int
    purchase_watermark: int
    refund_watermark: int
    settings_key: str

    @property
    def incremental(self) -> bool:
        return self.previous is not None


def plan_stats(session: Session, limits: Thresholds) -> StatsPlan:
    """Incremental when the last finished refresh is for this day or an earlier one, with the same
    settings; otherwise (the first night, new settings or store categories, catching up a day
    before the last refresh) everyone."""
    key = _settings_key(session, limits)
    last = session.scalars(
        select(StatsRefresh)
        .where(StatsRefresh.stats_finished_at.is_not(None))
        .order_by(StatsRefresh.business_date.desc())
        .limit(1)
    ).first()
    usable = last is not None and last.settings_key == key and last.business_date <= limits.as_of
    return StatsPlan(
        previous=last.business_date if usable and last else None,
        previous_purchase_watermark=last.purchase_watermark if last else 0,
        previous_refund_watermark=last.refund_watermark if last else 0,
        purchase_watermark=session.scalar(select(func.coalesce(func.max(Purchase.id), 0))) or 0,
        refund_watermark=session.scalar(select(func.coalesce(func.max(PurchaseRefund.id), 0))) or 0,
        settings_key=key,
    )


def _settings_key(session: Session, limits: Thresholds) -> str:
    """A fingerprint of everything every member's statistics depend on besides their own data."""
    settings = limits.settings
    stores = session.execute(select(Store.id, Store.category).order_by(Store.id)).all()
    facts = [
        limits.at.tz.key,
        *(str(getattr(settings, name)) for name in SegmentationSettings.DEFAULTS),
        *(f"{store_id}:{category}" for store_id, category in stores),
    ]
    return hashlib.sha256("|".join(facts).encode()).hexdigest()


def queue_changed_members(session: Session, plan: StatsPlan, limits: Thresholds) -> int:
    """Queue the members whose statistics or stage can differ from those of the `plan.previous`
    refresh: members without statistics, with purchases or refunds recorded since (above the
    watermarks), with purchases that entered or left one of the windows between the two days, whose
    stage can change with time alone (joined, or last bought, on a day that crossed a threshold), and
    whose birthday changed. Returns how many are queued."""
    assert plan.previous is not None
    before = replace(limits, as_of=plan.previous)
    queue = MemberStatsQueue.__table__
    members_of_purchases = Purchase.member_id.is_not(None)

    def enqueue(member_ids: Select[Any]) -> None:
        session.execute(
            queue.insert()
            .from_select(["member_id"], member_ids)
            .prefix_with("IGNORE", dialect="mysql")
            .prefix_with("OR IGNORE", dialect="sqlite")
        )

    enqueue(
        select(Member.id)
        .outerjoin(MemberStats, MemberStats.member_id == Member.id)
        .where(MemberStats.member_id.is_(None))
    )
    enqueue(
        select(Purchase.member_id)
        .distinct()
        .where(Purchase.id > plan.previous_purchase_watermark - WATERMARK_MARGIN, members_of_purchases)
    )
    enqueue(
        select(Purchase.member_id)
        .distinct()
        .join(PurchaseRefund, PurchaseRefund.purchase_id == Purchase.id)
        .where(PurchaseRefund.id > plan.previous_refund_watermark - WATERMARK_MARGIN, members_of_purchases)
    )
    window_days = sorted({*STAT_WINDOWS, limits.settings.rfm_window_days})
    moved = [(before.window_start(days), limits.window_start(days)) for days in window_days] + [
        (before.end, limits.end)
    ]  # left a window; happened after the previous day
    enqueue(
        select(Purchase.member_id)
        .distinct()
        .where(
            members_of_purchases,
            or_(*(and_(Purchase.purchased_at >= start, Purchase.purchased_at < end) for start, end in moved)),
        )
    )
    settings = limits.settings
    reference = func.coalesce(MemberStats.last_purchase_at, Member.joined_at)
    crossed = [
        (Member.joined_at, before.new_since, limits.new_since),
        *(
            (reference, before.window_start(days), limits.window_start(days))
            for days in (settings.dormant_after_days, settings.churned_after_days)
        ),
    ]
    enqueue(
        select(Member.id)
        .join(MemberStats, MemberStats.member_id == Member.id)
        .where(
            or_(
                *(and_(instant >= start, instant < end) for instant, start, end in crossed),
                MemberStats.birthday_mmdd.is_distinct_from(_birthday_mmdd()),
            )
        )
    )
    return session.scalar(select(func.count()).select_from(queue)) or 0


def finish_stats(session: Session, plan: StatsPlan, limits: Thresholds) -> None:
    """Record the refresh of `limits.as_of` (the next night starts from its watermarks) and empty
    the queue."""
    refresh = session.get(StatsRefresh, limits.as_of, with_for_update=True)
    if refresh is None:
        refresh = StatsRefresh(business_date=limits.as_of)
        session.add(refresh)
    refresh.purchase_watermark = plan.purchase_watermark
    refresh.refund_watermark = plan.refund_watermark
    refresh.settings_key = plan.settings_key
    refresh.stats_finished_at = limits.at.now
    refresh.tags_finished_at = None
    session.execute(delete(MemberStatsQueue))


def untagged_since(session: Session, as_of: date) -> date | None:
    """The first business day whose changes of segment or stage the system tags may not reflect:
    the day after the last refresh, up to `as_of`, whose tags step finished after its statistics and
    RFM (each of those clears the mark). None: no such refresh, look at everyone."""
    last = session.scalar(
        select(func.max(StatsRefresh.business_date)).where(
            StatsRefresh.business_date <= as_of, StatsRefresh.tags_finished_at.is_not(None)
        )
    )
    return last + timedelta(days=1) if last else None


def finish_tags(session: Session, at: MallTime) -> None:
    _mark_tags(session, at.today, at.now)


def _mark_tags(session: Session, day: date, finished_at: datetime | None) -> None:
    session.execute(
        update(StatsRefresh).where(StatsRefresh.business_date == day).values(tags_finished_at=finished_at)
    )


def refresh_stats(
    session: Session, low: int, high: int, limits: Thresholds, *, queued_only: bool = False
) -> StatsWritten:
    """Recompute the statistics and lifecycle stage of members with ids in [low, high), and record
    each member's move from one stage to another. RFM columns are left for `score_rfm`.

    One upsert writes each row once, and only a row whose values change: when the stage changes, it
    first keeps the stage it had (`previous_lifecycle_stage`) and then sets the new one and the day
    it entered it (MariaDB evaluates the assignments in order; SQLite reads old values throughout:
    the same result). A member's transition is recorded once a day, however often this runs.
    """
    dialect = session.get_bind().dialect.name
    categories = list(session.scalars(select(Store.category).distinct().order_by(Store.category)))
    greatest = func.max if dialect == "sqlite" else func.greatest
    select_stats = _stats_select(low, high, limits, categories, greatest=greatest, queued_only=queued_only)
    columns = list(select_stats.selected_columns.keys())
    table = MemberStats.__table__
    stage_columns = ("lifecycle_stage", "previous_lifecycle_stage", "lifecycle_since")
    plain = [name for name in columns if name != "member_id" and name not in stage_columns]
    if dialect == "sqlite":
        insert = sqlite.insert(table).from_select(columns, select_stats)
        new = insert.excluded
    else:
        insert = mysql.insert(table).from_select(columns, select_stats)
        new = insert.inserted
    old = table.c
    unchanged = func.coalesce(old.lifecycle_stage, "") == new.lifecycle_stage
    assignments = [
        *((name, new[name]) for name in plain),
        (
            "previous_lifecycle_stage",
            case((unchanged, old.previous_lifecycle_stage), else_=old.lifecycle_stage),
        ),
        ("lifecycle_since", case((unchanged, old.lifecycle_since), else_=new.lifecycle_since)),
        ("lifecycle_stage", new.lifecycle_stage),  # last: the assignments above read the old stage
    ]
    if dialect == "sqlite":
        statement: Any = insert.on_conflict_do_update(index_elements=["member_id"], set_=dict(assignments))
    else:
        statement = insert.on_duplicate_key_update(assignments)
    written = session.execute(statement).rowcount  # type: ignore[attr-defined]
    moves = select(
        MemberStats.member_id,
        MemberStats.previous_lifecycle_stage,
        MemberStats.lifecycle_stage,
        literal(limits.as_of).label("business_date"),
    ).where(
        MemberStats.member_id >= low,
        MemberStats.member_id < high,
        MemberStats.previous_lifecycle_stage.is_not(None),
        MemberStats.previous_lifecycle_stage != MemberStats.lifecycle_stage,
        MemberStats.lifecycle_since == limits.as_of,
        ~exists().where(
            LifecycleTransition.member_id == MemberStats.member_id,
            LifecycleTransition.business_date == limits.as_of,
        ),
    )
    transitions = session.execute(
        LifecycleTransition.__table__.insert().from_select(
            ["member_id", "from_stage", "to_stage", "business_date"], moves
        )
    ).rowcount  # type: ignore[attr-defined]
    return StatsWritten(written, transitions)


@dataclass(frozen=True)
class StatsWritten:
    rows: int
    transitions: int


def _stats_select(
    low: int, high: int, limits: Thresholds, categories: list[str], *, greatest: Any, queued_only: bool
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

    queued = select(MemberStatsQueue.member_id).where(
        MemberStatsQueue.member_id >= low, MemberStatsQueue.member_id < high
    )

    def members_in(member_id: Any) -> list[Any]:
        return [member_id.in_(queued)] if queued_only else []

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
            *members_in(purchase.c.member_id),
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
    stage = stage_expression(limits, per_member.c.last_purchase_at)
    return (
        select(
            Member.id.label("member_id"),
            per_member.c.first_purchase_at,
            per_member.c.last_purchase_at,
            *(zero_if_none(f"purchases_{days}d") for days in STAT_WINDOWS),
            *(zero_if_none(f"spend_{days}d_fen") for days in STAT_WINDOWS),
            case(
                (purchases_365d > 0, func.coalesce(per_member.c.spend_365d_fen, 0) // purchases_365d), else_=0
            ).label("avg_ticket_365d_fen"),
            _favourite(per_member, categories, greatest).label("favourite_category"),
            _birthday_mmdd().label("birthday_mmdd"),
            zero_if_none("rfm_frequency"),
            zero_if_none("rfm_monetary_fen"),
            stage.label("lifecycle_stage"),
            stage.label("previous_lifecycle_stage"),
            literal(limits.as_of).label("lifecycle_since"),
        )
        .select_from(Member)
        .outerjoin(per_member, per_member.c.member_id == Member.id)
        .where(Member.id >= low, Member.id < high, *members_in(Member.id))
    )


def _birthday_mmdd() -> Any:
    return extract("month", Member.birthday) * 100 + extract("day", Member.birthday)


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


def score_rfm(session: Session, as_of: date) -> RfmAverages:
    """Score R, F and M 1–5 by quintile over the members who bought in the RFM window, and place
    every member in a segment.

    A member's score is ⌊(rank − 1) × 5 / n⌋ + 1, where rank is the RANK() of their value among the n
    scored members (ascending: the oldest last purchase, the fewest purchases and the least spend rank
    first), so equal values always share a score. That score only steps up where a value exceeds a
    quintile boundary: with the values sorted x₀ ≤ … ≤ xₙ₋₁ and t = ⌈q·n/5⌉, a score is above q exactly
    when the value is greater than xₜ₋₁. So the four boundaries of each dimension are read first (one
    sort each) and every row is then scored by comparing its own values, in single-table UPDATEs: no
    join of a million ranked rows back onto the table. Members without a purchase in the window get
    no scores and the `no_purchase` segment. A member whose segment changes has `rfm_segment_since`
    set to `as_of` (the tags step refreshes the system tags of those).
    """
    _mark_tags(session, as_of, None)  # segments may change: the tags step must look again
    no_purchase = RfmSegment.NO_PURCHASE.value
    was_other = func.coalesce(MemberStats.rfm_segment, "") != no_purchase
    session.execute(
        update(MemberStats)
        .where(
            MemberStats.rfm_frequency == 0,
            or_(MemberStats.rfm_r.is_not(None), was_other),
        )
        # The day is kept only if the segment changes (assigned before the segment: MariaDB assigns
        # in order).
        .ordered_values(
            (MemberStats.rfm_segment_since, case((was_other, as_of), else_=MemberStats.rfm_segment_since)),
            (MemberStats.rfm_r, None),
            (MemberStats.rfm_f, None),
            (MemberStats.rfm_m, None),
            (MemberStats.rfm_segment, no_purchase),
        ),
        execution_options=BULK,
    )
    scored_rows = MemberStats.rfm_frequency > 0
    n = session.scalar(select(func.count()).where(scored_rows)) or 0
    if not n:
        return RfmAverages(0, 0, 0, 0)
    r, f, m = (
        _quintile_score(column, _quintile_bounds(session, column, n))
        for column in (MemberStats.last_purchase_at, MemberStats.rfm_frequency, MemberStats.rfm_monetary_fen)
    )
    session.execute(
        update(MemberStats).where(scored_rows).values(rfm_r=r, rfm_f=f, rfm_m=m), execution_options=BULK
    )
    sums = session.execute(
        select(func.sum(MemberStats.rfm_r), func.sum(MemberStats.rfm_f), func.sum(MemberStats.rfm_m)).where(
            scored_rows
        )
    ).one()
    averages = RfmAverages(n, int(sums[0]), int(sums[1]), int(sums[2]))
    segment = segment_expression(averages, MemberStats.rfm_r, MemberStats.rfm_f, MemberStats.rfm_m)
    session.execute(
        update(MemberStats)
        .where(scored_rows, func.coalesce(MemberStats.rfm_segment, "") != segment)
        .values(rfm_segment=segment, rfm_segment_since=as_of),
        execution_options=BULK,
    )
    return averages


def _quintile_bounds(session: Session, column: Any, n: int) -> list[Any]:
    """xₜ₋₁ for t = ⌈q·n/5⌉, q = 1…4, over the scored members' values of `column`."""
    positions = [-(-q * n // 5) for q in range(1, 5)]
    ordered = (
        select(column.label("value"), func.row_number().over(order_by=column).label("position"))
        .where(MemberStats.rfm_frequency > 0)
        .subquery("ordered")
    )
    rows = session.execute(
        select(ordered.c.position, ordered.c.value).where(ordered.c.position.in_(positions))
    )
    value_at = {position: value for position, value in rows}
    return [value_at[position] for position in positions]


def _quintile_score(column: Any, bounds: list[Any]) -> Any:
    return 1 + sum((case((column > bound, 1), else_=0) for bound in bounds), literal(0))


def segment_expression(averages: RfmAverages, r: Any, f: Any, m: Any) -> Any:
    """The segment of a scored member: each score above the average (score × n > sum) is "high"."""
    n = averages.scored
    r_high, f_high, m_high = r * n > averages.r_sum, f * n > averages.f_sum, m * n > averages.m_sum
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
    return case(
        *(
            (
                and_(
                    r_high if high_r else ~r_high,
                    f_high if high_f else ~f_high,
                    m_high if high_m else ~m_high,
                ),
                literal(segment.value),
            )
            for (high_r, high_f, high_m), segment in segment_of.items()
        )
    )


# --- lifecycle (written with the statistics) ----------------------------------------------------


def stage_expression(limits: Thresholds, last_purchase_at: Any) -> Any:
    """new: joined within the last `new_member_days` days; otherwise by the days since the last
    purchase (or since joining, for a member who never bought): churned from `churned_after_days`,
    dormant from `dormant_after_days`, active below."""
    settings = limits.settings
    reference = func.coalesce(last_purchase_at, Member.joined_at)
    return case(
        (Member.joined_at >= limits.new_since, literal(LifecycleStage.NEW.value)),
        # Before the window of the last N days: at least N days ago.
        (reference < limits.window_start(settings.churned_after_days), literal(LifecycleStage.CHURNED.value)),
        (reference < limits.window_start(settings.dormant_after_days), literal(LifecycleStage.DORMANT.value)),
        else_=literal(LifecycleStage.ACTIVE.value),
    )


def save_settings(
    session: Session, values: dict[str, int], *, operator_id: int | None
) -> SegmentationSettings:
    """Replace the settings (they apply from the next refresh)."""
    return replace_settings(session, SegmentationSettings, values, operator_id=operator_id)
