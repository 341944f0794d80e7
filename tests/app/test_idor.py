"""Objects named by id belong to someone: a member acts only on their own coupons, plates and parking
quotes; staff only on their own store's sales, refunds and coupon verifications; an advisor only on
their own members and tasks. Each test calls with someone else's id, expects a refusal, and checks that
the other party's object did not change."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.db import utcnow
from app.models import (
    AdvisorTask,
    Coupon,
    CouponRedemption,
    CouponStatus,
    Member,
    MemberPlate,
    MemberTag,
    ParkingPayment,
    ParkingQuote,
    Purchase,
    PurchaseRefund,
    Staff,
    StaffRole,
    Store,
    TaskStatus,
)
from app.sandbox import SandboxProcess
from tests import factories
from tests.actors import (
    ADVISOR,
    MEMBER_A,
    OP_ADMIN,
    OP_STORE_MANAGER,
    POS,
    STAFF_1,
    STAFF_2,
    Actor,
    World,
    build_world,
    coupon_code,
)
from tests.conftest import autocommit_session, build_config, running_app

REFUSED = (403, 404)


@dataclass
class Mall:
    app: Flask
    world: World
    session: Session

    @property
    def ids(self) -> dict[str, Any]:
        return self.world.ids

    def client(self) -> FlaskClient:
        return self.app.test_client(use_cookies=False)

    def call(self, actor: str, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self.world.actors[actor].request(self.client(), method, path, **kwargs)

    def actor(self, name: str) -> Actor:
        return self.world.actors[name]

    def fresh(self, model: type[Any], key: Any) -> Any:
        return self.session.get_one(model, key, populate_existing=True)


@pytest.fixture(scope="module")
def mall(database_url: str, sandbox: SandboxProcess) -> Iterator[Mall]:
    config = build_config(database_url, sandbox)
    with running_app(config, sandbox) as app, autocommit_session(database_url) as session:
        yield Mall(app, build_world(app, session, sandbox), session)


# Members: A with B's ids


def test_a_member_cannot_show_another_members_coupon(mall: Mall) -> None:
    response = mall.call(MEMBER_A, "GET", f"/api/mp/v1/me/coupons/{mall.ids['coupon_b']}/code")

    assert response.status_code == 404
    assert response.get_json()["code"] == "COUPON_NOT_FOUND"


def test_a_member_cannot_unbind_or_take_another_members_plate(mall: Mall) -> None:
    plate_b = mall.ids["plate_b"]

    unbind = mall.call(MEMBER_A, "DELETE", f"/api/mp/v1/me/plates/{plate_b}")
    take = mall.call(MEMBER_A, "POST", "/api/mp/v1/me/plates", json_body={"plate": plate_b})

    assert unbind.status_code == 404, unbind.get_json()
    assert take.status_code == 409, take.get_json()
    holder = mall.session.scalars(select(MemberPlate.member_id).where(MemberPlate.plate == plate_b)).all()
    assert holder == [mall.ids["member_b"]]


def test_a_member_cannot_get_a_parking_quote_for_another_members_plate(mall: Mall) -> None:
    query = urlencode({"plate": mall.ids["plate_b"]})

    response = mall.call(MEMBER_A, "GET", f"/api/mp/v1/me/parking/quote?{query}")

    # That the plate is someone else's is no secret: binding it says so too.
    assert response.status_code == 409, response.get_json()
    assert response.get_json()["code"] == "PLATE_BOUND_TO_OTHER_MEMBER"
    quoted = mall.session.scalars(
        select(ParkingQuote.id).where(
            ParkingQuote.member_id == mall.ids["member_a"], ParkingQuote.plate == mall.ids["plate_b"]
        )
    ).all()
    assert quoted == []


def test_a_member_cannot_pay_another_members_parking_quote(mall: Mall) -> None:
    balance_b = mall.fresh(Member, mall.ids["member_b"]).points_balance

    response = mall.call(
        MEMBER_A,
        "POST",
        "/api/mp/v1/me/parking/payments",
        json_body={"quote_id": mall.ids["quote_b"], "points": 0, "coupon_ids": []},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )

    assert response.status_code in REFUSED, response.get_json()
    assert _payments_of_quote(mall, mall.ids["quote_b"]) == 0
    assert mall.fresh(Member, mall.ids["member_b"]).points_balance == balance_b


def test_a_member_cannot_pay_parking_with_another_members_coupon(mall: Mall) -> None:
    response = mall.call(
        MEMBER_A,
        "POST",
        "/api/mp/v1/me/parking/payments",
        json_body={"quote_id": mall.ids["quote_a"], "points": 0, "coupon_ids": [mall.ids["coupon_b"]]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )

    assert response.status_code == 404, response.get_json()
    assert response.get_json()["code"] == "COUPON_NOT_FOUND"
    assert _payments_of_quote(mall, mall.ids["quote_a"]) == 0
    assert mall.fresh(Coupon, mall.ids["coupon_b"]).status == CouponStatus.AVAILABLE


def _payments_of_quote(mall: Mall, quote_id: int) -> int:
    count = mall.session.scalar(
        select(func.count()).select_from(ParkingPayment).where(ParkingPayment.quote_id == quote_id)
    )
    return int(count or 0)


# Staff of store 2 on store 1's business


def test_staff_of_another_store_cannot_verify_a_store_only_coupon(mall: Mall) -> None:
    code = coupon_code(mall.client(), mall.actor(MEMBER_A).bearer or "", mall.ids["coupon_a"])

    at_their_store = mall.call(
        STAFF_2,
        "POST",
        "/api/staff/v1/coupon-redemptions",
        json_body={"code": code, "store_id": mall.ids["store2"], "order_amount_fen": 20_000},
    )
    claiming_store1 = mall.call(
        STAFF_2,
        "POST",
        "/api/staff/v1/coupon-redemptions",
        json_body={"code": code, "store_id": mall.ids["store1"], "order_amount_fen": 20_000},
    )

    assert at_their_store.status_code == 422, at_their_store.get_json()
    assert at_their_store.get_json()["code"] == "COUPON_STORE_NOT_ELIGIBLE"
    assert claiming_store1.status_code == 403, claiming_store1.get_json()
    assert mall.fresh(Coupon, mall.ids["coupon_a"]).status == CouponStatus.AVAILABLE
    assert _redemptions_of(mall, mall.ids["coupon_a"]) == 0


def test_staff_of_another_store_cannot_undo_a_verification(mall: Mall) -> None:
    redemption_id = mall.ids["redemption"]

    response = mall.call(STAFF_2, "DELETE", f"/api/staff/v1/coupon-redemptions/{redemption_id}")

    assert response.status_code == 403, response.get_json()
    assert response.get_json()["code"] == "REDEMPTION_OTHER_STORE"
    assert mall.session.get(CouponRedemption, redemption_id, populate_existing=True) is not None
    assert mall.fresh(Coupon, mall.ids["verified_a"]).status == CouponStatus.USED


def test_staff_of_another_store_cannot_credit_a_sale_there(mall: Mall) -> None:
    balance = mall.fresh(Member, mall.ids["member_a"]).points_balance

    response = mall.call(
        STAFF_2,
        "POST",
        "/api/staff/v1/purchases",
        json_body={
            "member_id": mall.ids["member_a"],
            "store_id": mall.ids["store1"],
            "receipt_no": "IDOR-1",
            "amount_fen": 10_000,
        },
    )

    assert response.status_code == 403, response.get_json()
    assert mall.session.scalar(select(Purchase.id).where(Purchase.receipt_no == "IDOR-1")) is None
    assert mall.fresh(Member, mall.ids["member_a"]).points_balance == balance


def test_staff_of_another_store_cannot_refund_its_sale(mall: Mall) -> None:
    purchase_id = mall.ids["purchase_a"]
    balance = mall.fresh(Member, mall.ids["member_a"]).points_balance

    response = mall.call(
        STAFF_2,
        "POST",
        f"/api/staff/v1/purchases/{purchase_id}/refunds",
        json_body={"refund_no": "IDOR-RF-1", "amount_fen": 1_000},
    )

    assert response.status_code == 403, response.get_json()
    assert mall.fresh(Purchase, purchase_id).refunded_fen == 0
    assert _refunds_of(mall, purchase_id) == 0
    assert mall.fresh(Member, mall.ids["member_a"]).points_balance == balance


def test_a_pos_terminal_cannot_refund_another_stores_sale(mall: Mall) -> None:
    store2 = mall.session.get_one(Store, mall.ids["store2"])
    elsewhere = factories.create_purchase(mall.session, store2, 30_000, utcnow() - timedelta(hours=1))
    mall.session.commit()

    response = mall.call(
        POS,
        "POST",
        "/api/pos/v1/refunds",
        json_body={"receipt_no": elsewhere.receipt_no, "refund_no": "IDOR-RF-2", "amount_fen": 1_000},
    )

    assert response.status_code == 404, response.get_json()
    assert mall.fresh(Purchase, elsewhere.id).refunded_fen == 0
    assert _refunds_of(mall, elsewhere.id) == 0


def _redemptions_of(mall: Mall, coupon_id: int) -> int:
    count = mall.session.scalar(
        select(func.count()).select_from(CouponRedemption).where(CouponRedemption.coupon_id == coupon_id)
    )
    return int(count or 0)


def _refunds_of(mall: Mall, purchase_id: int) -> int:
    count = mall.session.scalar(
        select(func.count()).select_from(PurchaseRefund).where(PurchaseRefund.purchase_id == purchase_id)
    )
    return int(count or 0)


# An advisor on another advisor's member (B is a colleague's, at the same store)


def test_an_advisor_cannot_open_another_advisors_member(mall: Mall) -> None:
    response = mall.call(ADVISOR, "GET", f"/wecom/advisor/members/{mall.ids['member_b']}")

    assert response.status_code == 403


def test_an_advisor_sees_none_of_another_advisors_members_or_tasks(mall: Mall) -> None:
    tasks_page = mall.call(ADVISOR, "GET", "/wecom/advisor/").get_data(as_text=True)
    pool = mall.call(ADVISOR, "GET", "/api/staff/v1/pool/members").get_json()

    assert f"/wecom/advisor/members/{mall.ids['member_a']}" in tasks_page  # the page lists A's task
    assert f"/wecom/advisor/members/{mall.ids['member_b']}" not in tasks_page
    assert f"/wecom/advisor/tasks/{mall.ids['task_b']}/" not in tasks_page
    assert mall.ids["member_b"] not in [item["id"] for item in pool]


def test_an_advisor_cannot_complete_another_advisors_task(mall: Mall) -> None:
    task_id = mall.ids["task_b"]

    response = mall.call(
        ADVISOR,
        "POST",
        f"/wecom/advisor/tasks/{task_id}/complete",
        form={"outcome": "contacted", "note": "x"},
    )

    assert response.status_code in REFUSED
    task = mall.fresh(AdvisorTask, task_id)
    assert (task.status, task.outcome, task.note) == (TaskStatus.OPEN, None, None)


def test_an_advisor_cannot_edit_another_advisors_members_notes_or_tags(mall: Mall) -> None:
    member_id = mall.ids["member_b"]
    before = mall.fresh(Member, member_id)
    note_before, birthday_before = before.advisor_note, before.birthday

    info = mall.call(
        ADVISOR,
        "POST",
        f"/wecom/advisor/members/{member_id}/info",
        form={"birthday": "1990-01-02", "advisor_note": "不是我的会员"},
    )
    tag = mall.call(
        ADVISOR,
        "POST",
        f"/wecom/advisor/members/{member_id}/tags",
        form={"tag_id": str(mall.ids["tag"]), "action": "add"},
    )

    assert info.status_code == 403
    assert tag.status_code == 403
    after = mall.fresh(Member, member_id)
    assert (after.advisor_note, after.birthday) == (note_before, birthday_before)
    assert mall.session.get(MemberTag, (member_id, mall.ids["tag"]), populate_existing=True) is None


def test_an_advisor_cannot_claim_another_advisors_member(mall: Mall) -> None:
    member_id = mall.ids["member_b"]

    by_api = mall.call(ADVISOR, "POST", f"/api/staff/v1/pool/members/{member_id}/claim")
    by_page = mall.call(ADVISOR, "POST", f"/wecom/advisor/members/{member_id}/claim", form={})

    assert by_api.status_code == 409, by_api.get_json()
    assert by_page.status_code == 409
    assert mall.fresh(Member, member_id).advisor_id == mall.ids["other_advisor"]


def test_counter_staff_cannot_use_the_advisor_pages_on_their_stores_members(mall: Mall) -> None:
    response = mall.call(STAFF_1, "GET", f"/wecom/advisor/members/{mall.ids['member_a']}")

    assert response.status_code == 403


# A store manager (console) is held to their store: they may not mint a mall-wide staff role


def test_a_store_manager_cannot_create_a_mall_wide_manager(mall: Mall) -> None:
    form = mall.call(OP_STORE_MANAGER, "GET", "/console/staff/new").get_data(as_text=True)
    response = mall.call(
        OP_STORE_MANAGER,
        "POST",
        "/console/staff/new",
        form={"wecom_userid": "acl-new-mgr", "name": "新经理", "role": "manager", "store_id": ""},
    )

    assert response.status_code == 403, response.get_data(as_text=True)[:300]
    assert "店长不能设置“经理”岗位" in response.get_data(as_text=True)
    assert 'value="store_staff"' in form and 'value="manager"' not in form
    assert mall.session.scalar(select(Staff.id).where(Staff.wecom_userid == "acl-new-mgr")) is None


def test_a_store_manager_cannot_promote_their_staff_to_manager(mall: Mall) -> None:
    staff_id = mall.ids["other_advisor"]

    response = mall.call(
        OP_STORE_MANAGER,
        "POST",
        f"/console/staff/{staff_id}/edit",
        form={"name": "升职", "role": "manager", "store_id": str(mall.ids["store1"])},
    )

    assert response.status_code == 403, response.get_data(as_text=True)[:300]
    staff = mall.fresh(Staff, staff_id)
    assert (staff.role, staff.name) == (StaffRole.ADVISOR, "员工acl-adv2")


def test_a_store_manager_still_manages_their_stores_counter_staff(mall: Mall) -> None:
    response = mall.call(
        OP_STORE_MANAGER,
        "POST",
        "/console/staff/new",
        form={"wecom_userid": "acl-new-clerk", "name": "新店员", "role": "store_staff", "store_id": ""},
    )

    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    created = mall.session.scalars(select(Staff).where(Staff.wecom_userid == "acl-new-clerk")).one()
    assert (created.role, created.store_id) == (StaffRole.STORE_STAFF, mall.ids["store1"])


def test_an_admin_may_still_create_a_manager(mall: Mall) -> None:
    response = mall.call(
        OP_ADMIN,
        "POST",
        "/console/staff/new",
        form={"wecom_userid": "acl-admin-mgr", "name": "经理", "role": "manager", "store_id": ""},
    )

    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert (
        mall.session.scalar(select(Staff.role).where(Staff.wecom_userid == "acl-admin-mgr"))
        == StaffRole.MANAGER
    )
