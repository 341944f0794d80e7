"""Shoppers claim coupons (free or with points), see their own, and show a one-time code."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Coupon, CouponStatus, IdempotencyKey, PointsSettings, TemplateStatus
from tests import factories
from tests.flows import bearer, registered_shopper

WELCOME = PointsSettings.DEFAULTS["welcome_points"]


@pytest.fixture
def tiers(session: Session) -> list:
    return factories.create_tiers(session)


@pytest.fixture
def shopper(client: FlaskClient, tiers: list) -> tuple[str, dict]:
    return registered_shopper(client, "o-coupons", "13900139000")


def claim(client: FlaskClient, token: str, template_id: int, key: str | None = None):
    headers = {**bearer(token), "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"/api/mp/v1/coupon-templates/{template_id}/claims", headers=headers)


def my_coupons(client: FlaskClient, token: str, status: str = "available") -> list[dict[str, Any]]:
    return client.get(f"/api/mp/v1/me/coupons?status={status}", headers=bearer(token)).get_json()


def test_claiming_a_free_coupon(client: FlaskClient, shopper: tuple, session: Session) -> None:
    template = factories.create_coupon_template(session)

    response = claim(client, shopper[0], template.id)

    assert response.status_code == 201
    coupon = response.get_json()
    assert (coupon["name"], coupon["face_value_fen"], coupon["status"], coupon["source"]) == (
        "满100减20",
        2_000,
        "available",
        "claim",
    )
    assert my_coupons(client, shopper[0])[0]["id"] == coupon["id"]
    assert session.get_one(type(template), template.id, populate_existing=True).remaining_stock == 99


def test_a_retried_claim_returns_the_same_coupon(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    template = factories.create_coupon_template(session, per_member_limit=5)

    first = claim(client, shopper[0], template.id, key="retry-key-1")
    again = claim(client, shopper[0], template.id, key="retry-key-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == again.get_json()
    assert len(my_coupons(client, shopper[0])) == 1


def test_a_claim_retried_after_its_kept_response_expired_still_gets_the_same_coupon(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    template = factories.create_coupon_template(session, per_member_limit=5)
    first = claim(client, shopper[0], template.id, key="retry-key-1")
    session.execute(delete(IdempotencyKey))

    again = claim(client, shopper[0], template.id, key="retry-key-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert "Idempotent-Replayed" not in again.headers
    assert first.get_json()["id"] == again.get_json()["id"]
    assert len(my_coupons(client, shopper[0])) == 1


def test_the_idempotency_key_is_required(client: FlaskClient, shopper: tuple, session: Session) -> None:
    template = factories.create_coupon_template(session)

    response = client.post(f"/api/mp/v1/coupon-templates/{template.id}/claims", headers=bearer(shopper[0]))

    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["details"]


def test_the_points_mall_debits_points_with_the_coupon(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    template = factories.create_coupon_template(session, name="积分换券", points_price=80)

    coupon = claim(client, shopper[0], template.id).get_json()

    assert (coupon["source"], coupon["points_paid"]) == ("points_mall", 80)
    points = client.get("/api/mp/v1/me/points", headers=bearer(shopper[0])).get_json()
    assert points["balance"] == WELCOME - 80
    entry = client.get("/api/mp/v1/me/points/entries", headers=bearer(shopper[0])).get_json()["items"][0]
    assert (entry["kind"], entry["delta"], entry["description"]) == ("redemption", -80, "积分兑换：积分换券")


def test_not_enough_points_means_no_coupon_and_no_stock_taken(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    template = factories.create_coupon_template(session, points_price=WELCOME + 1)

    response = claim(client, shopper[0], template.id)

    assert response.status_code == 409
    assert response.get_json()["code"] == "POINTS_INSUFFICIENT"
    assert my_coupons(client, shopper[0]) == []
    assert session.get_one(type(template), template.id, populate_existing=True).remaining_stock == 100


@pytest.mark.parametrize(
    ("overrides", "code", "status"),
    [
        ({"total_stock": 0}, "COUPON_SOLD_OUT", 409),
        ({"status": TemplateStatus.PAUSED}, "COUPON_NOT_AVAILABLE", 409),
        ({"status": TemplateStatus.ENDED}, "COUPON_NOT_AVAILABLE", 409),
        ({"status": TemplateStatus.DRAFT}, "COUPON_TEMPLATE_NOT_FOUND", 404),
        ({"claim_starts_at": utcnow() + timedelta(hours=1)}, "COUPON_NOT_IN_CLAIM_WINDOW", 409),
        ({"claim_ends_at": utcnow() - timedelta(hours=1)}, "COUPON_NOT_IN_CLAIM_WINDOW", 409),
    ],
)
def test_claims_that_cannot_succeed_say_why(
    client: FlaskClient, shopper: tuple, session: Session, overrides: dict, code: str, status: int
) -> None:
    template = factories.create_coupon_template(session, **overrides)

    response = claim(client, shopper[0], template.id)

    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert response.get_json()["message"]


def test_only_eligible_tiers_may_claim(
    client: FlaskClient, shopper: tuple, tiers: list, session: Session
) -> None:
    template = factories.create_coupon_template(session, eligible_tier_ids=[tiers[2].id, tiers[3].id])

    response = claim(client, shopper[0], template.id)

    assert response.status_code == 403
    assert response.get_json() == {"code": "COUPON_NOT_ELIGIBLE", "message": "您的会员等级暂不可领取该优惠券"}


def test_the_per_member_limit_holds(client: FlaskClient, shopper: tuple, session: Session) -> None:
    template = factories.create_coupon_template(session, per_member_limit=2)

    statuses = [claim(client, shopper[0], template.id).status_code for _ in range(3)]

    assert statuses == [201, 201, 409]
    assert claim(client, shopper[0], template.id).get_json()["code"] == "COUPON_LIMIT_REACHED"


def test_the_daily_limit_holds(client: FlaskClient, shopper: tuple, session: Session) -> None:
    template = factories.create_coupon_template(session, per_member_limit=0, per_member_daily_limit=1)

    assert claim(client, shopper[0], template.id).status_code == 201
    assert claim(client, shopper[0], template.id).get_json()["code"] == "COUPON_DAILY_LIMIT_REACHED"


def test_an_unknown_template_is_404(client: FlaskClient, shopper: tuple) -> None:
    assert claim(client, shopper[0], 999_999).status_code == 404


def test_editing_the_template_does_not_change_issued_coupons(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    template = factories.create_coupon_template(session)
    coupon_id = claim(client, shopper[0], template.id).get_json()["id"]

    session.execute(type(template).__table__.update().values(face_value_fen=9_999, name="改过的券"))

    coupon = session.get_one(Coupon, coupon_id)
    assert (coupon.face_value_fen, coupon.name) == (2_000, "满100减20")


def test_claimable_templates_list_only_what_can_be_claimed_now(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    open_one = factories.create_coupon_template(session, name="可领")
    factories.create_coupon_template(session, name="已抢光", total_stock=0)
    factories.create_coupon_template(session, name="未开始", claim_starts_at=utcnow() + timedelta(days=1))
    factories.create_coupon_template(session, name="草稿", status=TemplateStatus.DRAFT)

    listed = client.get("/api/mp/v1/coupon-templates", headers=bearer(shopper[0])).get_json()

    assert [t["id"] for t in listed] == [open_one.id]


def test_my_coupons_by_status(client: FlaskClient, shopper: tuple, session: Session) -> None:
    fresh = factories.create_coupon_template(session, name="新券")
    stale = factories.create_coupon_template(session, name="旧券")
    claim(client, shopper[0], fresh.id)
    stale_id = claim(client, shopper[0], stale.id).get_json()["id"]
    session.execute(
        Coupon.__table__.update()
        .where(Coupon.id == stale_id)
        .values(valid_until=utcnow() - timedelta(minutes=1))
    )

    assert [c["name"] for c in my_coupons(client, shopper[0], "available")] == ["新券"]
    assert [c["name"] for c in my_coupons(client, shopper[0], "expired")] == ["旧券"]
    assert my_coupons(client, shopper[0], "used") == []


def test_showing_a_coupon_gives_a_one_time_qr_code(
    client: FlaskClient, shopper: tuple, session: Session
) -> None:
    coupon_id = claim(client, shopper[0], factories.create_coupon_template(session).id).get_json()["id"]

    body = client.get(f"/api/mp/v1/me/coupons/{coupon_id}/code", headers=bearer(shopper[0])).get_json()

    assert 0 < body["expires_in"] <= 120
    assert base64.b64decode(body["qr_png_base64"]).startswith(b"\x89PNG")


def test_nobody_else_can_see_or_show_my_coupon(client: FlaskClient, shopper: tuple, session: Session) -> None:
    coupon_id = claim(client, shopper[0], factories.create_coupon_template(session).id).get_json()["id"]
    other_token, _ = registered_shopper(client, "o-nosy", "13900139001")

    response = client.get(f"/api/mp/v1/me/coupons/{coupon_id}/code", headers=bearer(other_token))

    assert response.status_code == 404
    assert response.get_json()["code"] == "COUPON_NOT_FOUND"
    assert my_coupons(client, other_token) == []


def test_a_welcome_coupon_is_issued_on_sign_up(client: FlaskClient, tiers: list, session: Session) -> None:
    template = factories.create_coupon_template(session, name="新人券")
    session.add(
        PointsSettings(**{**PointsSettings.with_defaults_dict(), "welcome_coupon_template_id": template.id})
    )
    session.commit()

    token, _ = registered_shopper(client, "o-newbie", "13900139002")

    coupons = my_coupons(client, token)
    assert [(c["name"], c["source"]) for c in coupons] == [("新人券", "welcome")]
    assert session.scalars(select(Coupon.status)).all() == [CouponStatus.AVAILABLE]
