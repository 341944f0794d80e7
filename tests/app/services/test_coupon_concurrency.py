"""Flash claims and verifications with real threads on MariaDB: no oversell, limits hold, single use."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.errors import DomainError
from app.extensions import extensions
from app.mall_time import MallTime
from app.models import Coupon, CouponTemplate, Member, PointsEntryKind, PointsSettings, StaffRole
from app.services import coupons, points
from app.services.points import InsufficientPoints, Posting
from tests import factories

pytestmark = pytest.mark.mariadb

NOW = MallTime(utcnow(), ZoneInfo("Asia/Shanghai"))
SETTINGS = PointsSettings.with_defaults()


@pytest.fixture
def tier(session: Session):
    return factories.create_tiers(session)[0]


def members(app: Flask, session: Session, tier, count: int) -> list[int]:
    with app.app_context():
        vault = extensions().phone_vault
    return [factories.create_member(session, vault, f"137{n:08d}", tier).id for n in range(count)]


def claim(app: Flask, template_id: int, member_id: int) -> str:
    try:
        run_transaction(
            lambda s: coupons.claim(s, template_id, member_id, request_key=uuid.uuid4().hex, at=NOW),
            app=app,
        )
        return "coupon"
    except DomainError as error:
        return error.code


def assert_coupons_clean(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["coupons", "verify"])
    assert result.exit_code == 0, result.output


def test_five_hundred_claimants_for_a_hundred_coupons(app: Flask, session: Session, tier) -> None:
    template = factories.create_coupon_template(session, total_stock=100)
    claimants = members(app, session, tier, 500)

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(lambda member_id: claim(app, template.id, member_id), claimants))

    assert outcomes.count("coupon") == 100
    assert set(outcomes) == {"coupon", "COUPON_SOLD_OUT"}
    assert session.get_one(CouponTemplate, template.id, populate_existing=True).remaining_stock == 0
    assert session.scalar(select(func.count()).select_from(Coupon)) == 100
    assert_coupons_clean(app)


def test_one_member_claiming_twenty_times_at_once_gets_the_limit(
    app: Flask,
    session: Session,
    tier,
) -> None:
    template = factories.create_coupon_template(session, total_stock=100, per_member_limit=2)
    (member_id,) = members(app, session, tier, 1)

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(lambda _: claim(app, template.id, member_id), range(20)))

    assert outcomes.count("coupon") == 2
    assert set(outcomes) == {"coupon", "COUPON_LIMIT_REACHED"}
    assert_coupons_clean(app)


def test_twenty_staff_verifying_one_coupon_let_one_through(
    app: Flask,
    session: Session,
    tier,
) -> None:
    template = factories.create_coupon_template(session)
    (member_id,) = members(app, session, tier, 1)
    store = factories.create_store(session)
    staff = factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    claim(app, template.id, member_id)
    coupon_id = session.scalars(select(Coupon.id)).one()
    with app.app_context():
        signer = extensions().coupon_code_signer
    code = signer.issue(coupon_id, NOW.now).code

    def verify(_: int) -> str:
        try:
            run_transaction(
                lambda s: coupons.redeem(
                    s, code, store.id, 20_000, staff=s.get_one(type(staff), staff.id), signer=signer, at=NOW
                ),
                app=app,
            )
            return "ok"
        except DomainError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(verify, range(20)))

    assert sorted(outcomes) == ["COUPON_USED"] * 19 + ["ok"]
    assert_coupons_clean(app)


def test_points_mall_claims_racing_other_spending_never_overdraw(
    app: Flask,
    session: Session,
    tier,
) -> None:
    template = factories.create_coupon_template(session, total_stock=50, per_member_limit=0, points_price=100)
    (member_id,) = members(app, session, tier, 1)
    run_transaction(
        lambda s: points.earn(
            s,
            Posting(member_id, 1_000, PointsEntryKind.ADJUSTMENT, "fund", "充值"),
            at=NOW,
            settings=SETTINGS,
        ),
        app=app,
    )

    def spend_or_claim(n: int) -> str:
        if n % 2:
            return claim(app, template.id, member_id)
        try:
            run_transaction(
                lambda s: points.spend(
                    s, Posting(member_id, 100, PointsEntryKind.REDEMPTION, f"other:{n}", "兑换"), at=NOW
                ),
                app=app,
            )
            return "spent"
        except InsufficientPoints:
            return "POINTS_INSUFFICIENT"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(spend_or_claim, range(40)))

    assert outcomes.count("coupon") + outcomes.count("spent") == 10
    assert session.get_one(Member, member_id, populate_existing=True).points_balance == 0
    assert app.test_cli_runner().invoke(args=["points", "verify"]).exit_code == 0
    assert_coupons_clean(app)
