"""A member's rights over their personal data (PIPL), through HTTP: consenting to a new privacy policy,
exporting everything we hold about them, and deleting the account."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import bound_database, utcnow
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AssignmentEnd,
    AuditEvent,
    Member,
    MemberConsent,
    MemberTag,
    OperatorRole,
    ParkingPayment,
    ParkingPaymentStatus,
    StaffRole,
    Tag,
    TagKind,
    TagSource,
    TaskRule,
    WeChatAccount,
)
from app.models.task import TaskStatus, TaskTrigger, TaskType
from app.sandbox import SandboxProcess
from tests import factories
from tests.app.console.console_flows import signed_in
from tests.flows import (
    POLICY_VERSION,
    bearer,
    credited_purchase,
    operator_login,
    registered_shopper,
    shopper_login,
    sign_up,
    staff_login,
)

NEW_POLICY_VERSION = "2027-03"


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, name="优衣库")
    advisor = factories.create_staff(
        session, "advisor07", StaffRole.ADVISOR, store_id=store.id, name="顾问小美"
    )
    factories.create_staff(session, "staff01", StaffRole.STORE_STAFF, store_id=store.id)
    factories.create_operator(session)
    template = factories.create_coupon_template(session, name="满100减20")
    tag = Tag(code="likes-sports", name="爱运动", kind=TagKind.MANUAL)
    session.add(tag)
    rule = TaskRule(
        name="生日祝福",
        trigger_kind=TaskTrigger.TAG,
        tag_id=None,
        task_type=TaskType.BIRTHDAY_GREETING,
        message_template="生日快乐",
        priority=1,
        cool_down_days=30,
        due_in_days=3,
    )
    session.add(rule)
    session.commit()
    scene = client_scene(app, advisor_userid="advisor07")
    return {
        "tiers": tiers,
        "store": store,
        "advisor": advisor,
        "template": template,
        "tag": tag,
        "rule": rule,
        "scene": scene,
    }


def client_scene(app: Flask, **body: Any) -> str:
    client = app.test_client()
    response = client.post(
        "/api/admin/v1/qr-scenes",
        json={
            "kind": "advisor",
            "name": "顾问小美的专属码",
            **{k: v for k, v in body.items() if v is not None},
        },
        headers=bearer(operator_login(client)),
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["scene"])


def full_member(
    client: FlaskClient, session: Session, sandbox: SandboxProcess, mall: dict[str, Any], n: int
) -> dict[str, Any]:
    """A member with one of every kind of personal data; `n` makes each member's values distinct."""
    openid, phone, plate = f"o-pipl-{n}", f"1390013{n:04d}", f"粤B{n:05d}"
    nickname, receipt = f"会员{n}号", f"R-PIPL-{n}"
    token, member = registered_shopper(
        client, openid, phone, nickname=nickname, birthday="1990-05-20", scene=mall["scene"]
    )
    member_id = member["id"]
    headers = bearer(token)
    assert client.post("/api/mp/v1/me/check-ins", headers=headers).status_code == 200
    assert client.post("/api/mp/v1/me/plates", json={"plate": plate}, headers=headers).status_code == 201
    claim = client.post(
        f"/api/mp/v1/coupon-templates/{mall['template'].id}/claims",
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert claim.status_code == 201, claim.get_json()
    purchase = credited_purchase(
        client,
        "staff01",
        store_id=mall["store"].id,
        member_id=member_id,
        amount_fen=30_000,
        receipt_no=receipt,
    )
    refund = client.post(
        f"/api/staff/v1/purchases/{purchase['purchase']['id']}/refunds",
        json={"refund_no": f"{receipt}-RF", "amount_fen": 10_000},
        headers=bearer(staff_login(client, "staff01")),
    )
    assert refund.status_code == 201, refund.get_json()
    sandbox.park_car(plate, 600)
    quote = client.get(f"/api/mp/v1/me/parking/quote?plate={plate}", headers=headers)
    assert quote.status_code == 200, quote.get_json()
    paid = client.post(
        "/api/mp/v1/me/parking/payments",
        json={"quote_id": quote.get_json()["quote_id"], "points": 100},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert paid.status_code in (200, 201), paid.get_json()
    # What advisors and tag rules add: arranged directly, read back through the API.
    note = f"{nickname}喜欢运动款，周末到店"
    session.execute(update(Member).where(Member.id == member_id).values(advisor_note=f"备注{n}：尺码 M"))
    session.add(MemberTag(member_id=member_id, tag_id=mall["tag"].id, source=TagSource.MANUAL))
    today = date.today()
    for offset, status in ((1, TaskStatus.DONE), (0, TaskStatus.OPEN)):
        session.add(
            AdvisorTask(
                business_date=today - timedelta(days=offset),
                member_id=member_id,
                advisor_id=mall["advisor"].id,
                rule_id=mall["rule"].id,
                task_type=TaskType.BIRTHDAY_GREETING if offset else TaskType.VIP_INVITATION,
                priority=1,
                trigger_kind=TaskTrigger.TAG,
                trigger_value="likes-sports",
                due_date=today + timedelta(days=2),
                status=status,
                note=note if status is TaskStatus.DONE else None,
            )
        )
    session.commit()
    return {
        "token": token,
        "id": member_id,
        "openid": openid,
        "phone": phone,
        "plate": plate,
        "nickname": nickname,
        "receipt": receipt,
        "note": note,
    }


def assert_books_balance(app: Flask) -> None:
    runner = app.test_cli_runner()
    for group in ("points", "coupons"):
        result = runner.invoke(args=[group, "verify"])
        assert result.exit_code == 0, result.output


# --- export ----------------------------------------------------------------------------------------------


def test_export_holds_every_kind_of_personal_data_and_nothing_of_another_member(
    client: FlaskClient, session: Session, sandbox: SandboxProcess, mall: dict[str, Any]
) -> None:
    alice = full_member(client, session, sandbox, mall, 1)
    bob = full_member(client, session, sandbox, mall, 2)

    response = client.get("/api/mp/v1/me/export", headers=bearer(alice["token"]))

    assert response.status_code == 200
    data = response.get_json()
    profile = data["profile"]
    assert (profile["id"], profile["phone"], profile["nickname"]) == (alice["id"], alice["phone"], "会员1号")
    assert profile["birthday"] == "1990-05-20" and profile["advisor"] == "顾问小美"
    assert profile["advisor_note"] == "备注1：尺码 M"
    assert [c["policy_version"] for c in data["consents"]] == [POLICY_VERSION]
    assert [a["openid"] for a in data["wechat_accounts"]] == [alice["openid"]]
    kinds = {entry["kind"] for entry in data["points_entries"]}
    assert {"welcome", "check_in", "purchase", "refund", "redemption"} <= kinds
    assert [c["name"] for c in data["coupons"]] == ["满100减20"]
    [purchase] = data["purchases"]
    assert (purchase["receipt_no"], purchase["amount_fen"], purchase["store"]) == (
        alice["receipt"],
        30_000,
        "优衣库",
    )
    assert [r["amount_fen"] for r in purchase["refunds"]] == [10_000]
    assert [p["plate"] for p in data["plates"]] == [alice["plate"]]
    assert [(p["plate"], p["points"]) for p in data["parking_payments"]] == [(alice["plate"], 100)]
    assert [t["name"] for t in data["tags"]] == ["爱运动"]
    assert [a["advisor"] for a in data["advisor_assignments"]] == ["顾问小美"]
    assert alice["note"] in [t["note"] for t in data["advisor_tasks"]]
    assert len(data["check_ins"]) == 1
    assert data["exported_at"]
    text = json.dumps(data, ensure_ascii=False)
    for foreign in (bob["phone"], bob["openid"], bob["plate"], bob["nickname"], bob["receipt"], bob["note"]):
        assert foreign not in text


def test_export_needs_a_member(client: FlaskClient, mall: dict[str, Any]) -> None:
    token = shopper_login(client, "o-not-a-member")["token"]

    assert client.get("/api/mp/v1/me/export", headers=bearer(token)).status_code == 404
    assert client.get("/api/mp/v1/me/export").status_code == 401


# --- deletion --------------------------------------------------------------------------------------------


def test_deleting_the_account_erases_personal_data_and_explains_what_is_kept(
    app: Flask, client: FlaskClient, session: Session, sandbox: SandboxProcess, mall: dict[str, Any]
) -> None:
    alice = full_member(client, session, sandbox, mall, 1)
    bob = full_member(client, session, sandbox, mall, 2)
    balance = client.get("/api/mp/v1/me/points", headers=bearer(alice["token"])).get_json()["balance"]

    response = client.delete("/api/mp/v1/me", headers=bearer(alice["token"]))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["member_id"] == alice["id"] and body["points_forfeited"] == balance > 0
    assert any("手机号" in line for line in body["deleted"])
    assert any("会计" in line for line in body["kept"])
    assert "新会员" in body["note"]
    # The old token is dead, for reads and writes alike.
    for method, path in (
        ("get", "/api/mp/v1/me"),
        ("get", "/api/mp/v1/me/points"),
        ("delete", "/api/mp/v1/me"),
    ):
        answer = getattr(client, method)(path, headers=bearer(alice["token"]))
        assert (answer.status_code, answer.get_json()["code"]) == (401, "AUTH_INVALID")
    member = session.get_one(Member, alice["id"], populate_existing=True)
    assert member.deleted_at is not None
    assert (member.nickname, member.birthday, member.advisor_note, member.advisor_id) == (
        None,
        None,
        None,
        None,
    )
    assert member.phone_masked == "已注销" and member.phone_ciphertext == b""
    assert session.scalar(select(func.count()).where(WeChatAccount.openid == alice["openid"])) == 0
    assignment = session.scalars(
        select(AdvisorAssignment).where(AdvisorAssignment.member_id == alice["id"])
    ).one()
    assert assignment.end_reason is AssignmentEnd.MEMBER_DELETED
    notes = session.scalars(select(AdvisorTask.note).where(AdvisorTask.member_id == alice["id"])).all()
    assert notes == [None]  # the done task stays for the advisor's figures, without the note; open ones go
    assert session.scalar(select(func.count()).where(MemberTag.member_id == alice["id"])) == 0
    plates = session.scalars(
        select(ParkingPayment.plate).where(ParkingPayment.member_id == alice["id"])
    ).all()
    assert alice["plate"] not in plates
    audit = session.scalars(select(AuditEvent).where(AuditEvent.action == "member.delete")).one()
    assert (audit.target_id, audit.detail["reason"]) == (str(alice["id"]), "member")
    assert_books_balance(app)
    # Bob is untouched.
    assert client.get("/api/mp/v1/me", headers=bearer(bob["token"])).get_json()["nickname"] == "会员2号"

    # The same WeChat user and phone can join again, as a new member with nothing of the old one.
    token = shopper_login(client, alice["openid"])["token"]
    assert client.get("/api/mp/v1/me", headers=bearer(token)).get_json()["code"] == "MEMBER_NOT_REGISTERED"
    again = sign_up(client, token, alice["phone"])
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["id"] != alice["id"]
    assert (
        client.post("/api/mp/v1/me/plates", json={"plate": alice["plate"]}, headers=bearer(token)).status_code
        == 201
    )
    export = client.get("/api/mp/v1/me/export", headers=bearer(token)).get_json()
    assert export["purchases"] == [] and export["profile"]["nickname"] is None
    assert export["profile"]["phone"] == alice["phone"]


def test_the_console_shows_a_deleted_member_as_deleted_without_phone_reveal(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token, member = registered_shopper(client, "o-gone", "13900139001", nickname="走了")
    assert client.delete("/api/mp/v1/me", headers=bearer(token)).status_code == 200
    console = app.test_client()
    csrf = signed_in(console, session, OperatorRole.ADMIN)

    html = console.get(f"/console/members/{member['id']}").get_data(as_text=True)

    assert "已注销" in html and "走了" not in html and "13900139001" not in html
    assert "显示完整手机号" not in html
    reveal = console.post(f"/console/members/{member['id']}/phone", data={"csrf_token": csrf})
    assert reveal.status_code == 404
    search = console.get("/console/members?q=13900139001").get_data(as_text=True)
    assert f'/console/members/{member["id"]}"' not in search


def test_a_deleted_members_code_and_id_can_no_longer_earn(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token, member = registered_shopper(client, "o-code", "13900139002")
    code = client.get("/api/mp/v1/me/code", headers=bearer(token)).get_json()["code"]
    assert client.delete("/api/mp/v1/me", headers=bearer(token)).status_code == 200
    staff = bearer(staff_login(client, "staff01"))

    by_code = client.post(
        "/api/staff/v1/purchases",
        json={"member_code": code, "store_id": mall["store"].id, "receipt_no": "R-X1", "amount_fen": 100},
        headers=staff,
    )
    by_id = client.post(
        "/api/staff/v1/purchases",
        json={
            "member_id": member["id"],
            "store_id": mall["store"].id,
            "receipt_no": "R-X2",
            "amount_fen": 100,
        },
        headers=staff,
    )

    assert by_code.status_code in (400, 404, 409, 422) and by_code.status_code != 201
    assert (by_id.status_code, by_id.get_json()["code"]) == (409, "MEMBER_DELETED")


def test_deletion_waits_for_an_unsettled_parking_payment(
    client: FlaskClient, session: Session, sandbox: SandboxProcess, mall: dict[str, Any]
) -> None:
    alice = full_member(client, session, sandbox, mall, 3)
    session.execute(
        update(ParkingPayment)
        .where(ParkingPayment.member_id == alice["id"])
        .values(status=ParkingPaymentStatus.UNKNOWN)
    )

    response = client.delete("/api/mp/v1/me", headers=bearer(alice["token"]))

    assert response.status_code == 409
    assert response.get_json()["code"] == "MEMBER_DELETION_REFUSED"
    assert "停车" in response.get_json()["message"]
    assert client.get("/api/mp/v1/me", headers=bearer(alice["token"])).status_code == 200


# --- consent to a new policy version ---------------------------------------------------------------------


@pytest.fixture
def renewed(config: Config, sandbox: SandboxProcess) -> Iterator[FlaskClient]:
    """A client of the app after the mall published a new privacy policy version (same database)."""
    app = create_app(config.with_overrides(PRIVACY_POLICY_VERSION=NEW_POLICY_VERSION))
    yield app.test_client()
    bound_database(app).engine.dispose()


def test_a_new_policy_version_asks_members_to_consent_again(
    client: FlaskClient, renewed: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token, member = registered_shopper(client, "o-consent", "13900139003")
    headers = bearer(token)
    assert client.get("/api/mp/v1/me", headers=headers).get_json()["consent"]["required"] is False

    me = renewed.get("/api/mp/v1/me", headers=headers)

    assert me.status_code == 200
    consent = me.get_json()["consent"]
    assert consent["required"] is True
    assert (consent["current_version"], consent["accepted_version"]) == (NEW_POLICY_VERSION, POLICY_VERSION)
    # Reading one's own data still works; actions wait for the consent.
    assert renewed.get("/api/mp/v1/me/points", headers=headers).status_code == 200
    assert renewed.get("/api/mp/v1/me/export", headers=headers).status_code == 200
    blocked = renewed.post("/api/mp/v1/me/check-ins", headers=headers)
    assert blocked.status_code == 403
    assert blocked.get_json()["code"] == "CONSENT_RENEWAL_REQUIRED"
    assert "隐私政策已更新" in blocked.get_json()["message"]
    claim = renewed.post(
        f"/api/mp/v1/coupon-templates/{mall['template'].id}/claims",
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert claim.get_json()["code"] == "CONSENT_RENEWAL_REQUIRED"
    plate = renewed.post("/api/mp/v1/me/plates", json={"plate": "粤B99999"}, headers=headers)
    assert plate.get_json()["code"] == "CONSENT_RENEWAL_REQUIRED"

    outdated = renewed.post(
        "/api/mp/v1/me/consents", json={"policy_version": POLICY_VERSION}, headers=headers
    )
    assert (outdated.status_code, outdated.get_json()["code"]) == (422, "CONSENT_OUTDATED")
    assert NEW_POLICY_VERSION in outdated.get_json()["message"]

    agreed = renewed.post(
        "/api/mp/v1/me/consents", json={"policy_version": NEW_POLICY_VERSION}, headers=headers
    )
    assert agreed.status_code == 201
    assert agreed.get_json()["policy_version"] == NEW_POLICY_VERSION
    assert renewed.get("/api/mp/v1/me", headers=headers).get_json()["consent"]["required"] is False
    assert renewed.post("/api/mp/v1/me/check-ins", headers=headers).status_code == 200
    consents = session.scalars(
        select(MemberConsent).where(MemberConsent.member_id == member["id"]).order_by(MemberConsent.id)
    ).all()
    assert [c.policy_version for c in consents] == [POLICY_VERSION, NEW_POLICY_VERSION]
    assert consents[1].client_ip and consents[1].granted_at >= consents[0].granted_at
    # The old app (old version) now sees a member who agreed to something else: asked again there too.
    assert client.get("/api/mp/v1/me", headers=headers).get_json()["consent"]["required"] is True


def test_a_consent_needs_a_version(client: FlaskClient, mall: dict[str, Any]) -> None:
    token, _ = registered_shopper(client, "o-consent-2", "13900139004")

    response = client.post("/api/mp/v1/me/consents", json={}, headers=bearer(token))

    assert response.status_code == 422
    assert response.get_json()["code"] == "VALIDATION_ERROR"


def test_deleting_is_allowed_without_the_new_consent(
    renewed: FlaskClient, client: FlaskClient, mall: dict[str, Any]
) -> None:
    token, _ = registered_shopper(client, "o-consent-3", "13900139005")

    assert renewed.delete("/api/mp/v1/me", headers=bearer(token)).status_code == 200
    assert utcnow()


def test_a_deleted_member_leaves_the_store_pool(
    app: Flask, client: FlaskClient, mall: dict[str, Any]
) -> None:
    scene = client_scene(
        app, kind="store", name="优衣库收银台", store_id=mall["store"].id, advisor_userid=None
    )
    token, member = registered_shopper(client, "o-pool", "13900139006", scene=scene)
    advisor = bearer(staff_login(client, "advisor07"))
    assert [m["id"] for m in client.get("/api/staff/v1/pool/members", headers=advisor).get_json()] == [
        member["id"]
    ]

    assert client.delete("/api/mp/v1/me", headers=bearer(token)).status_code == 200

    assert client.get("/api/staff/v1/pool/members", headers=advisor).get_json() == []
    claim = client.post(f"/api/staff/v1/pool/members/{member['id']}/claim", headers=advisor)
    assert claim.status_code in (404, 409)
