"""Scheduled jobs: expiry, birthday month, tier review. Each can run twice without harm."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.extensions import extensions, mall_time
from app.mall_time import MallTime
from app.models import (
    KpiDaily,
    LifecycleStage,
    Member,
    MemberStats,
    PointsEntry,
    PointsEntryKind,
    PointsLot,
    PointsSettings,
    Purchase,
    TierChange,
)
from app.services import rewards
from tests import factories

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def tiers(session: Session) -> list:
    return factories.create_tiers(session)


@pytest.fixture
def vault(app: Flask):
    with app.app_context():
        return extensions().phone_vault


def run(app: Flask, name: str) -> str:
    result = app.test_cli_runner().invoke(args=["jobs", "run", name])
    assert result.exit_code == 0, result.output
    return result.output


def member_with_points(app: Flask, session: Session, vault, tier, phone: str, **fields: object) -> Member:
    member = factories.create_member(session, vault, phone, tier, **fields)
    with app.app_context():
        run_transaction(
            lambda s: rewards.reward_sign_up(
                s, s.get_one(Member, member.id), at=mall_time(), settings=PointsSettings.with_defaults()
            )
        )
    return member


def test_expire_points_clears_lots_past_their_last_day(
    app: Flask,
    session: Session,
    tiers: list,
    vault,
) -> None:
    member = member_with_points(app, session, vault, tiers[0], "13200132000")
    session.execute(PointsLot.__table__.update().values(expires_on=date(2020, 12, 31)))

    output = run(app, "expire-points")
    second = run(app, "expire-points")

    assert "expired 100 points of 1 members" in output
    assert "expired 0 points" in second
    assert session.get_one(Member, member.id, populate_existing=True).points_balance == 0
    assert app.test_cli_runner().invoke(args=["points", "verify"]).exit_code == 0


def test_birthday_points_once_a_year_for_this_months_birthdays(
    app: Flask,
    session: Session,
    tiers: list,
    vault,
) -> None:
    this_month = mall_time_today(app).month
    other_month = this_month % 12 + 1
    born_now = factories.create_member(
        session, vault, "13200132001", tiers[0], birthday=date(1990, this_month, 1)
    )
    factories.create_member(session, vault, "13200132002", tiers[0], birthday=date(1990, other_month, 1))
    factories.create_member(session, vault, "13200132003", tiers[0])

    first = run(app, "birthday-points")
    second = run(app, "birthday-points")

    assert "birthday points for 1 of 1 members" in first
    assert "birthday points for 0 of 1 members" in second
    entries = session.scalars(select(PointsEntry).where(PointsEntry.kind == PointsEntryKind.BIRTHDAY)).all()
    assert [(e.member_id, e.delta) for e in entries] == [
        (born_now.id, PointsSettings.DEFAULTS["birthday_points"])
    ]


def test_a_29_february_birthday_is_celebrated_in_february(
    app: Flask,
    session: Session,
    tiers: list,
    vault,
) -> None:
    leapling = factories.create_member(session, vault, "13200132004", tiers[0], birthday=date(2000, 2, 29))
    february_2027 = MallTime(datetime(2027, 2, 10, 4, tzinfo=UTC), SHANGHAI)  # 2027 has no 29 February

    with app.app_context():
        candidates = run_transaction(lambda s: rewards.birthday_members(s, at=february_2027))
        granted = run_transaction(
            lambda s: rewards.reward_birthday(
                s, leapling.id, at=february_2027, settings=PointsSettings.with_defaults()
            )
        )

    assert candidates == [leapling.id]
    assert granted is True


def test_the_review_moves_members_to_the_tier_their_spend_earns(
    app: Flask,
    session: Session,
    tiers: list,
    vault,
) -> None:
    normal, silver, gold, _ = tiers
    lapsed = factories.create_member(session, vault, "13200132005", gold)
    rising = factories.create_member(session, vault, "13200132006", normal)
    steady = factories.create_member(session, vault, "13200132007", silver)
    store = factories.create_store(session)
    now = utcnow()
    session.add_all(
        [
            Purchase(
                member_id=rising.id,
                store_id=store.id,
                receipt_no="a",
                amount_fen=silver.min_annual_spend_fen,
                purchased_at=now - timedelta(days=30),
            ),
            Purchase(
                member_id=steady.id,
                store_id=store.id,
                receipt_no="b",
                amount_fen=silver.min_annual_spend_fen,
                purchased_at=now - timedelta(days=100),
            ),
            # Older than twelve months: no longer counts.
            Purchase(
                member_id=lapsed.id,
                store_id=store.id,
                receipt_no="c",
                amount_fen=gold.min_annual_spend_fen,
                purchased_at=now - timedelta(days=400),
            ),
        ]
    )
    session.commit()

    output = run(app, "review-tiers")

    assert "upgraded 1, downgraded 1, unchanged 1" in output
    tier_of = {
        member_id: tier_id for member_id, tier_id in session.execute(select(Member.id, Member.tier_id))
    }
    assert tier_of == {lapsed.id: normal.id, rising.id: silver.id, steady.id: silver.id}
    history = {(c.member_id, c.reason, c.to_tier_id) for c in session.scalars(select(TierChange))}
    assert history == {(lapsed.id, "review", normal.id), (rising.id, "review", silver.id)}


def mall_time_today(app: Flask) -> date:
    with app.app_context():
        return mall_time().today


def test_the_scheduler_knows_every_job_in_mall_time(app: Flask) -> None:
    from app.jobs import JOBS, LEADER_HEARTBEAT, build_scheduler

    scheduler = build_scheduler(app)

    assert {job.id for job in scheduler.get_jobs()} == {*JOBS, LEADER_HEARTBEAT}
    assert str(scheduler.timezone) == "Asia/Shanghai"


def test_expired_coupons_lapse_and_refund_points_only_when_promised(
    app: Flask,
    session: Session,
    tiers: list,
    vault,
) -> None:
    from app.models import Coupon, CouponStatus
    from app.services import coupons

    member = member_with_points(app, session, vault, tiers[0], "13200132008")
    refundable = factories.create_coupon_template(
        session, name="可退", points_price=30, refund_points_on_expiry=True
    )
    final = factories.create_coupon_template(session, name="不退", points_price=20)
    with app.app_context():
        for template, key in ((refundable, "k1"), (final, "k2")):
            run_transaction(
                lambda s, t=template, k=key: coupons.claim(s, t.id, member.id, request_key=k, at=mall_time()),
            )
    session.execute(Coupon.__table__.update().values(valid_until=utcnow() - timedelta(minutes=1)))

    output = run(app, "expire-coupons")

    assert "expired 2 coupons" in output
    assert set(session.scalars(select(Coupon.status))) == {CouponStatus.EXPIRED}
    assert session.get_one(Member, member.id, populate_existing=True).points_balance == 100 - 20
    assert app.test_cli_runner().invoke(args=["points", "verify"]).exit_code == 0
    assert app.test_cli_runner().invoke(args=["coupons", "verify"]).exit_code == 0


def test_the_nightly_refresh_job_classifies_members_and_snapshots_kpis(
    app: Flask, session: Session, vault, tiers: list
) -> None:
    member = member_with_points(app, session, vault, tiers[0], "13700137100")

    output = run(app, "refresh-tags")

    assert "refreshed as of" in output
    assert session.get_one(MemberStats, member.id).lifecycle_stage is LifecycleStage.NEW
    kpi = session.scalars(select(KpiDaily).where(KpiDaily.store_id == 0)).one()
    assert (kpi.new_members, kpi.points_issued) == (1, PointsSettings.DEFAULTS["welcome_points"])
