"""Real threads against MariaDB: the ledger never overdraws, never doubles, and stays consistent."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import Member, PointsEntry, PointsEntryKind, PointsLot, PointsSettings, Staff, StaffRole
from app.services import points, purchases
from app.services.points import InsufficientPoints, Posting
from tests import factories

pytestmark = pytest.mark.mariadb

NOW = MallTime(utcnow(), ZoneInfo("Asia/Shanghai"))
SETTINGS = PointsSettings.with_defaults()


@pytest.fixture
def member_id(app: Flask, session: Session) -> int:
    tiers = factories.create_tiers(session)
    with app.app_context():
        vault = extensions().phone_vault
    return factories.create_member(session, vault, "13100131000", tiers[0]).id


def assert_ledger_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["points", "verify"])
    assert result.exit_code == 0, result.output


def test_fifty_redemptions_against_a_balance_for_ten_let_exactly_ten_through(
    app: Flask, session: Session, member_id: int
) -> None:
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(member_id, 1_000, PointsEntryKind.ADJUSTMENT, "fund", "充值"),
            at=NOW,
            settings=SETTINGS,
        ),
        app=app,
    )

    def redeem(n: int) -> bool:
        try:
            run_transaction(
                lambda s: points.spend(
                    s, Posting(member_id, 100, PointsEntryKind.REDEMPTION, f"redeem:{n}", "兑换"), at=NOW
                ),
                app=app,
            )
            return True
        except InsufficientPoints:
            return False

    with ThreadPoolExecutor(max_workers=25) as pool:
        outcomes = list(pool.map(redeem, range(50)))

    assert outcomes.count(True) == 10
    assert session.get_one(Member, member_id, populate_existing=True).points_balance == 0
    assert session.scalar(select(func.sum(PointsLot.remaining))) == 0
    assert_ledger_clean(app)


def test_a_mix_of_earning_spending_refunds_and_expiry_keeps_the_ledger_consistent(
    app: Flask, session: Session, member_id: int
) -> None:
    store = factories.create_store(session)
    manager = factories.create_staff(session, "manager01", StaffRole.MANAGER)
    # Some old points, due to expire while everything else happens.
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(member_id, 500, PointsEntryKind.ADJUSTMENT, "old", "旧积分"),
            at=MallTime(NOW.now.replace(year=NOW.now.year - 2), NOW.tz),
            settings=SETTINGS,
        ),
        app=app,
    )
    rng = random.Random(7)

    def operation(n: int) -> None:
        kind = rng.choice(["buy", "buy", "spend", "refund", "expire"])
        try:
            if kind == "buy":
                run_transaction(
                    lambda s: purchases.record_purchase(
                        s,
                        purchases.NewPurchase(store.id, f"R{n}", rng.randint(100, 50_000), member_id),
                        staff=s.get_one(type(manager), manager.id),
                        at=NOW,
                        settings=SETTINGS,
                    ),
                    app=app,
                )
            elif kind == "spend":
                run_transaction(
                    lambda s: points.spend(
                        s,
                        Posting(member_id, rng.randint(1, 300), PointsEntryKind.REDEMPTION, f"s{n}", "兑换"),
                        at=NOW,
                    ),
                    app=app,
                )
            elif kind == "refund":
                with app.app_context():
                    purchase_ids = run_transaction(
                        lambda s: list(s.scalars(select(purchases.Purchase.id))), app=app
                    )
                if purchase_ids:
                    run_transaction(
                        lambda s: purchases.refund_purchase(
                            s,
                            rng.choice(purchase_ids),
                            f"RF{n}",
                            50,
                            staff=s.get_one(type(manager), manager.id),
                            at=NOW,
                        ),
                        app=app,
                    )
            else:
                run_transaction(lambda s: points.expire_due_lots(s, member_id=member_id, at=NOW), app=app)
        except (InsufficientPoints, purchases.RefundExceedsPurchase):
            pass

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(operation, range(120)))

    assert session.scalar(select(func.count()).select_from(PointsEntry)) > 20
    assert_ledger_clean(app)


CAPPED = PointsSettings(**{**PointsSettings.with_defaults_dict(), "purchase_daily_cap_points": 1_000})


def _buy(app: Flask, store_id: int, manager_id: int, member_id: int, receipt_no: str) -> int:
    """Credit a ¥200 purchase (200 points before the cap); the points it earned."""
    result = run_transaction(
        lambda s: purchases.record_purchase(
            s,
            purchases.NewPurchase(store_id, receipt_no, 20_000, member_id),
            staff=s.get_one(Staff, manager_id),
            at=NOW,
            settings=CAPPED,
        ),
        app=app,
    )
    return result.purchase.points_earned


def test_concurrent_purchases_of_one_member_earn_exactly_the_daily_cap(
    app: Flask, session: Session, member_id: int
) -> None:
    store = factories.create_store(session)
    manager = factories.create_staff(session, "manager01", StaffRole.MANAGER)

    with ThreadPoolExecutor(max_workers=12) as pool:
        earned = list(pool.map(lambda n: _buy(app, store.id, manager.id, member_id, f"CAP-{n}"), range(24)))

    assert sum(earned) == 1_000  # 5 purchases' worth, however they interleaved
    assert sorted(earned, reverse=True)[:6] == [200, 200, 200, 200, 200, 0]
    assert session.get_one(Member, member_id, populate_existing=True).points_balance == 1_000
    assert_ledger_clean(app)
