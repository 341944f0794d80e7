"""Paying parking down, through HTTP, against the sandbox car park (30 min free, ¥5 per started hour,
¥50 a day): tier minutes, spending minutes, parking coupons and points, in that order; refusals, lost
answers and their reconciliation; one payment per quote."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from urllib.parse import quote as urlquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import run_transaction, utcnow
from app.mall_time import MallTime
from app.models import (
    Coupon,
    CouponKind,
    CouponStatus,
    Member,
    ParkingPayment,
    ParkingPaymentStatus,
    ParkingQuote,
    PointsEntryKind,
    PointsSettings,
    Purchase,
    Tier,
)
from app.sandbox import SandboxProcess
from app.services import points
from tests import factories
from tests.conftest import CARPARK_TIMEOUT_SECONDS
from tests.flows import bearer, registered_shopper

PLATE = "粤B12345"
DISCOUNT_PATH = "/api/v1/parking/discount"


@pytest.fixture
def tiers(session: Session) -> dict[str, Tier]:
    created = factories.create_tiers(session)
    # No welcome points, so that every point in these tests is one a test gave.
    session.add(PointsSettings(**{**PointsSettings.with_defaults_dict(), "welcome_points": 0}))
    session.commit()
    return {tier.code: tier for tier in created}


@pytest.fixture
def shopper(client: FlaskClient, tiers: dict[str, Tier]) -> tuple[str, int]:
    token, member = registered_shopper(client, "o-parking", "13900139300")
    bind = client.post("/api/mp/v1/me/plates", json={"plate": PLATE}, headers=bearer(token))
    assert bind.status_code == 201
    return token, member["id"]


# --- arranging -----------------------------------------------------------------------------------------


def give_points(app: Flask, member_id: int, amount: int) -> None:
    at = MallTime(utcnow(), _mall_tz(app))
    run_transaction(
        lambda s: points.earn(
            s,
            points.Posting(member_id, amount, PointsEntryKind.ADJUSTMENT, uuid.uuid4().hex, "测试赠送"),
            at=at,
            settings=PointsSettings.with_defaults(),
        ),
        app=app,
    )


def _mall_tz(app: Flask) -> Any:
    with app.app_context():
        from app.extensions import extensions

        return extensions().mall_tz


def set_tier(session: Session, member_id: int, tier: Tier) -> None:
    session.execute(update(Member).where(Member.id == member_id).values(tier_id=tier.id))


def spend_today(session: Session, member_id: int, amount_fen: int) -> None:
    store = factories.create_store(session)
    session.add(
        Purchase(
            member_id=member_id,
            store_id=store.id,
            receipt_no=uuid.uuid4().hex[:12],
            amount_fen=amount_fen,
            purchased_at=utcnow(),
        )
    )
    session.flush()


def parking_coupon(client: FlaskClient, session: Session, token: str, **terms: Any) -> int:
    template = factories.create_coupon_template(
        session,
        kind=CouponKind.PARKING,
        name=terms.pop("name", "停车券"),
        face_value_fen=0,
        min_spend_fen=0,
        **terms,
    )
    response = client.post(
        f"/api/mp/v1/coupon-templates/{template.id}/claims",
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


# --- acting ----------------------------------------------------------------------------------------------


def get_quote(client: FlaskClient, token: str, plate: str = PLATE) -> Any:
    return client.get(f"/api/mp/v1/me/parking/quote?plate={urlquote(plate)}", headers=bearer(token))


def quoted(client: FlaskClient, token: str, plate: str = PLATE) -> dict[str, Any]:
    response = get_quote(client, token, plate)
    assert response.status_code == 200, response.get_json()
    return dict(response.get_json())


def pay(client: FlaskClient, token: str, quote_id: int, key: str | None = None, **choices: Any) -> Any:
    return client.post(
        "/api/mp/v1/me/parking/payments",
        json={"quote_id": quote_id, **choices},
        headers={**bearer(token), "Idempotency-Key": key or uuid.uuid4().hex},
    )


def balance(client: FlaskClient, token: str) -> int:
    return int(client.get("/api/mp/v1/me/points", headers=bearer(token)).get_json()["balance"])


def coupon_status(session: Session, coupon_id: int) -> CouponStatus:
    return session.get_one(Coupon, coupon_id, populate_existing=True).status


def assert_books_balance(app: Flask) -> None:
    runner = app.test_cli_runner()
    for group in ("points", "coupons"):
        result = runner.invoke(args=[group, "verify"])
        assert result.exit_code == 0, result.output


def reconcile(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["jobs", "run", "reconcile-parking"])
    assert result.exit_code == 0, result.output
    return str(result.output)


# --- quotes ------------------------------------------------------------------------------------------------


def test_a_quote_without_benefits_is_the_car_parks_fee(
    client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 150)

    body = quoted(client, shopper[0])

    assert (body["plate"], body["parking_minutes"], body["fee_fen"], body["amount_due_fen"]) == (
        PLATE,
        150,
        1_500,
        1_500,
    )
    assert body["deductions"]["points"] == 0
    assert body["entry_time"] and body["expires_at"] > body["entry_time"]


def test_tier_free_minutes_alone(
    client: FlaskClient, shopper: tuple[str, int], session: Session, tiers: dict, sandbox: SandboxProcess
) -> None:
    set_tier(session, shopper[1], tiers["gold"])  # 120 free minutes a day
    sandbox.park_car(PLATE, 200)

    body = quoted(client, shopper[0])

    assert body["fee_fen"] == 2_000
    assert (body["deductions"]["tier_minutes"], body["deductions"]["minutes_value_fen"]) == (120, 1_000)
    assert body["amount_due_fen"] == 1_000


def test_tier_minutes_are_not_reusable_the_same_day(
    client: FlaskClient, shopper: tuple[str, int], session: Session, tiers: dict, sandbox: SandboxProcess
) -> None:
    set_tier(session, shopper[1], tiers["silver"])  # 60 free minutes a day
    client.post("/api/mp/v1/me/plates", json={"plate": "粤B54321"}, headers=bearer(shopper[0]))
    sandbox.park_car(PLATE, 200)
    sandbox.park_car("粤B54321", 200)

    paid = pay(client, shopper[0], quoted(client, shopper[0])["quote_id"])
    second = quoted(client, shopper[0], "粤B54321")

    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["tier_minutes"] == 60
    assert second["deductions"]["tier_minutes"] == 0
    assert second["amount_due_fen"] == 2_000


def test_spending_free_minutes_alone(
    client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    spend_today(session, shopper[1], 25_000)  # ¥200 or more → 2 hours
    sandbox.park_car(PLATE, 200)

    body = quoted(client, shopper[0])

    assert (body["deductions"]["spending_minutes"], body["deductions"]["minutes_value_fen"]) == (120, 1_000)
    assert body["amount_due_fen"] == 1_000


def test_parking_coupons_alone(
    client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], name="1小时停车券", parking_minutes=60)
    cash = parking_coupon(client, session, shopper[0], name="停车抵扣8元", parking_value_fen=800)
    sandbox.park_car(PLATE, 200)

    body = quoted(client, shopper[0])

    deductions = body["deductions"]
    assert sorted(body["available_coupon_ids"]) == sorted([hour, cash])
    assert [(c["coupon_id"], c["minutes"], c["value_fen"]) for c in deductions["coupons"]] == [
        (hour, 60, 0),
        (cash, 0, 800),
    ]
    assert (deductions["minutes_value_fen"], deductions["coupon_value_fen"]) == (500, 800)
    assert body["amount_due_fen"] == 700

    paid = pay(client, shopper[0], body["quote_id"])

    assert paid.status_code == 201, paid.get_json()
    assert (coupon_status(session, hour), coupon_status(session, cash)) == (CouponStatus.USED,) * 2
    assert_books_balance(client.application)


def test_points_alone_at_the_configured_rate(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 1_000)
    sandbox.park_car(PLATE, 200)

    body = quoted(client, shopper[0])
    paid = pay(client, shopper[0], body["quote_id"])

    assert (body["deductions"]["points"], body["deductions"]["points_value_fen"]) == (1_000, 1_000)
    assert body["points_terms"] == {"points_per_yuan": 100, "max_points": 1_000, "balance": 1_000}
    assert body["amount_due_fen"] == 1_000
    assert (paid.status_code, paid.get_json()["status"]) == (201, "paid")
    assert balance(client, shopper[0]) == 0
    entries = client.get("/api/mp/v1/me/points/entries", headers=bearer(shopper[0])).get_json()["items"]
    assert (entries[0]["delta"], entries[0]["description"]) == (-1_000, f"积分抵停车费：{PLATE}")


def test_points_are_capped_per_visit(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 10_000)
    sandbox.park_car(PLATE, 10 * 60)  # ¥50

    body = quoted(client, shopper[0])
    too_many = pay(client, shopper[0], body["quote_id"], points=2_001)

    assert (body["deductions"]["points"], body["amount_due_fen"]) == (2_000, 3_000)
    assert too_many.status_code == 422
    assert too_many.get_json()["code"] == "PARKING_POINTS_OVER_LIMIT"
    assert too_many.get_json()["details"] == {"max_points": 2_000}
    assert balance(client, shopper[0]) == 10_000


def test_every_deduction_combined_in_the_malls_order(
    app: Flask,
    client: FlaskClient,
    shopper: tuple[str, int],
    session: Session,
    tiers: dict,
    sandbox: SandboxProcess,
) -> None:
    set_tier(session, shopper[1], tiers["silver"])  # 60 minutes
    spend_today(session, shopper[1], 20_000)  # 120 minutes
    hour = parking_coupon(client, session, shopper[0], name="1小时停车券", parking_minutes=60)
    cash = parking_coupon(client, session, shopper[0], name="停车抵扣3元", parking_value_fen=300)
    give_points(app, shopper[1], 5_000)
    sandbox.park_car(PLATE, 10 * 60)  # ¥50, the day's cap

    body = quoted(client, shopper[0])
    paid = pay(client, shopper[0], body["quote_id"])

    d = body["deductions"]
    # 240 free minutes leave 6 hours (¥30), the coupon ¥3 off, points ¥20 (the cap): ¥7 to pay.
    assert (d["tier_minutes"], d["spending_minutes"], d["coupon_minutes"]) == (60, 120, 60)
    assert (d["minutes_value_fen"], d["coupon_value_fen"], d["points"], d["points_value_fen"]) == (
        2_000,
        300,
        2_000,
        2_000,
    )
    assert body["amount_due_fen"] == 700
    payment = paid.get_json()
    assert (paid.status_code, payment["status"], payment["deduction_fen"], payment["amount_due_fen"]) == (
        201,
        "paid",
        4_300,
        700,
    )
    (discount,) = sandbox.carpark_discounts()
    assert (discount["plate_no"], discount["total_fee"], discount["discount_fee"], discount["pay_fee"]) == (
        PLATE,
        5_000,
        4_300,
        700,
    )
    assert discount["discount_minutes"] == 240
    assert balance(client, shopper[0]) == 3_000
    assert {coupon_status(session, hour), coupon_status(session, cash)} == {CouponStatus.USED}
    again = get_quote(client, shopper[0])
    assert (again.status_code, again.get_json()["code"]) == (409, "PARKING_VISIT_ALREADY_PAID")
    assert_books_balance(app)


def test_a_fee_fully_covered(
    client: FlaskClient, shopper: tuple[str, int], session: Session, tiers: dict, sandbox: SandboxProcess
) -> None:
    set_tier(session, shopper[1], tiers["gold"])
    sandbox.park_car(PLATE, 100)

    body = quoted(client, shopper[0])
    paid = pay(client, shopper[0], body["quote_id"])

    assert (body["fee_fen"], body["deductions"]["tier_minutes"], body["amount_due_fen"]) == (1_000, 100, 0)
    assert (paid.status_code, paid.get_json()["amount_due_fen"]) == (201, 0)
    assert sandbox.carpark_discounts()[0]["pay_fee"] == 0


def test_the_member_may_pay_with_fewer_deductions_than_suggested(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 500)
    sandbox.park_car(PLATE, 200)

    paid = pay(client, shopper[0], quoted(client, shopper[0])["quote_id"], coupon_ids=[], points=200)

    assert paid.status_code == 201, paid.get_json()
    assert (paid.get_json()["points"], paid.get_json()["amount_due_fen"]) == (200, 1_800)
    assert coupon_status(session, hour) is CouponStatus.AVAILABLE
    assert balance(client, shopper[0]) == 300


def test_nothing_to_pay_within_the_free_half_hour(
    client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 20)

    body = quoted(client, shopper[0])
    response = pay(client, shopper[0], body["quote_id"])

    assert (body["fee_fen"], body["amount_due_fen"]) == (0, 0)
    assert (response.status_code, response.get_json()["code"]) == (409, "PARKING_NOTHING_TO_PAY")


# --- refusals and stale quotes ------------------------------------------------------------------------


def test_an_expired_quote_cannot_be_paid(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 500)
    sandbox.park_car(PLATE, 200)
    quote_id = quoted(client, shopper[0])["quote_id"]
    session.execute(
        update(ParkingQuote)
        .where(ParkingQuote.id == quote_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )

    response = pay(client, shopper[0], quote_id)

    assert (response.status_code, response.get_json()["code"]) == (409, "PARKING_QUOTE_EXPIRED")
    assert balance(client, shopper[0]) == 500
    assert sandbox.carpark_discounts() == []


def test_a_fee_that_changed_since_the_quote_asks_for_a_new_quote(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 500)
    sandbox.park_car(PLATE, 200)
    quote_id = quoted(client, shopper[0])["quote_id"]
    sandbox.park_car(PLATE, 290)  # another hour has started

    response = pay(client, shopper[0], quote_id)

    assert (response.status_code, response.get_json()["code"]) == (409, "PARKING_FEE_CHANGED")
    assert response.get_json()["details"] == {"quoted_fee_fen": 2_000, "current_fee_fen": 2_500}
    assert balance(client, shopper[0]) == 500
    assert sandbox.carpark_discounts() == []
    assert quoted(client, shopper[0])["fee_fen"] == 2_500


def test_a_business_error_gives_everything_back(
    app: Flask,
    client: FlaskClient,
    shopper: tuple[str, int],
    session: Session,
    tiers: dict,
    sandbox: SandboxProcess,
) -> None:
    set_tier(session, shopper[1], tiers["silver"])
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 300)
    body = quoted(client, shopper[0])
    sandbox.carpark_fault(DISCOUNT_PATH, "business", code=3005, msg="车场拒绝优惠")

    response = pay(client, shopper[0], body["quote_id"])

    assert response.status_code == 409
    error = response.get_json()
    assert error["code"] == "PARKING_PAYMENT_REFUSED"
    assert error["message"] == "停车场未接受本次抵扣，积分、停车券和免费时长已全部退回"
    assert (error["details"]["carpark_code"], error["details"]["carpark_message"]) == (3005, "车场拒绝优惠")
    assert balance(client, shopper[0]) == 800
    assert coupon_status(session, hour) is CouponStatus.AVAILABLE
    payment = session.get_one(ParkingPayment, error["details"]["payment_id"])
    assert (payment.status, payment.failure_code) == (ParkingPaymentStatus.REFUNDED, "3005")
    # The free minutes are back too: a new quote offers the same deductions.
    fresh = quoted(client, shopper[0])
    assert (fresh["deductions"]["tier_minutes"], fresh["deductions"]["coupon_minutes"]) == (60, 60)
    assert fresh["amount_due_fen"] == body["amount_due_fen"]
    assert_books_balance(app)


def test_a_car_park_timeout_is_settled_by_reconciliation(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    body = quoted(client, shopper[0])
    # The car park applies the discount, but its answer comes too late.
    sandbox.carpark_fault(DISCOUNT_PATH, "timeout", delaySeconds=CARPARK_TIMEOUT_SECONDS + 1)

    response = pay(client, shopper[0], body["quote_id"])

    assert (response.status_code, response.get_json()["status"]) == (202, "unknown")
    assert balance(client, shopper[0]) == 0
    assert coupon_status(session, hour) is CouponStatus.USED

    assert reconcile(app).strip() == "parking payments: 1 paid, 0 refunded, 0 still unknown"

    payment = session.get_one(ParkingPayment, response.get_json()["id"], populate_existing=True)
    assert payment.status is ParkingPaymentStatus.PAID
    assert balance(client, shopper[0]) == 0
    assert len(sandbox.carpark_discounts()) == 1
    assert reconcile(app).strip() == "parking payments: 0 paid, 0 refunded, 0 still unknown"
    assert_books_balance(app)


def test_a_lost_request_is_refunded_by_reconciliation(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    body = quoted(client, shopper[0])
    sandbox.carpark_fault(DISCOUNT_PATH, "http_error", httpStatus=502)

    response = pay(client, shopper[0], body["quote_id"])

    assert (response.status_code, response.get_json()["status"]) == (202, "unknown")
    assert reconcile(app).strip() == "parking payments: 0 paid, 1 refunded, 0 still unknown"
    assert balance(client, shopper[0]) == 800
    assert coupon_status(session, hour) is CouponStatus.AVAILABLE
    assert sandbox.carpark_discounts() == []
    assert_books_balance(app)


def test_reconciliation_waits_while_the_car_park_cannot_say(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    body = quoted(client, shopper[0])
    sandbox.carpark_fault(DISCOUNT_PATH, "http_error", httpStatus=503)
    assert pay(client, shopper[0], body["quote_id"]).status_code == 202
    sandbox.carpark_fault("/api/v1/parking/payment-status", "http_error", httpStatus=500)

    assert reconcile(app).strip() == "parking payments: 0 paid, 0 refunded, 1 still unknown"
    assert balance(client, shopper[0]) == 0
    assert reconcile(app).strip() == "parking payments: 0 paid, 1 refunded, 0 still unknown"
    assert balance(client, shopper[0]) == 800


# --- one payment ------------------------------------------------------------------------------------------


def test_a_retried_payment_returns_the_first_and_charges_once(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    quote_id = quoted(client, shopper[0])["quote_id"]

    first = pay(client, shopper[0], quote_id, key="parking-retry-1")
    again = pay(client, shopper[0], quote_id, key="parking-retry-1")
    other_key = pay(client, shopper[0], quote_id, key="parking-retry-2")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == again.get_json()
    assert (other_key.status_code, other_key.get_json()["code"]) == (409, "PARKING_QUOTE_USED")
    assert balance(client, shopper[0]) == 0
    assert len(sandbox.carpark_discounts()) == 1


@pytest.mark.mariadb
def test_ten_concurrent_payments_of_one_quote_make_one_payment(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    quote_id = quoted(client, shopper[0])["quote_id"]

    def attempt(_: int) -> tuple[int, str]:
        response = pay(app.test_client(), shopper[0], quote_id)
        body = response.get_json()
        return response.status_code, body.get("status") or body.get("code")

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, range(10)))

    assert sorted(outcomes) == [(201, "paid")] + [(409, "PARKING_QUOTE_USED")] * 9
    assert session.scalar(select(func.count()).select_from(ParkingPayment)) == 1
    assert len(sandbox.carpark_discounts()) == 1
    assert balance(client, shopper[0]) == 0
    assert coupon_status(session, hour) is CouponStatus.USED
    assert_books_balance(app)


# --- whose car -------------------------------------------------------------------------------------------


def test_a_plate_of_another_member_cannot_be_quoted(
    client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 200)
    other, _ = registered_shopper(client, "o-parking-2", "13900139301")

    response = get_quote(client, other)

    assert (response.status_code, response.get_json()["code"]) == (409, "PLATE_BOUND_TO_OTHER_MEMBER")


def test_another_members_quote_is_not_found(
    client: FlaskClient, shopper: tuple[str, int], sandbox: SandboxProcess
) -> None:
    sandbox.park_car(PLATE, 200)
    quote_id = quoted(client, shopper[0])["quote_id"]
    other, _ = registered_shopper(client, "o-parking-3", "13900139302")

    response = pay(client, other, quote_id)

    assert (response.status_code, response.get_json()["code"]) == (404, "PARKING_QUOTE_NOT_FOUND")


def test_a_car_not_in_the_lot(client: FlaskClient, shopper: tuple[str, int]) -> None:
    response = get_quote(client, shopper[0])

    assert (response.status_code, response.get_json()["code"]) == (404, "PARKING_CAR_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quote_id": "1"}, "quote_id"),
        ({"quote_id": 1, "points": -1}, "points"),
        ({"quote_id": 1, "points": 1.5}, "points"),
        ({"quote_id": 1, "coupon_ids": ["a"]}, "coupon_ids"),
        ({}, "quote_id"),
    ],
)
def test_bad_payment_requests_are_422(
    client: FlaskClient, shopper: tuple[str, int], body: dict, field: str
) -> None:
    response = client.post(
        "/api/mp/v1/me/parking/payments",
        json=body,
        headers={**bearer(shopper[0]), "Idempotency-Key": uuid.uuid4().hex},
    )

    assert response.status_code == 422
    assert field in response.get_json()["details"]


def test_a_payment_needs_an_idempotency_key(client: FlaskClient, shopper: tuple[str, int]) -> None:
    response = client.post("/api/mp/v1/me/parking/payments", json={"quote_id": 1}, headers=bearer(shopper[0]))

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["details"]


# --- faults from the sandbox's generic fault book -------------------------------------------------------


def test_a_lost_answer_is_settled_as_paid_and_nothing_is_given_back(
    app: Flask, client: FlaskClient, shopper: tuple[str, int], session: Session, sandbox: SandboxProcess
) -> None:
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 200)
    body = quoted(client, shopper[0])
    sandbox.inject_fault("carpark", DISCOUNT_PATH, kind="lost_answer")

    response = pay(client, shopper[0], body["quote_id"])

    assert (response.status_code, response.get_json()["status"]) == (202, "unknown")
    assert reconcile(app).strip() == "parking payments: 1 paid, 0 refunded, 0 still unknown"
    assert balance(client, shopper[0]) == 0
    assert coupon_status(session, hour) is CouponStatus.USED
    assert len(sandbox.carpark_discounts()) == 1
    assert_books_balance(app)


def test_a_car_park_down_throughout_gives_back_points_coupons_and_tier_minutes(
    app: Flask,
    client: FlaskClient,
    shopper: tuple[str, int],
    session: Session,
    tiers: dict,
    sandbox: SandboxProcess,
) -> None:
    set_tier(session, shopper[1], tiers["silver"])
    hour = parking_coupon(client, session, shopper[0], parking_minutes=60)
    give_points(app, shopper[1], 800)
    sandbox.park_car(PLATE, 300)
    body = quoted(client, shopper[0])
    # Down from the moment the member pays: the discount and the reconciliation's queries fail.
    sandbox.inject_fault("carpark", DISCOUNT_PATH, -1, http_status=503, times=None)
    sandbox.inject_fault("carpark", "/api/v1/parking/payment-status", kind="lost_answer", times=None)

    response = pay(client, shopper[0], body["quote_id"])
    still_down = reconcile(app).strip()
    sandbox.clear_faults("carpark")
    settled = reconcile(app).strip()

    assert (response.status_code, response.get_json()["status"]) == (202, "unknown")
    assert still_down == "parking payments: 0 paid, 0 refunded, 1 still unknown"
    assert settled == "parking payments: 0 paid, 1 refunded, 0 still unknown"
    assert balance(client, shopper[0]) == 800
    assert coupon_status(session, hour) is CouponStatus.AVAILABLE
    fresh = quoted(client, shopper[0])
    assert (fresh["deductions"]["tier_minutes"], fresh["deductions"]["coupon_minutes"]) == (60, 60)
    assert sandbox.carpark_discounts() == []
    assert_books_balance(app)
