"""Counter staff verify coupons (核销): validity, store scope, minimum spend, single use, undo."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.db import utcnow
from app.extensions import extensions
from app.models import Coupon, CouponKind, CouponRedemption, StaffRole
from tests import factories
from tests.flows import bearer, registered_shopper, staff_login


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    factories.create_tiers(session)
    fashion = factories.create_store(session, name="ZARA", category="服饰")
    food = factories.create_store(session, name="喜茶", category="餐饮")
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=fashion.id)
    factories.create_staff(session, "staff02", StaffRole.STORE_STAFF, store_id=food.id)
    factories.create_staff(session, "manager01", StaffRole.MANAGER)
    return {"fashion": fashion, "food": food}


@pytest.fixture
def shopper(client: FlaskClient, mall: dict) -> str:
    return registered_shopper(client, "o-holder", "13800000123")[0]


def coupon_of(client: FlaskClient, token: str, session: Session, **template: Any) -> int:
    template_id = factories.create_coupon_template(session, **template).id
    response = client.post(
        f"/api/mp/v1/coupon-templates/{template_id}/claims",
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def code_of(client: FlaskClient, token: str, coupon_id: int) -> str:
    return str(
        client.get(f"/api/mp/v1/me/coupons/{coupon_id}/code", headers=bearer(token)).get_json()["code"]
    )


def redeem(client: FlaskClient, staff: str, code: str, store_id: int, amount: int | None = None):
    body: dict[str, Any] = {"code": code, "store_id": store_id}
    if amount is not None:
        body["order_amount_fen"] = amount
    return client.post(
        "/api/staff/v1/coupon-redemptions", json=body, headers=bearer(staff_login(client, staff))
    )


def test_a_cash_off_coupon_deducts_its_face_value(
    app: Flask, client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(client, shopper, session)

    response = redeem(client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id, 15_000)

    assert response.status_code == 201
    body = response.get_json()
    assert (body["deduction_fen"], body["coupon"]["status"]) == (2_000, "used")
    mine = client.get("/api/mp/v1/me/coupons?status=used", headers=bearer(shopper)).get_json()
    assert [c["id"] for c in mine] == [coupon_id]
    assert app.test_cli_runner().invoke(args=["coupons", "verify"]).exit_code == 0


def test_a_discount_saves_its_percentage_up_to_the_cap(
    client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(
        client,
        shopper,
        session,
        kind=CouponKind.DISCOUNT,
        name="八八折",
        discount_percent=88,
        max_discount_fen=5_000,
        min_spend_fen=0,
        face_value_fen=0,
    )

    response = redeem(client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id, 100_000)

    assert response.get_json()["deduction_fen"] == 5_000  # 12% of ¥1000 is ¥120, capped at ¥50


def test_a_gift_coupon_needs_no_order_amount(
    client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(
        client,
        shopper,
        session,
        kind=CouponKind.GIFT,
        name="会员礼",
        gift_name="帆布袋",
        min_spend_fen=0,
        face_value_fen=0,
    )

    response = redeem(client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id)

    assert response.status_code == 201
    assert response.get_json()["coupon"]["gift_name"] == "帆布袋"
    assert response.get_json()["deduction_fen"] == 0


def test_a_coupon_verifies_once(client: FlaskClient, mall: dict, shopper: str, session: Session) -> None:
    coupon_id = coupon_of(client, shopper, session)
    code = code_of(client, shopper, coupon_id)
    redeem(client, "staff01", code, mall["fashion"].id, 15_000)

    again = redeem(client, "staff01", code, mall["fashion"].id, 15_000)

    assert again.status_code == 409
    assert again.get_json()["code"] == "COUPON_USED"


@pytest.mark.parametrize(
    ("template", "staff", "store", "amount", "code", "status"),
    [
        ({}, "staff01", "fashion", 9_999, "COUPON_MIN_SPEND_NOT_MET", 422),
        ({}, "staff01", "fashion", None, "COUPON_ORDER_AMOUNT_REQUIRED", 422),
        ({"store_categories": ["餐饮"]}, "staff01", "fashion", 20_000, "COUPON_STORE_NOT_ELIGIBLE", 422),
        (
            {"kind": CouponKind.PARKING, "parking_minutes": 60, "min_spend_fen": 0, "face_value_fen": 0},
            "staff01",
            "fashion",
            None,
            "COUPON_NOT_FOR_COUNTER",
            422,
        ),
        ({}, "staff02", "fashion", 20_000, "STORE_NOT_ALLOWED", 403),
        ({}, "advisor", "fashion", 20_000, "FORBIDDEN", 403),
    ],
)
def test_coupons_that_cannot_be_used_here_say_why(
    client: FlaskClient,
    mall: dict,
    shopper: str,
    session: Session,
    template: dict,
    staff: str,
    store: str,
    amount: int | None,
    code: str,
    status: int,
) -> None:
    if staff == "advisor":
        factories.create_staff(session, "advisor01", StaffRole.ADVISOR, store_id=mall["fashion"].id)
        staff = "advisor01"
    coupon_id = coupon_of(client, shopper, session, **template)

    response = redeem(client, staff, code_of(client, shopper, coupon_id), mall[store].id, amount)

    assert (response.status_code, response.get_json()["code"]) == (status, code)
    assert session.get_one(Coupon, coupon_id, populate_existing=True).status == "available"


def test_an_expired_coupon_is_refused(
    client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(client, shopper, session)
    code = code_of(client, shopper, coupon_id)
    session.execute(Coupon.__table__.update().values(valid_until=utcnow() - timedelta(seconds=1)))

    response = redeem(client, "staff01", code, mall["fashion"].id, 20_000)

    assert response.get_json()["code"] == "COUPON_EXPIRED"


def test_a_member_code_is_not_a_coupon_code(
    client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_of(client, shopper, session)
    member_code = client.get("/api/mp/v1/me/code", headers=bearer(shopper)).get_json()["code"]

    response = redeem(client, "staff01", member_code, mall["fashion"].id, 20_000)

    assert response.get_json()["code"] == "COUPON_CODE_INVALID"


def test_an_old_coupon_code_is_expired(
    app: Flask, client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(client, shopper, session)
    with app.app_context():
        signer = extensions().coupon_code_signer
        old = signer.issue(coupon_id, utcnow() - timedelta(seconds=3 * signer.step_seconds)).code

    assert (
        redeem(client, "staff01", old, mall["fashion"].id, 20_000).get_json()["code"] == "COUPON_CODE_EXPIRED"
    )


def test_a_mistaken_verification_can_be_undone_by_the_same_store(
    app: Flask, client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(client, shopper, session)
    redemption = redeem(
        client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id, 20_000
    ).get_json()

    other_store = client.delete(
        f"/api/staff/v1/coupon-redemptions/{redemption['id']}", headers=bearer(staff_login(client, "staff02"))
    )
    undone = client.delete(
        f"/api/staff/v1/coupon-redemptions/{redemption['id']}", headers=bearer(staff_login(client, "staff01"))
    )

    assert (other_store.status_code, other_store.get_json()["code"]) == (403, "REDEMPTION_OTHER_STORE")
    assert undone.status_code == 200
    assert undone.get_json()["undone_at"] is not None
    assert undone.get_json()["coupon"]["status"] == "available"
    again = redeem(client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id, 20_000)
    assert again.status_code == 201
    assert app.test_cli_runner().invoke(args=["coupons", "verify"]).exit_code == 0


def test_undo_is_refused_after_ten_minutes(
    client: FlaskClient, mall: dict, shopper: str, session: Session
) -> None:
    coupon_id = coupon_of(client, shopper, session)
    redemption = redeem(
        client, "staff01", code_of(client, shopper, coupon_id), mall["fashion"].id, 20_000
    ).get_json()
    session.execute(CouponRedemption.__table__.update().values(redeemed_at=utcnow() - timedelta(minutes=11)))

    response = client.delete(
        f"/api/staff/v1/coupon-redemptions/{redemption['id']}", headers=bearer(staff_login(client, "staff01"))
    )

    assert (response.status_code, response.get_json()["code"]) == (409, "REDEMPTION_UNDO_EXPIRED")


def test_undoing_an_unknown_redemption_is_404(client: FlaskClient, mall: dict) -> None:
    response = client.delete(
        "/api/staff/v1/coupon-redemptions/424242", headers=bearer(staff_login(client, "staff01"))
    )

    assert response.status_code == 404
