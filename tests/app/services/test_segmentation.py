"""The nightly facts on small hand-built malls with known answers: statistics, lifecycle stages and
their boundaries, RFM quintiles (ties included) and the eight segments, KPI formulas."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from app import nightly
from app.db import transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import (
    KpiDaily,
    LifecycleStage,
    LifecycleTransition,
    Member,
    MemberStats,
    MemberTag,
    MemberTagHistory,
    PurchaseRefund,
    QrScene,
    RfmSegment,
    SceneKind,
    Store,
    Tag,
)
from app.models.kpi import MALL_WIDE
from app.models.tag import MemberStatsQueue, StatsRefresh, TagKind, TagSource
from app.services import kpis, segmentation, tags
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-06-15, 12:00 in Shanghai.
AT = MallTime(datetime(2026, 6, 15, 12, tzinfo=SHANGHAI).astimezone(UTC), SHANGHAI)


def noon(days_ago: int, at: MallTime = AT) -> datetime:
    """Noon (mall time) `days_ago` business days before `at`."""
    return at.start_of(at.today - timedelta(days=days_ago)) + timedelta(hours=12)


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    fashion = factories.create_store(session, name="优衣库", category="服饰")
    return {"tier": tiers[0], "food": food, "fashion": fashion}


@pytest.fixture
def new_member(app: Flask, session: Session, mall: dict) -> Callable[..., Member]:
    with app.app_context():
        vault = extensions().phone_vault
    phones = iter(range(13000000000, 13099999999))

    def create(joined_days_ago: int = 400, **overrides: Any) -> Member:
        return factories.create_member(
            session, vault, str(next(phones)), mall["tier"], joined_at=noon(joined_days_ago), **overrides
        )

    return create


def buy(
    session: Session,
    store: Store,
    member: Member | None,
    days_ago: int,
    amount_fen: int = 10_000,
    **extra: Any,
) -> None:
    factories.create_purchase(session, store, amount_fen, noon(days_ago), member, **extra)


def refresh(app: Flask, at: MallTime = AT, steps: tuple[str, ...] = nightly.STEPS) -> nightly.RefreshReport:
    return nightly.refresh(app, at, batch_size=3, steps=steps)


def stats_of(session: Session, member: Member) -> MemberStats:
    return session.get_one(MemberStats, member.id, populate_existing=True)


def test_statistics_count_business_days_net_of_refunds(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    member = new_member(birthday=datetime(1990, 2, 3).date())
    buy(session, mall["food"], member, 0, 30_000)
    buy(session, mall["food"], member, 29, 10_000, refunded_fen=4_000)
    buy(session, mall["fashion"], member, 30, 50_000)
    buy(session, mall["fashion"], member, 100, 20_000, refunded_fen=20_000)  # fully refunded: not a visit
    buy(session, mall["fashion"], member, 364, 5_000)
    buy(session, mall["fashion"], member, 365, 99_000)  # outside every window

    refresh(app)

    stats = stats_of(session, member)
    assert (stats.purchases_30d, stats.spend_30d_fen) == (2, 36_000)
    assert (stats.purchases_90d, stats.spend_90d_fen) == (3, 86_000)
    assert (stats.purchases_365d, stats.spend_365d_fen) == (4, 91_000)
    assert stats.avg_ticket_365d_fen == 91_000 // 4
    assert stats.favourite_category == "服饰"
    assert stats.last_purchase_at == noon(0)
    assert stats.birthday_mmdd == 203


@pytest.mark.parametrize(
    ("joined_days_ago", "last_purchase_days_ago", "stage"),
    [
        (30, None, LifecycleStage.NEW),
        (31, None, LifecycleStage.ACTIVE),
        (10, 5, LifecycleStage.NEW),
        (400, 89, LifecycleStage.ACTIVE),
        (400, 90, LifecycleStage.DORMANT),
        (400, 179, LifecycleStage.DORMANT),
        (400, 180, LifecycleStage.CHURNED),
        (200, None, LifecycleStage.CHURNED),
    ],
)
def test_lifecycle_stage_boundaries(
    app: Flask,
    session: Session,
    mall: dict,
    new_member: Callable[..., Member],
    joined_days_ago: int,
    last_purchase_days_ago: int | None,
    stage: LifecycleStage,
) -> None:
    member = new_member(joined_days_ago)
    if last_purchase_days_ago is not None:
        buy(session, mall["food"], member, last_purchase_days_ago)

    refresh(app, steps=("stats",))

    assert stats_of(session, member).lifecycle_stage is stage


def test_transitions_are_recorded_once_and_a_rerun_changes_nothing(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    member = new_member()
    buy(session, mall["food"], member, 89)
    first = refresh(app)
    next_day = MallTime(AT.now + timedelta(days=1), SHANGHAI)

    moved = refresh(app, next_day)
    again = refresh(app, next_day)

    transitions = session.execute(
        select(
            LifecycleTransition.from_stage, LifecycleTransition.to_stage, LifecycleTransition.business_date
        )
    ).all()
    assert first.transitions == 0  # the first classification is not a move
    assert transitions == [(LifecycleStage.ACTIVE, LifecycleStage.DORMANT, next_day.today)]
    assert (moved.transitions, again.transitions) == (1, 0)
    assert (again.tags_added, again.tags_removed) == (0, 0)
    assert stats_of(session, member).lifecycle_since == next_day.today


def test_rfm_scores_are_quintiles_and_ties_share_a_score(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    members = [new_member() for _ in range(10)]
    for index, member in enumerate(members):
        # Older last purchase, fewer purchases and less spend for lower indexes; the first two tie on F and M.
        count = max(index, 1)
        for visit in range(count):
            buy(session, mall["food"], member, 200 - index * 10 - visit, amount_fen=1_000)
    idle = new_member()

    refresh(app, steps=("stats", "rfm"))

    scores = [(s.rfm_r, s.rfm_f, s.rfm_m) for s in (stats_of(session, member) for member in members)]
    assert [r for r, _, _ in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [f for _, f, _ in scores] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores[0][1:] == scores[1][1:]  # equal F and M: equal scores
    assert stats_of(session, idle).rfm_segment is RfmSegment.NO_PURCHASE
    assert stats_of(session, idle).rfm_r is None


def test_each_of_the_eight_segments_follows_the_scores_against_their_averages(
    app: Flask, session: Session, new_member: Callable[..., Member], mall: dict
) -> None:
    # Averages: R 3, F 3, M 3 over the members below; "high" is strictly above the average.
    expected = {
        (5, 5, 5): RfmSegment.IMPORTANT_VALUE,
        (5, 1, 5): RfmSegment.IMPORTANT_DEVELOP,
        (1, 5, 5): RfmSegment.IMPORTANT_KEEP,
        (1, 1, 5): RfmSegment.IMPORTANT_RETAIN,
        (5, 5, 1): RfmSegment.GENERAL_VALUE,
        (5, 1, 1): RfmSegment.GENERAL_DEVELOP,
        (1, 5, 1): RfmSegment.GENERAL_KEEP,
        (1, 1, 1): RfmSegment.GENERAL_RETAIN,
        (3, 3, 3): RfmSegment.GENERAL_RETAIN,  # exactly average is not above it
    }
    ids = {}
    for r, f, m in expected:
        member = new_member()
        session.add(MemberStats(member_id=member.id, rfm_frequency=1, rfm_r=r, rfm_f=f, rfm_m=m))
        ids[(r, f, m)] = member.id
    session.flush()
    n = len(expected)
    averages = segmentation.RfmAverages(n, 3 * n, 3 * n, 3 * n)

    segment = segmentation.segment_expression(
        averages, MemberStats.rfm_r, MemberStats.rfm_f, MemberStats.rfm_m
    )
    placed = dict(session.execute(select(MemberStats.member_id, segment)).all())

    for scores, expected_segment in expected.items():
        assert placed[ids[scores]] == expected_segment.value, scores


def test_system_tags_follow_the_segments_and_stages(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    fresh = new_member(joined_days_ago=3)
    lapsed = new_member()
    buy(session, mall["food"], lapsed, 120)

    refresh(app)

    def codes(member: Member) -> set[str]:
        return set(
            session.scalars(
                select(Tag.code)
                .join(MemberTag, MemberTag.tag_id == Tag.id)
                .where(MemberTag.member_id == member.id)
            )
        )

    assert codes(fresh) == {"lifecycle:new", "rfm:no_purchase"}
    assert codes(lapsed) == {"lifecycle:dormant", "rfm:general_retain"}


def test_kpis_match_hand_computed_values_and_a_past_day_can_be_recomputed(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    food, fashion = mall["food"], mall["fashion"]
    scene = QrScene(kind=SceneKind.STORE, name="喜茶门口", scene="store-food", store_id=food.id)
    session.add(scene)
    session.flush()
    regular, lapsing, occasional, _idle = (
        new_member(signup_scene_id=scene.id),
        new_member(),
        new_member(),
        new_member(0),
    )
    buy(session, food, regular, 0, 10_000)
    buy(session, food, regular, 40, 5_000)
    buy(session, fashion, lapsing, 45, 8_000)
    buy(session, fashion, occasional, 10, 3_000)
    buy(session, fashion, occasional, 12, 6_000, refunded_fen=6_000)
    buy(session, food, None, 0, 5_000)  # a shopper who is not a member

    with transaction(app) as work:
        kpis.compute_day(work, AT.today, AT)
        kpis.compute_day(work, AT.today - timedelta(days=1), AT)

    def row(store_id: int, days_ago: int = 0) -> KpiDaily:
        return session.scalars(
            select(KpiDaily).where(
                KpiDaily.store_id == store_id, KpiDaily.business_date == AT.today - timedelta(days=days_ago)
            )
        ).one()

    mall_row = row(MALL_WIDE)
    assert (mall_row.members_total, mall_row.new_members) == (4, 1)
    assert (mall_row.active_30d, mall_row.active_90d, mall_row.repeat_buyers_90d) == (2, 3, 1)
    assert (mall_row.previous_active_30d, mall_row.churned_30d) == (2, 1)
    assert (mall_row.member_purchases, mall_row.member_sales_fen) == (1, 10_000)
    assert (mall_row.non_member_purchases, mall_row.non_member_sales_fen) == (1, 5_000)
    assert kpis.rate(mall_row.active_30d, mall_row.members_total) == kpis.rate(1, 2)
    assert mall_row.tier_distribution is not None
    assert sum(mall_row.tier_distribution.values()) == 4
    food_row, fashion_row = row(food.id), row(fashion.id)
    assert (food_row.members_total, food_row.active_30d, food_row.repeat_buyers_90d) == (1, 1, 1)
    assert (food_row.member_sales_fen, food_row.non_member_sales_fen) == (10_000, 5_000)
    assert (fashion_row.active_90d, fashion_row.previous_active_30d, fashion_row.churned_30d) == (2, 1, 1)
    yesterday = row(MALL_WIDE, days_ago=1)
    assert (yesterday.member_purchases, yesterday.new_members, yesterday.members_total) == (0, 0, 3)
    assert yesterday.tier_distribution is None  # distributions describe the present only
    assert session.scalar(select(func.count()).select_from(KpiDaily)) == 2 * 3


def test_an_interrupted_refresh_is_finished_by_running_it_again(
    app: Flask, session: Session, mall: dict, new_member: Callable[..., Member]
) -> None:
    members = [new_member() for _ in range(7)]
    for member in members:
        buy(session, mall["food"], member, 5)
    calls = []

    def interrupt_after_two_batches(step: str, done: int, total: int) -> None:
        calls.append(step)
        if step == "stats" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nightly.refresh(app, AT, batch_size=3, connections=1, progress=interrupt_after_two_batches)
    partial = session.scalar(select(func.count()).select_from(MemberStats))
    refresh(app)

    assert partial == 6
    assert session.scalar(select(func.count()).select_from(MemberStats)) == 7
    assert all(stats_of(session, member).purchases_30d == 1 for member in members)


def test_an_ordinary_night_recomputes_only_changed_members_and_matches_a_full_recompute(
    app: Flask,
    session: Session,
    mall: dict,
    new_member: Callable[..., Member],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twelve nights of a small mall where everything that moves a member's figures happens: new
    purchases (some after the night's run), refunds of old purchases, birthdays changed, members
    joining, windows and thresholds passing, a missed night. The incremental nights must leave what
    recomputing everyone leaves."""
    # A few dozen purchases: without this every night would look back at all of them.
    monkeypatch.setattr(segmentation, "WATERMARK_MARGIN", 0)
    rng = random.Random(20261125)
    start = AT.today - timedelta(days=12)
    # Purchases near the edges the twelve nights move past: the windows of 30/90/180/365 days (and
    # the dormant and churned thresholds), measured from AT.
    edges = [range(12, 400), range(28, 45), range(88, 105), range(178, 195), range(363, 380)]
    members = [new_member(joined_days_ago=400) for _ in range(24)]
    purchases = [
        factories.create_purchase(
            session,
            rng.choice([mall["food"], mall["fashion"]]),
            rng.randrange(1, 50) * 1_000,
            noon(rng.choice(rng.choice(edges))),
            member,
        )
        for member in members
        for _ in range(rng.randrange(1, 4))
    ]
    # Never bought: they stop being new, or churn, as the nights pass.
    members += [new_member(joined_days_ago=days) for days in (22, 27, 36, 172, 177, 186)]
    # Turns dormant on night 10, the night whose tags step does not run.
    turns_dormant = new_member(joined_days_ago=400)
    factories.create_purchase(session, mall["food"], 5_000, noon(92), turns_dormant)

    def night(day: date, steps: tuple[str, ...] = nightly.STEPS) -> nightly.RefreshReport:
        three_am = datetime.combine(day, time(3), tzinfo=SHANGHAI).astimezone(UTC)
        return refresh(app, MallTime(three_am, SHANGHAI), steps)

    reports = [night(start)]
    for offset in range(1, 13):
        day = start + timedelta(days=offset)
        at_noon = datetime.combine(day, time(12), tzinfo=SHANGHAI).astimezone(UTC)
        buyer = rng.choice(members[:3])
        factories.create_purchase(session, mall["food"], 8_000, at_noon - timedelta(hours=10), buyer)
        if offset % 3 == 0:
            refunded = rng.choice(purchases)
            refunded.refunded_fen = refunded.amount_fen
            session.add(
                PurchaseRefund(
                    purchase_id=refunded.id,
                    refund_no=f"RF{offset}",
                    amount_fen=refunded.amount_fen,
                    points_clawed_back=0,
                )
            )
        if offset % 4 == 0:
            rng.choice(members).birthday = date(1990, offset, 1)
            members.append(new_member(joined_days_ago=0))
        session.commit()
        if offset == 7:
            continue  # a missed night
        # Night 10 stops before the tags (a crash): the next one must still bring them in line.
        reports.append(night(day, steps=("stats", "rfm") if offset == 10 else nightly.STEPS))
        # Bought late in the day, after the night's run: the next night must count it.
        factories.create_purchase(session, mall["fashion"], 3_000, at_noon + timedelta(hours=8), members[0])

    def everything() -> tuple[list[Any], list[Any]]:
        stats = session.execute(select(MemberStats.__table__).order_by(MemberStats.member_id)).all()
        rows = [row._asdict() for row in stats]
        held = session.execute(
            select(MemberTag.member_id, MemberTag.tag_id).order_by(MemberTag.member_id, MemberTag.tag_id)
        ).all()
        return rows, held

    reports.append(night(start + timedelta(days=13)))
    session.expire_all()
    incremental = everything()
    session.execute(delete(StatsRefresh))
    session.commit()
    full = night(start + timedelta(days=13))
    session.expire_all()

    assert not reports[0].incremental and all(report.incremental for report in reports[1:])
    assert 0 < max(report.queued for report in reports[1:]) < len(members) // 2
    assert not full.incremental
    recomputed = everything()
    for before, after in zip(incremental[0], recomputed[0], strict=True):
        assert before == after, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert recomputed == incremental
    dormant_tag = session.scalar(select(Tag.id).where(Tag.code == "lifecycle:dormant"))
    assert session.get(MemberTag, (turns_dormant.id, dormant_tag)) is not None
    assert session.scalar(select(func.count()).select_from(MemberStatsQueue)) == 0


def test_tags_that_end_are_moved_to_the_history_chunk_by_chunk(
    app: Flask, session: Session, new_member: Callable[..., Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tags, "END_CHUNK", 2)
    members = [new_member(joined_days_ago=3) for _ in range(5)]
    refresh(app)
    later = MallTime(AT.now + timedelta(days=60), SHANGHAI)

    refresh(app, later)  # no longer new: five lifecycle tags end, in three chunks of at most two

    new_tag = session.scalars(select(Tag.id).where(Tag.code == "lifecycle:new")).one()
    ids = [member.id for member in members]
    assert not session.scalars(select(MemberTag.member_id).where(MemberTag.tag_id == new_tag)).all()
    ended = session.scalars(
        select(MemberTagHistory.member_id).where(
            MemberTagHistory.tag_id == new_tag, MemberTagHistory.member_id.in_(ids)
        )
    ).all()
    assert sorted(ended) == sorted(ids)


def test_ending_tags_by_key_moves_exactly_those_keys(
    session: Session, new_member: Callable[..., Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tags, "END_CHUNK", 2)
    first, second, third = (new_member() for _ in range(3))
    gold, silver = (Tag(code=code, name=code, kind=TagKind.MANUAL) for code in ("gold", "silver"))
    session.add_all([gold, silver])
    session.flush()
    for member in (first, second, third):
        for tag in (gold, silver):
            session.add(MemberTag(member_id=member.id, tag_id=tag.id, source=TagSource.MANUAL, since=AT.now))
    session.flush()
    ending = [(first.id, gold.id), (second.id, silver.id), (third.id, gold.id)]
    which = or_(*(and_(MemberTag.member_id == member, MemberTag.tag_id == tag) for member, tag in ending))

    assert tags._end(session, which, AT.now) == 3

    held = session.execute(select(MemberTag.member_id, MemberTag.tag_id)).all()
    assert sorted(held) == sorted([(first.id, silver.id), (second.id, gold.id), (third.id, silver.id)])
    history = session.execute(select(MemberTagHistory.member_id, MemberTagHistory.tag_id)).all()
    assert sorted(history) == sorted(ending)


@pytest.mark.mariadb
def test_the_ranges_are_worked_on_two_at_once(
    app: Flask, session: Session, new_member: Callable[..., Member], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(9):
        new_member()
    both_under_way = threading.Barrier(2, timeout=10)
    calls = itertools.count()
    refresh_stats = segmentation.refresh_stats

    def meeting(*args: Any, **kwargs: Any) -> segmentation.StatsWritten:
        if next(calls) < 2:
            both_under_way.wait()  # BrokenBarrierError if the first two ranges ran one after the other
        return refresh_stats(*args, **kwargs)

    monkeypatch.setattr(segmentation, "refresh_stats", meeting)
    nightly.refresh(app, AT, batch_size=3, connections=2, steps=("stats",))

    assert session.scalar(select(func.count()).select_from(MemberStats)) == 9
