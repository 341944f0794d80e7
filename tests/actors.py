"""The callers of the access tests, each signed in the way its real client signs in, and one small mall
whose objects they own.

Every actor presents every credential it holds on every request (bearer token, page or console
cookie, CSRF token, HMAC signature), so a check that accepts the wrong kind of credential shows.
Cookies are sent by hand rather than kept in a cookie jar: a logout in one request must not sign the
actor out of the next ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.auth import CONSOLE_COOKIE, PAGE_COOKIE, read_console_session, read_page_session
from app.db import utcnow
from app.extensions import mall_time
from app.models import (
    AdvisorTask,
    CheckInStreakBonus,
    CouponCampaign,
    EarningRate,
    ImportJob,
    ImportKind,
    ImportStatus,
    Member,
    OperatorRole,
    ParkingQuote,
    PointsPromotion,
    QrScene,
    SceneKind,
    Segment,
    StaffRole,
    Tag,
    TagKind,
    TaskRule,
    TaskTrigger,
    TaskType,
    Tier,
)
from app.sandbox import SandboxProcess
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper, staff_login

ANONYMOUS = "anonymous"
MEMBER_A = "member_a"
MEMBER_B = "member_b"
STAFF_1 = "staff_store1"
STAFF_2 = "staff_store2"
ADVISOR = "advisor"
OP_ADMIN = "op_admin"
OP_MARKETING = "op_marketing"
OP_STORE_MANAGER = "op_store_manager"
OP_AUDITOR = "op_auditor"
POS = "pos_terminal"
PARTNER = "partner"

ALL_ACTORS = (
    ANONYMOUS,
    MEMBER_A,
    MEMBER_B,
    STAFF_1,
    STAFF_2,
    ADVISOR,
    OP_ADMIN,
    OP_MARKETING,
    OP_STORE_MANAGER,
    OP_AUDITOR,
    POS,
    PARTNER,
)
OPERATOR_ROLES = {
    OP_ADMIN: OperatorRole.ADMIN,
    OP_MARKETING: OperatorRole.MARKETING,
    OP_STORE_MANAGER: OperatorRole.STORE_MANAGER,
    OP_AUDITOR: OperatorRole.AUDITOR,
}
OPERATOR_PASSWORD = "correct-horse"
ORDER_AMOUNT_FEN = 20_000


@dataclass
class Actor:
    name: str
    bearer: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None
    # POS terminal: key_id and secret; partner: code and secret.
    pos_key: tuple[str, str] | None = None
    partner_key: tuple[str, str] | None = None

    def request(
        self,
        client: FlaskClient,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TestResponse:
        """`method path` as this actor; a page POST carries the actor's CSRF token in its form."""
        sent = dict(headers or {})
        if self.bearer:
            sent.update(bearer(self.bearer))
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        body = b""
        content_type = None
        if form is not None:
            fields = {**({"csrf_token": self.csrf} if self.csrf else {}), **form}
            body, content_type = _urlencoded(fields), "application/x-www-form-urlencoded"
        elif json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        sent.update(self._signature(method, path.split("?")[0], body))
        return client.open(path, method=method, data=body, headers=sent, content_type=content_type)

    def _signature(self, method: str, path: str, body: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        if self.pos_key:
            key_id, secret = self.pos_key
            nonce = secrets.token_hex(16)
            message = f"{stamp}\n{nonce}\n{method}\n{path}\n".encode() + body
            return {
                "X-Pos-Key-Id": key_id,
                "X-Timestamp": stamp,
                "X-Nonce": nonce,
                "X-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
            }
        if self.partner_key:
            code, secret = self.partner_key
            message = f"{stamp}\n{method}\n{path}\n".encode() + body
            return {
                "X-Partner-Code": code,
                "X-Timestamp": stamp,
                "X-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
            }
        return {}


def _urlencoded(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


@dataclass
class World:
    """The actors, and the ids of the objects the tests address (by URL parameter name)."""

    actors: dict[str, Actor]
    ids: dict[str, Any]


def build_world(app: Flask, session: Session, sandbox: SandboxProcess) -> World:
    """Two stores; member A (advisor: ADVISOR, signed up at store 1) and member B (advisor: another
    advisor of store 1), each with a plate, coupons of a store-1-only template, a purchase at store 1,
    an advisor task and a parking quote; one of A's coupons verified at store 1; the console's objects
    (rules, tags, segments, campaigns, imports, terminals, partners) and a spare of each kind that may
    be switched off or deleted without signing an actor out."""
    client = app.test_client()
    sandbox.add_wecom_users({"acl-s1": "甲", "acl-s2": "乙", "acl-adv": "丙", "acl-adv2": "丁"})
    tiers = factories.create_tiers(session)
    spare_tier = Tier(code="acl-spare", name="备用等级", rank=99, min_annual_spend_fen=99_999_900)
    store1 = factories.create_store(session, category="服饰")
    store2 = factories.create_store(session, category="餐饮")
    scene1 = QrScene(kind=SceneKind.STORE, name="门店一", scene="acl-store-1", store_id=store1.id)
    session.add_all([spare_tier, scene1])
    session.flush()
    staff1 = factories.create_staff(session, "acl-s1", StaffRole.STORE_STAFF, store_id=store1.id)
    factories.create_staff(session, "acl-s2", StaffRole.STORE_STAFF, store_id=store2.id)
    advisor = factories.create_staff(session, "acl-adv", StaffRole.ADVISOR, store_id=store1.id)
    other_advisor = factories.create_staff(session, "acl-adv2", StaffRole.ADVISOR, store_id=store1.id)
    for username, role in OPERATOR_ROLES.items():
        store_id = store1.id if role == OperatorRole.STORE_MANAGER else None
        factories.create_operator(session, username, OPERATOR_PASSWORD, role=role, store_id=store_id)
    spare_operator = factories.create_operator(
        session, "acl-spare", OPERATOR_PASSWORD, role=OperatorRole.MARKETING
    )
    session.commit()

    token_a, body_a = registered_shopper(client, "o-acl-a", "13900000001")
    token_b, body_b = registered_shopper(client, "o-acl-b", "13900000002")
    member_a, member_b = session.get_one(Member, body_a["id"]), session.get_one(Member, body_b["id"])
    member_a.advisor_id, member_a.signup_scene_id = advisor.id, scene1.id
    member_b.advisor_id, member_b.signup_scene_id = other_advisor.id, scene1.id
    session.commit()

    admin_bearer = operator_login(client, OP_ADMIN, OPERATOR_PASSWORD)
    pos = _created(
        client, "/api/admin/v1/pos-terminals", {"store_id": store1.id, "name": "1 号收银台"}, admin_bearer
    )
    spare_pos = _created(
        client, "/api/admin/v1/pos-terminals", {"store_id": store1.id, "name": "备用"}, admin_bearer
    )
    partner_body = {"name": "悦跑", "activity_unit": 100, "points_per_unit": 1, "daily_cap_points": 50}
    partner = _created(client, "/api/admin/v1/partners", {**partner_body, "code": "acl-run"}, admin_bearer)
    spare_partner = _created(
        client, "/api/admin/v1/partners", {**partner_body, "code": "acl-spare"}, admin_bearer
    )

    # Coupons of a template usable at store 1 only: two of A's (one verified at store 1), one of B's.
    template = factories.create_coupon_template(
        session, store_ids=[store1.id], per_member_limit=0, min_spend_fen=0
    )
    session.commit()
    coupon_a = _claim(client, token_a, template.id)
    verified_a = _claim(client, token_a, template.id)
    coupon_b = _claim(client, token_b, template.id)
    staff1_bearer = staff_login(client, "acl-s1")
    redemption = client.post(
        "/api/staff/v1/coupon-redemptions",
        json={
            "code": coupon_code(client, token_a, verified_a),
            "store_id": store1.id,
            "order_amount_fen": ORDER_AMOUNT_FEN,
        },
        headers=bearer(staff1_bearer),
    )
    assert redemption.status_code == 201, redemption.get_json()

    purchases = {}
    for name, member_id in (("a", member_a.id), ("b", member_b.id)):
        response = client.post(
            "/api/staff/v1/purchases",
            json={
                "member_id": member_id,
                "store_id": store1.id,
                "receipt_no": f"ACL-{name}",
                "amount_fen": 50_000,
            },
            headers=bearer(staff1_bearer),
        )
        assert response.status_code == 201, response.get_json()
        purchases[name] = response.get_json()["purchase"]["id"]
    plates = {"a": "沪A12345", "b": "沪B54321"}
    for name, token in (("a", token_a), ("b", token_b)):
        response = client.post("/api/mp/v1/me/plates", json={"plate": plates[name]}, headers=bearer(token))
        assert response.status_code == 201, response.get_json()

    today = mall_time_today(app)
    manual_tag = Tag(code="acl-manual", name="手工标签", kind=TagKind.MANUAL)
    segment = Segment(
        name="沉睡会员", rule={"all": [{"field": "days_since_last_purchase", "op": ">=", "value": 90}]}
    )
    session.add_all([manual_tag, segment])
    session.flush()
    rule = TaskRule(
        name="VIP 邀约", trigger_kind=TaskTrigger.TAG, tag_id=manual_tag.id,
        task_type=TaskType.VIP_INVITATION, message_template="您好", priority=5, cool_down_days=7,
        due_in_days=3,
    )  # fmt: skip
    session.add(rule)
    session.flush()
    tasks = {}
    for name, member, owner in (("a", member_a, advisor), ("b", member_b, other_advisor)):
        task = AdvisorTask(
            business_date=today, member_id=member.id, advisor_id=owner.id, store_id=store1.id,
            rule_id=rule.id, task_type=TaskType.VIP_INVITATION, priority=5, trigger_kind=TaskTrigger.TAG,
            trigger_value="vip", due_date=today + timedelta(days=2),
        )  # fmt: skip
        session.add(task)
        session.flush()
        tasks[name] = task.id
    now = utcnow()
    quotes = {}
    for name, member in (("a", member_a), ("b", member_b)):
        quote = ParkingQuote(
            member_id=member.id, plate=plates[name], entry_time=now - timedelta(hours=2), parking_minutes=120,
            fee_fen=1_000, amount_due_fen=1_000, expires_at=now + timedelta(hours=1),
        )  # fmt: skip
        session.add(quote)
        session.flush()
        quotes[name] = quote.id
    rate = EarningRate(category="服饰", spend_unit_fen=100, points_per_unit=1)
    promotion = PointsPromotion(
        name="双倍积分", starts_on=today, ends_on=today + timedelta(days=7), multiplier_percent=200
    )
    bonus = CheckInStreakBonus(streak_days=7, bonus_points=50)
    campaign = CouponCampaign(name="回归礼", template_id=template.id, member_ids=[member_a.id])
    job = ImportJob(
        kind=ImportKind.MEMBERS, status=ImportStatus.FINISHED, file_name="members.csv",
        file_sha256="0" * 64, file_size=10, finished_at=now,
    )  # fmt: skip
    session.add_all([rate, promotion, bonus, campaign, job])
    session.commit()

    actors = {
        ANONYMOUS: Actor(ANONYMOUS),
        MEMBER_A: Actor(MEMBER_A, bearer=token_a),
        MEMBER_B: Actor(MEMBER_B, bearer=token_b),
        STAFF_1: _staff(app, client, STAFF_1, "acl-s1", "merchant"),
        STAFF_2: _staff(app, client, STAFF_2, "acl-s2", "merchant"),
        ADVISOR: _staff(app, client, ADVISOR, "acl-adv", "advisor"),
        POS: Actor(POS, pos_key=(pos["key_id"], pos["secret"])),
        PARTNER: Actor(PARTNER, partner_key=(partner["code"], partner["secret"])),
    }
    for name in OPERATOR_ROLES:
        actors[name] = _operator(app, client, name)
    ids = {
        "store1": store1.id, "store2": store2.id, "member_a": member_a.id, "member_b": member_b.id,
        "advisor": advisor.id, "other_advisor": other_advisor.id, "staff1": staff1.id,
        "template": template.id, "coupon_a": coupon_a, "coupon_b": coupon_b, "verified_a": verified_a,
        "redemption": redemption.get_json()["id"], "purchase_a": purchases["a"], "purchase_b": purchases["b"],
        "plate_a": plates["a"], "plate_b": plates["b"], "task_a": tasks["a"], "task_b": tasks["b"],
        "quote_a": quotes["a"], "quote_b": quotes["b"], "tag": manual_tag.id, "segment": segment.id,
        "task_rule": rule.id, "rate": rate.id, "promotion": promotion.id, "bonus": bonus.id,
        "campaign": campaign.id, "import_job": job.id, "scene": scene1.id, "tier": tiers[0].id,
        "spare_tier": spare_tier.id, "spare_operator": spare_operator.id, "pos_terminal": pos["id"],
        "spare_terminal": spare_pos["id"], "partner": partner["id"], "spare_partner": spare_partner["id"],
    }  # fmt: skip
    return World(actors, ids)


def mall_time_today(app: Flask) -> Any:
    with app.app_context():
        return mall_time().today


def coupon_code(client: FlaskClient, token: str, coupon_id: int) -> str:
    response = client.get(f"/api/mp/v1/me/coupons/{coupon_id}/code", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return str(response.get_json()["code"])


def _claim(client: FlaskClient, token: str, template_id: int) -> int:
    response = client.post(
        f"/api/mp/v1/coupon-templates/{template_id}/claims",
        headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def _created(client: FlaskClient, path: str, body: dict[str, Any], admin_bearer: str) -> dict[str, Any]:
    response = client.post(path, json=body, headers=bearer(admin_bearer))
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def _staff(app: Flask, client: FlaskClient, name: str, userid: str, page: str) -> Actor:
    """A staff member with a staff-API bearer token and the WeCom page cookie of `page`'s sign-in."""
    token = staff_login(client, userid)
    signed = client.get(f"/wecom/{page}/login", query_string={"code": f"sandbox:{userid}"})
    assert signed.status_code == 302, signed.get_data(as_text=True)
    cookie = client.get_cookie(PAGE_COOKIE, path="/wecom/")
    assert cookie is not None
    client.delete_cookie(PAGE_COOKIE, path="/wecom/")
    with app.test_request_context():
        page_session = read_page_session(cookie.value)
    assert page_session is not None
    return Actor(name, bearer=token, cookies={PAGE_COOKIE: cookie.value}, csrf=page_session.csrf_token)


def _operator(app: Flask, client: FlaskClient, username: str) -> Actor:
    """An operator with an admin-API bearer token and a console cookie signed in through the form."""
    token = operator_login(client, username, OPERATOR_PASSWORD)
    client.get("/console/login")
    anonymous = client.get_cookie(CONSOLE_COOKIE, path="/console/")
    assert anonymous is not None
    with app.test_request_context():
        login_session = read_console_session(anonymous.value)
    assert login_session is not None
    signed = client.post(
        "/console/login",
        data={"username": username, "password": OPERATOR_PASSWORD, "csrf_token": login_session.csrf_token},
    )
    assert signed.status_code == 302, signed.get_data(as_text=True)
    cookie = client.get_cookie(CONSOLE_COOKIE, path="/console/")
    assert cookie is not None
    client.delete_cookie(CONSOLE_COOKIE, path="/console/")
    with app.test_request_context():
        page_session = read_console_session(cookie.value)
    assert page_session is not None
    return Actor(username, bearer=token, cookies={CONSOLE_COOKIE: cookie.value}, csrf=page_session.csrf_token)
