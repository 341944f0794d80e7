"""Operators design coupon templates: terms by kind, stock, limits, validity, and draft → active → ended."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.db import transaction
from app.models import Coupon, CouponSource, CouponTemplate, TemplateStatus
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper

API = "/api/admin/v1"


@pytest.fixture
def mall(session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    food = factories.create_store(session, name="喜茶", category="餐饮")
    fashion = factories.create_store(session, name="优衣库", category="服饰")
    operator = factories.create_operator(session, "ops", "correct-horse")
    return {
        "tiers": {tier.code: tier for tier in tiers},
        "food": food,
        "fashion": fashion,
        "operator": operator,
    }


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


def template_body(**overrides: Any) -> dict[str, Any]:
    """满 200 减 30, valid through December (Shanghai time)."""
    return {
        "kind": "cash_off",
        "name": "满200减30",
        "face_value_fen": 3_000,
        "min_spend_fen": 20_000,
        "total_stock": 1_000,
        "valid_from": "2026-12-01T00:00:00+08:00",
        "valid_until": "2027-01-01T00:00:00+08:00",
        **overrides,
    }


def post(client: FlaskClient, admin: dict, **overrides: Any) -> TestResponse:
    return client.post(f"{API}/coupon-templates", json=template_body(**overrides), headers=admin)


def create(client: FlaskClient, admin: dict, **overrides: Any) -> dict[str, Any]:
    response = post(client, admin, **overrides)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def put(client: FlaskClient, admin: dict, template_id: int, **overrides: Any) -> TestResponse:
    return client.put(f"{API}/coupon-templates/{template_id}", json=template_body(**overrides), headers=admin)


def act(client: FlaskClient, admin: dict, template_id: int, action: str) -> TestResponse:
    return client.post(f"{API}/coupon-templates/{template_id}/{action}", headers=admin)


def issue_from_stock(session: Session, template_id: int, count: int) -> None:
    """What claiming does to a template: take stock, only while there is some."""
    taken = session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template_id, CouponTemplate.remaining_stock >= count)
        .values(remaining_stock=CouponTemplate.remaining_stock - count)
    ).rowcount
    assert taken == 1


def stored(session: Session, template_id: int) -> CouponTemplate:
    return session.get_one(CouponTemplate, template_id, populate_existing=True)


# --- creating ------------------------------------------------------------------------------------


def test_a_new_template_starts_as_a_draft_with_its_whole_stock(client: FlaskClient, admin: dict) -> None:
    response = post(
        client, admin, description="不与其他优惠同享", claim_starts_at="2026-11-30T10:00:00+08:00"
    )

    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] and body["created_at"] and body["updated_at"]
    assert {key: value for key, value in body.items() if key not in {"id", "created_at", "updated_at"}} == {
        "kind": "cash_off",
        "name": "满200减30",
        "description": "不与其他优惠同享",
        "status": "draft",
        "face_value_fen": 3_000,
        "min_spend_fen": 20_000,
        "discount_percent": None,
        "max_discount_fen": 0,
        "gift_name": None,
        "parking_minutes": 0,
        "parking_value_fen": 0,
        "store_ids": [],
        "store_categories": [],
        "total_stock": 1_000,
        "remaining_stock": 1_000,
        "issued": 0,
        "per_member_limit": 1,
        "per_member_daily_limit": 0,
        "eligible_tier_ids": [],
        # Stored and answered in UTC.
        "valid_from": "2026-11-30T16:00:00+00:00",
        "valid_until": "2026-12-31T16:00:00+00:00",
        "valid_days_after_issue": None,
        "claim_starts_at": "2026-11-30T02:00:00+00:00",
        "claim_ends_at": None,
        "points_price": 0,
        "refund_points_on_expiry": False,
    }
    assert client.get(f"{API}/coupon-templates/{body['id']}", headers=admin).get_json() == body


@pytest.mark.parametrize(
    "terms",
    [
        {"kind": "cash_off", "face_value_fen": 1_000, "min_spend_fen": 0},  # 无门槛
        {"kind": "cash_off", "face_value_fen": 1_000, "min_spend_fen": 1_000},
        {"kind": "discount", "face_value_fen": 0, "min_spend_fen": 0, "discount_percent": 88},
        {
            "kind": "discount",
            "face_value_fen": 0,
            "min_spend_fen": 20_000,
            "discount_percent": 80,
        },  # 满 200 打八折
        {
            "kind": "discount",
            "face_value_fen": 0,
            "min_spend_fen": 0,
            "discount_percent": 1,
            "max_discount_fen": 5_000,
        },
        {"kind": "gift", "face_value_fen": 0, "min_spend_fen": 0, "gift_name": "定制帆布袋"},
        {"kind": "parking", "face_value_fen": 0, "min_spend_fen": 0, "parking_minutes": 120},
        {"kind": "parking", "face_value_fen": 0, "min_spend_fen": 0, "parking_value_fen": 1_000},
    ],
)
def test_each_kind_keeps_the_terms_it_uses(
    client: FlaskClient, admin: dict, session: Session, terms: dict
) -> None:
    body = create(client, admin, **terms)

    assert {key: body[key] for key in terms} == terms
    template = stored(session, body["id"])
    assert template.discount_percent == (terms["discount_percent"] if terms["kind"] == "discount" else 100)


def test_validity_may_be_days_from_issue_instead_of_dates(client: FlaskClient, admin: dict) -> None:
    body = create(client, admin, valid_from=None, valid_until=None, valid_days_after_issue=30)

    assert (body["valid_from"], body["valid_until"], body["valid_days_after_issue"]) == (None, None, 30)


def test_scope_limits_price_and_claim_window_are_kept(client: FlaskClient, admin: dict, mall: dict) -> None:
    food, fashion, gold = mall["food"].id, mall["fashion"].id, mall["tiers"]["gold"].id

    body = create(
        client,
        admin,
        store_ids=[fashion, food, fashion],
        store_categories=["餐饮", "餐饮"],
        eligible_tier_ids=[gold],
        per_member_limit=0,
        per_member_daily_limit=2,
        points_price=500,
        refund_points_on_expiry=True,
        claim_starts_at="2026-11-20T00:00:00Z",
        claim_ends_at="2026-11-30T00:00:00Z",
    )

    assert body["store_ids"] == [fashion, food]
    assert body["store_categories"] == ["餐饮"]
    assert body["eligible_tier_ids"] == [gold]
    assert (body["per_member_limit"], body["per_member_daily_limit"]) == (0, 2)
    assert (body["points_price"], body["refund_points_on_expiry"]) == (500, True)
    assert (body["claim_starts_at"], body["claim_ends_at"]) == (
        "2026-11-20T00:00:00+00:00",
        "2026-11-30T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"store_ids": [424242]}, "store_ids", "门店不存在：424242"),
        ({"eligible_tier_ids": [424242, 424243]}, "eligible_tier_ids", "会员等级不存在：424242, 424243"),
    ],
)
def test_unknown_stores_and_tiers_are_rejected(
    client: FlaskClient, admin: dict, session: Session, overrides: dict, field: str, message: str
) -> None:
    response = post(client, admin, **overrides)

    assert response.status_code == 422
    assert response.get_json() == {
        "code": "VALIDATION_ERROR",
        "message": "请求参数有误",
        "details": {field: [message]},
    }
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


def test_unknown_ids_are_named_alongside_known_ones(client: FlaskClient, admin: dict, mall: dict) -> None:
    response = post(client, admin, store_ids=[mall["food"].id, 424242])

    assert response.get_json()["details"] == {"store_ids": ["门店不存在：424242"]}


CASH_OFF_UNSET = {"face_value_fen": 0, "min_spend_fen": 0}


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"face_value_fen": 0}, {"face_value_fen"}),
        ({"face_value_fen": 3_000, "min_spend_fen": 2_999}, {"min_spend_fen"}),
        ({"discount_percent": 88}, {"discount_percent"}),  # a cash-off coupon is no discount
        ({"gift_name": "帆布袋"}, {"gift_name"}),
        ({"parking_minutes": 60}, {"parking_minutes"}),
        ({"kind": "discount", **CASH_OFF_UNSET}, {"discount_percent"}),
        ({"kind": "discount", **CASH_OFF_UNSET, "discount_percent": 0}, {"discount_percent"}),
        ({"kind": "discount", **CASH_OFF_UNSET, "discount_percent": 100}, {"discount_percent"}),
        ({"kind": "discount", "discount_percent": 88}, {"face_value_fen"}),
        ({"kind": "gift", "face_value_fen": 0, "gift_name": "帆布袋"}, {"min_spend_fen"}),
        ({"kind": "gift", **CASH_OFF_UNSET}, {"gift_name"}),
        ({"kind": "gift", **CASH_OFF_UNSET, "gift_name": "   "}, {"gift_name"}),
        (
            {"kind": "gift", **CASH_OFF_UNSET, "gift_name": "帆布袋", "max_discount_fen": 100},
            {"max_discount_fen"},
        ),
        ({"kind": "parking", **CASH_OFF_UNSET}, {"parking_minutes", "parking_value_fen"}),
        (
            {"kind": "parking", **CASH_OFF_UNSET, "parking_minutes": 60, "parking_value_fen": 500},
            {"parking_minutes", "parking_value_fen"},
        ),
    ],
)
def test_terms_must_fit_the_kind(
    client: FlaskClient, admin: dict, session: Session, overrides: dict, fields: set
) -> None:
    response = post(client, admin, **overrides)

    assert response.status_code == 422
    assert response.get_json()["code"] == "COUPON_TERMS_INVALID"
    assert set(response.get_json()["details"]) == fields
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"valid_days_after_issue": 30}, "valid_days_after_issue"),  # both modes
        ({"valid_from": None, "valid_until": None}, "valid_days_after_issue"),  # neither
        ({"valid_until": None}, "valid_until"),
        ({"valid_from": None}, "valid_from"),
        ({"valid_until": "2026-12-01T00:00:00+08:00"}, "valid_until"),  # not after valid_from
        ({"valid_until": "2026-11-30T00:00:00Z"}, "valid_until"),
        ({"valid_from": None, "valid_until": None, "valid_days_after_issue": 0}, "valid_days_after_issue"),
        ({"valid_from": None, "valid_until": None, "valid_days_after_issue": 3651}, "valid_days_after_issue"),
    ],
)
def test_exactly_one_validity_mode_that_makes_sense(
    client: FlaskClient, admin: dict, overrides: dict, field: str
) -> None:
    response = post(client, admin, **overrides)

    assert response.status_code == 422
    assert response.get_json()["code"] == "COUPON_VALIDITY_INVALID"
    assert field in response.get_json()["details"]


def test_validity_of_3650_days_is_the_longest(client: FlaskClient, admin: dict) -> None:
    body = create(client, admin, valid_from=None, valid_until=None, valid_days_after_issue=3650)

    assert body["valid_days_after_issue"] == 3650


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"claim_starts_at": "2026-11-20T00:00:00Z", "claim_ends_at": "2026-11-20T00:00:00Z"},
            "claim_ends_at",
        ),
        ({"kind": "coupon"}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "券" * 65}, "name"),
        ({"total_stock": 0}, "total_stock"),
        ({"total_stock": 10_000_001}, "total_stock"),
        ({"total_stock": "1000"}, "total_stock"),
        ({"total_stock": 10.5}, "total_stock"),
        ({"face_value_fen": -1}, "face_value_fen"),
        ({"per_member_limit": -1}, "per_member_limit"),
        ({"per_member_daily_limit": -1}, "per_member_daily_limit"),
        ({"points_price": -1}, "points_price"),
        ({"store_ids": ["1"]}, "store_ids"),
        ({"store_categories": [""]}, "store_categories"),
        ({"refund_points_on_expiry": "yes"}, "refund_points_on_expiry"),
        ({"valid_from": "2026-12-01T00:00:00"}, "valid_from"),  # no timezone
        ({"claim_ends_at": "tomorrow"}, "claim_ends_at"),
        ({"remaining_stock": 5}, "remaining_stock"),  # not the operator's to set
    ],
)
def test_invalid_fields_are_rejected_one_by_one(
    client: FlaskClient, admin: dict, session: Session, overrides: dict, field: str
) -> None:
    response = post(client, admin, **overrides)

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"
    assert list(response.get_json()["details"]) == [field]
    assert session.scalar(select(func.count()).select_from(CouponTemplate)) == 0


def test_a_timezone_is_required_in_plain_words(client: FlaskClient, admin: dict) -> None:
    response = post(client, admin, valid_from="2026-12-01T00:00:00")

    assert response.get_json()["details"] == {"valid_from": ["时间须带时区，如 2026-12-01T10:00:00+08:00"]}


def test_required_fields(client: FlaskClient, admin: dict) -> None:
    response = client.post(f"{API}/coupon-templates", json={}, headers=admin)

    assert response.status_code == 422
    assert response.get_json()["details"] == {"kind": ["必填"], "name": ["必填"], "total_stock": ["必填"]}


# --- reading -------------------------------------------------------------------------------------


def test_templates_are_listed_newest_first_a_page_at_a_time(client: FlaskClient, admin: dict) -> None:
    ids = [create(client, admin, name=f"券{n}")["id"] for n in range(3)]

    first = client.get(f"{API}/coupon-templates?per_page=2", headers=admin).get_json()
    second = client.get(f"{API}/coupon-templates?per_page=2&page=2", headers=admin).get_json()

    assert [template["id"] for template in first + second] == ids[::-1]
    assert first[0]["remaining_stock"] == 1_000 and first[0]["issued"] == 0


def test_templates_are_filtered_by_status(client: FlaskClient, admin: dict) -> None:
    draft, active, ended = (create(client, admin)["id"] for _ in range(3))
    act(client, admin, active, "activate")
    act(client, admin, ended, "end")

    def listed(status: str) -> list[int]:
        response = client.get(f"{API}/coupon-templates?status={status}", headers=admin)
        return [template["id"] for template in response.get_json()]

    assert (listed("draft"), listed("active"), listed("paused"), listed("ended")) == (
        [draft],
        [active],
        [],
        [ended],
    )


@pytest.mark.parametrize("query", ["status=running", "page=0", "per_page=101"])
def test_invalid_list_queries_are_rejected(client: FlaskClient, admin: dict, query: str) -> None:
    response = client.get(f"{API}/coupon-templates?{query}", headers=admin)

    assert response.status_code == 422
    assert list(response.get_json()["details"]) == [query.split("=")[0]]


def test_a_template_shows_how_many_coupons_were_issued(
    client: FlaskClient, admin: dict, session: Session
) -> None:
    template_id = create(client, admin, total_stock=100)["id"]
    issue_from_stock(session, template_id, 37)

    body = client.get(f"{API}/coupon-templates/{template_id}", headers=admin).get_json()

    assert (body["total_stock"], body["remaining_stock"], body["issued"]) == (100, 63, 37)


# --- editing -------------------------------------------------------------------------------------


def test_editing_replaces_the_terms_limits_and_windows(client: FlaskClient, admin: dict, mall: dict) -> None:
    template = create(client, admin)
    changed = {
        "kind": "discount",
        "name": "八八折",
        "face_value_fen": 0,
        "min_spend_fen": 0,
        "discount_percent": 88,
        "max_discount_fen": 10_000,
        "store_categories": ["餐饮"],
        "per_member_limit": 3,
        "eligible_tier_ids": [mall["tiers"]["silver"].id],
        "valid_from": None,
        "valid_until": None,
        "valid_days_after_issue": 7,
        "points_price": 200,
    }

    response = put(client, admin, template["id"], **changed)

    assert response.status_code == 200
    body = response.get_json()
    assert {key: body[key] for key in changed} == changed
    assert (body["status"], body["total_stock"], body["remaining_stock"]) == ("draft", 1_000, 1_000)
    assert body["created_at"] == template["created_at"]
    assert client.get(f"{API}/coupon-templates/{template['id']}", headers=admin).get_json() == body


def test_an_edit_is_checked_like_a_new_template(client: FlaskClient, admin: dict, session: Session) -> None:
    template_id = create(client, admin)["id"]

    terms = put(client, admin, template_id, min_spend_fen=100)
    validity = put(client, admin, template_id, valid_days_after_issue=5)
    store = put(client, admin, template_id, store_ids=[424242])

    assert (terms.status_code, terms.get_json()["code"]) == (422, "COUPON_TERMS_INVALID")
    assert (validity.status_code, validity.get_json()["code"]) == (422, "COUPON_VALIDITY_INVALID")
    assert (store.status_code, store.get_json()["code"]) == (422, "VALIDATION_ERROR")
    assert stored(session, template_id).min_spend_fen == 20_000


def test_an_active_template_can_be_edited(client: FlaskClient, admin: dict) -> None:
    template_id = create(client, admin)["id"]
    act(client, admin, template_id, "activate")

    response = put(client, admin, template_id, name="满200减40", face_value_fen=4_000)

    assert response.status_code == 200
    assert (response.get_json()["status"], response.get_json()["face_value_fen"]) == ("active", 4_000)


@pytest.mark.parametrize(
    ("new_total", "remaining"),
    [
        (1_500, 1_100),  # 400 issued: the 500 more are all still to give out
        (600, 200),
        (400, 0),  # exactly what was issued: sold out
    ],
)
def test_a_new_total_stock_moves_the_remaining_stock_with_it(
    client: FlaskClient, admin: dict, session: Session, new_total: int, remaining: int
) -> None:
    template_id = create(client, admin, total_stock=1_000)["id"]
    issue_from_stock(session, template_id, 400)

    response = put(client, admin, template_id, total_stock=new_total)

    assert response.status_code == 200
    body = response.get_json()
    assert (body["total_stock"], body["remaining_stock"], body["issued"]) == (new_total, remaining, 400)
    template = stored(session, template_id)
    assert (template.total_stock, template.remaining_stock) == (new_total, remaining)


def test_the_stock_cannot_drop_below_what_was_issued(
    client: FlaskClient, admin: dict, session: Session
) -> None:
    template_id = create(client, admin, total_stock=1_000)["id"]
    issue_from_stock(session, template_id, 400)

    response = put(client, admin, template_id, total_stock=399, name="改名也不生效")

    assert response.status_code == 409
    assert response.get_json() == {
        "code": "COUPON_STOCK_BELOW_ISSUED",
        "message": "库存不能少于已发放数量",
        "details": {"total_stock": 399, "issued": 400},
    }
    template = stored(session, template_id)
    assert (template.total_stock, template.remaining_stock, template.name) == (1_000, 600, "满200减30")


def test_an_ended_template_cannot_be_edited(client: FlaskClient, admin: dict, session: Session) -> None:
    template_id = create(client, admin)["id"]
    act(client, admin, template_id, "end")

    response = put(client, admin, template_id, name="复活")

    assert response.status_code == 409
    assert response.get_json() == {"code": "COUPON_TEMPLATE_ENDED", "message": "券模板已结束，不能修改"}
    assert stored(session, template_id).name == "满200减30"


def test_editing_a_template_leaves_issued_coupons_as_they_were(
    client: FlaskClient, admin: dict, session: Session
) -> None:
    template_id = create(client, admin)["id"]
    _, member = registered_shopper(client, "o-coupon-holder", "13600136000")
    template = stored(session, template_id)
    assert template.valid_from is not None and template.valid_until is not None
    coupon = Coupon(
        **template.terms(),
        template_id=template_id,
        member_id=member["id"],
        source=CouponSource.CLAIM,
        idempotency_key="claim:test-1",
        valid_from=template.valid_from,
        valid_until=template.valid_until,
        issued_on=date(2026, 12, 1),
    )
    session.add(coupon)
    session.flush()
    issue_from_stock(session, template_id, 1)

    response = put(
        client, admin, template_id, name="满200减50", face_value_fen=5_000, store_categories=["餐饮"]
    )

    assert response.status_code == 200
    held = session.get_one(Coupon, coupon.id, populate_existing=True)
    assert (held.name, held.face_value_fen, held.min_spend_fen, held.store_categories) == (
        "满200减30",
        3_000,
        20_000,
        [],
    )
    assert stored(session, template_id).face_value_fen == 5_000


# --- status --------------------------------------------------------------------------------------


def test_a_template_goes_live_pauses_resumes_and_ends(client: FlaskClient, admin: dict) -> None:
    template_id = create(client, admin)["id"]

    statuses = []
    for action in ("activate", "pause", "activate", "end"):
        response = act(client, admin, template_id, action)
        assert response.status_code == 200, response.get_json()
        statuses.append(response.get_json()["status"])

    assert statuses == ["active", "paused", "active", "ended"]
    assert client.get(f"{API}/coupon-templates/{template_id}", headers=admin).get_json()["status"] == "ended"


@pytest.mark.parametrize("status", ["draft", "paused"])
def test_a_draft_or_paused_template_can_be_ended(
    client: FlaskClient, admin: dict, session: Session, status: str
) -> None:
    template_id = create(client, admin)["id"]
    if status == "paused":
        act(client, admin, template_id, "activate")
        act(client, admin, template_id, "pause")

    response = act(client, admin, template_id, "end")

    assert response.status_code == 200
    assert stored(session, template_id).status is TemplateStatus.ENDED


@pytest.mark.parametrize(
    ("setup", "action", "status"),
    [
        ([], "pause", "draft"),
        (["activate"], "activate", "active"),
        (["activate", "pause"], "pause", "paused"),
        (["end"], "activate", "ended"),
        (["end"], "pause", "ended"),
        (["end"], "end", "ended"),
    ],
)
def test_an_impossible_status_change_is_refused_with_the_current_status(
    client: FlaskClient, admin: dict, session: Session, setup: list, action: str, status: str
) -> None:
    template_id = create(client, admin)["id"]
    for step in setup:
        assert act(client, admin, template_id, step).status_code == 200

    response = act(client, admin, template_id, action)

    assert response.status_code == 409
    body = response.get_json()
    assert (body["code"], body["message"]) == (
        "COUPON_TEMPLATE_STATUS_INVALID",
        "券模板当前状态不能执行该操作",
    )
    assert body["details"]["status"] == status
    assert stored(session, template_id).status.value == status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("put", ""),
        ("post", "/activate"),
        ("post", "/pause"),
        ("post", "/end"),
    ],
)
def test_a_missing_template_is_404(client: FlaskClient, admin: dict, method: str, path: str) -> None:
    response = getattr(client, method)(
        f"{API}/coupon-templates/424242{path}", json=template_body(), headers=admin
    )

    assert response.status_code == 404
    assert response.get_json() == {"code": "NOT_FOUND", "message": "券模板不存在"}


# --- concurrency ---------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_resizing_the_stock_while_members_claim_never_loses_count(
    app: Flask, client: FlaskClient, admin: dict, session: Session
) -> None:
    template_id = create(client, admin, total_stock=300)["id"]
    claimed = 0
    lock = threading.Lock()

    def claim(_: int) -> None:
        nonlocal claimed
        for _ in range(25):
            with transaction(app) as claim_session:
                taken = claim_session.execute(
                    update(CouponTemplate)
                    .where(CouponTemplate.id == template_id, CouponTemplate.remaining_stock > 0)
                    .values(remaining_stock=CouponTemplate.remaining_stock - 1)
                ).rowcount
            with lock:
                claimed += taken

    def resize(total: int) -> int:
        return put(app.test_client(), admin, template_id, total_stock=total).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = [pool.submit(claim, n) for n in range(4)]
        resizes = list(pool.map(resize, [250, 400, 200, 350, 300, 150]))
        for future in claims:
            future.result()

    assert set(resizes) <= {200, 409}
    template = stored(session, template_id)
    assert 0 <= template.remaining_stock <= template.total_stock
    assert template.total_stock - template.remaining_stock == claimed


@pytest.mark.mariadb
def test_two_operators_pausing_at_once_pause_it_once(app: Flask, admin: dict, session: Session) -> None:
    client = app.test_client()
    template_id = create(client, admin)["id"]
    act(client, admin, template_id, "activate")

    def pause(_: int) -> int:
        return act(app.test_client(), admin, template_id, "pause").status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(pause, range(4)))

    assert statuses == [200, 409, 409, 409]
    assert stored(session, template_id).status is TemplateStatus.PAUSED


# --- access and documentation --------------------------------------------------------------------

ENDPOINTS = [
    ("post", "/coupon-templates"),
    ("get", "/coupon-templates"),
    ("get", "/coupon-templates/1"),
    ("put", "/coupon-templates/1"),
    ("post", "/coupon-templates/1/activate"),
    ("post", "/coupon-templates/1/pause"),
    ("post", "/coupon-templates/1/end"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_an_operator_token(
    client: FlaskClient, mall: dict, method: str, path: str
) -> None:
    shopper_token, _ = registered_shopper(client, "o-coupon-admin", "13600136001")

    for headers in ({}, bearer(shopper_token), bearer("not-a-token")):
        response = getattr(client, method)(f"{API}{path}", json=template_body(), headers=headers)

        assert response.status_code == 401
        assert response.get_json()["code"] in {"AUTH_REQUIRED", "AUTH_INVALID"}


def test_the_spec_documents_every_endpoint_with_its_own_schemas(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    for method, path in ENDPOINTS:
        template = f"{API}{path.replace('/1', '/{template_id}')}"
        assert spec["paths"][template][method]["security"] == [{"bearerAuth": []}], (method, path)
    create_op = spec["paths"][f"{API}/coupon-templates"]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AdminCouponTemplateIn"
    )
    assert "201" in create_op["responses"]
    out = spec["components"]["schemas"]["AdminCouponTemplateOut"]["properties"]
    assert out["issued"]["type"] == "integer"
    assert {"status", "remaining_stock", "created_at"} <= set(out)
    assert spec["components"]["schemas"]["AdminCouponTemplateIn"]["properties"]["valid_from"]["format"] == (
        "date-time"
    )
