"""The console's organisation pages: audit log, job runs, stores, staff, operators, advisors and QR
scenes — who may open and change what, store managers held to their store, every change audited,
and bad input answered in Chinese on the re-rendered form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.extensions import extensions, mall_time
from app.models import (
    AdvisorAssignment,
    AdvisorTask,
    AuditEvent,
    JobRun,
    LifecycleStage,
    Member,
    Operator,
    OperatorRole,
    QrScene,
    SceneKind,
    Staff,
    StaffRole,
    Store,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
)
from app.services import audit
from tests import factories
from tests.app.console.console_flows import PASSWORD, log_in, signed_in

ADMIN, MARKETING = OperatorRole.ADMIN, OperatorRole.MARKETING
STORE_MANAGER, AUDITOR = OperatorRole.STORE_MANAGER, OperatorRole.AUDITOR
NEW_PASSWORD = "a-long-new-password"


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    """Two stores, each with an advisor and a counter clerk; our advisor looks after three members."""
    tier = factories.create_tiers(session)[0]
    ours = factories.create_store(session, name="本店", code="OURS")
    theirs = factories.create_store(session, name="他店", code="THEIRS")
    advisor = factories.create_staff(session, "adv-ours", StaffRole.ADVISOR, store_id=ours.id, name="小林")
    colleague = factories.create_staff(session, "adv-ours2", StaffRole.ADVISOR, store_id=ours.id, name="小陈")
    clerk = factories.create_staff(session, "clerk-ours", StaffRole.STORE_STAFF, store_id=ours.id)
    other = factories.create_staff(session, "adv-theirs", StaffRole.ADVISOR, store_id=theirs.id, name="小王")
    with app.app_context():
        vault = extensions().phone_vault
    members = [
        factories.create_member(session, vault, f"1380000000{n}", tier, advisor_id=advisor.id).id
        for n in range(3)
    ]
    return {
        "tier": tier,
        "vault": vault,
        "ours": ours.id,
        "theirs": theirs.id,
        "advisor": advisor.id,
        "colleague": colleague.id,
        "clerk": clerk.id,
        "other": other.id,
        "members": members,
    }


def sign_in(client: FlaskClient, session: Session, role: OperatorRole, mall: dict[str, Any]) -> str:
    store = {"store_id": mall["ours"]} if role == STORE_MANAGER else {}
    return signed_in(client, session, role, **store)


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
    )


def fresh(session: Session, model: type[Any], row_id: int) -> Any:
    """The row as the database has it now, not as this session last saw it."""
    return session.get_one(model, row_id, populate_existing=True)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# Access matrix

PAGES: dict[str, set[OperatorRole]] = {
    "/console/audit": {ADMIN, AUDITOR},
    "/console/jobs": {ADMIN, AUDITOR},
    "/console/stores": {ADMIN, AUDITOR},
    "/console/stores/new": {ADMIN},
    "/console/staff": {ADMIN, AUDITOR, STORE_MANAGER},
    "/console/staff/new": {ADMIN, STORE_MANAGER},
    "/console/operators/new": {ADMIN},
    "/console/advisors": {ADMIN, MARKETING, STORE_MANAGER, AUDITOR},
    "/console/scenes": {ADMIN, MARKETING, STORE_MANAGER, AUDITOR},
}


@pytest.mark.parametrize("path", PAGES)
def test_strangers_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302 and response.headers["Location"].startswith("/console/login?next=")


@pytest.mark.parametrize("role", list(OperatorRole))
def test_each_role_opens_exactly_its_pages(
    client: FlaskClient, session: Session, mall: dict[str, Any], role: OperatorRole
) -> None:
    sign_in(client, session, role, mall)
    nav = client.get("/console/").get_data(as_text=True)

    for path, allowed in PAGES.items():
        response = client.get(path)
        assert response.status_code == (200 if role in allowed else 403), (path, role)
        if role not in allowed:
            assert "无权" in response.get_data(as_text=True)
    assert ("操作日志" in nav) == (role in PAGES["/console/audit"])
    assert ("门店</a>" in nav) == (role in PAGES["/console/stores"])


ACTIONS = {
    "/console/stores/new": {"code": "X1", "name": "新店", "category": "餐饮"},
    "/console/operators/new": {"username": "newbie", "display_name": "新人", "role": "marketing"},
    "/console/staff/new": {"wecom_userid": "newbie", "name": "新人", "role": "store_staff"},
    "/console/advisors/reassign": {"from_staff_id": "1", "to_staff_id": ""},
    "/console/scenes": {"kind": "event", "name": "双十一"},
}


@pytest.mark.parametrize("path", ACTIONS)
def test_an_auditor_cannot_post_any_change(
    client: FlaskClient, session: Session, mall: dict[str, Any], path: str
) -> None:
    token = sign_in(client, session, AUDITOR, mall)
    stores, scenes, operators = count(session, Store), count(session, QrScene), count(session, Operator)

    response = client.post(path, data={**ACTIONS[path], "csrf_token": token, "password": NEW_PASSWORD})

    assert response.status_code == 403
    assert (count(session, Store), count(session, QrScene), count(session, Operator)) == (
        stores,
        scenes,
        operators,
    )
    assert count(session, AuditEvent) == 0


def test_marketing_cannot_reassign_nor_touch_staff_or_operators(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, MARKETING, mall)

    for path in ("/console/advisors/reassign", "/console/staff/new", "/console/operators/new"):
        data = {**ACTIONS[path], "csrf_token": token, "password": NEW_PASSWORD}
        assert client.post(path, data=data).status_code == 403, path
    assert session.scalar(select(func.count()).where(Member.advisor_id == mall["advisor"])) == 3


def test_a_forged_csrf_token_changes_nothing(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    sign_in(client, session, ADMIN, mall)

    response = client.post("/console/stores/new", data={**ACTIONS["/console/stores/new"], "csrf_token": "x"})

    assert response.status_code == 403 and count(session, Store) == 2


# Operators


def create_operator_form(client: FlaskClient, token: str, **fields: str) -> Any:
    data = {"username": "li", "display_name": "李运营", "role": "marketing", "password": NEW_PASSWORD}
    return client.post("/console/operators/new", data={**data, **fields, "csrf_token": token})


def test_a_new_operator_can_log_in_with_the_password_given(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    response = create_operator_form(client, token)

    assert response.status_code == 302, response.get_data(as_text=True)
    created = session.scalars(select(Operator).where(Operator.username == "li")).one()
    assert created.role == MARKETING and created.is_active and NEW_PASSWORD not in created.password_hash
    assert "李运营" in client.get("/console/operators").get_data(as_text=True)
    assert log_in(app.test_client(), "li", NEW_PASSWORD).status_code == 302
    (row,) = audit_rows(session, "operator.create")
    assert row.target_id == str(created.id) and row.detail["role"] == "marketing"
    assert "password" not in row.detail and NEW_PASSWORD not in str(row.detail)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "short"}, "密码：长度"),
        ({"username": ""}, "用户名：必填"),
        ({"role": "boss"}, "角色：可选值"),
        ({"role": "store_manager"}, "店长必须指定所属门店"),
        ({"role": "store_manager", "store_id": "999999"}, "门店不存在"),
        ({"username": "admin"}, "用户名已存在"),
    ],
)
def test_bad_operator_input_is_refused_on_the_form(
    client: FlaskClient, session: Session, mall: dict[str, Any], fields: dict[str, str], message: str
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    response = create_operator_form(client, token, **fields)

    assert response.status_code in (409, 422)
    html = response.get_data(as_text=True)
    assert message in html and 'name="display_name" value="李运营"' in html
    assert count(session, Operator) == 1 and count(session, AuditEvent) == 0


def test_a_store_manager_is_created_with_their_store(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    response = create_operator_form(client, token, role="store_manager", store_id=str(mall["ours"]))

    assert response.status_code == 302
    created = session.scalars(select(Operator).where(Operator.username == "li")).one()
    assert created.store_id == mall["ours"]


def test_a_deactivated_operator_cannot_log_in_until_reactivated(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    other = factories.create_operator(session, "li", PASSWORD, role=MARKETING)
    token = sign_in(client, session, ADMIN, mall)
    theirs = app.test_client()
    assert log_in(theirs, "li").status_code == 302

    off = client.post(f"/console/operators/{other.id}/active", data={"active": "0", "csrf_token": token})

    assert off.status_code == 302
    assert theirs.get("/console/").status_code == 302  # their open session ends too
    assert log_in(app.test_client(), "li").status_code == 401
    client.post(f"/console/operators/{other.id}/active", data={"active": "1", "csrf_token": token})
    assert log_in(app.test_client(), "li").status_code == 302
    assert [row.target_id for row in audit_rows(session, "operator.deactivate")] == [str(other.id)]
    assert [row.target_id for row in audit_rows(session, "operator.reactivate")] == [str(other.id)]


def test_an_admin_cannot_demote_or_deactivate_themselves(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    factories.create_operator(session, "another-admin", PASSWORD, role=ADMIN)
    token = sign_in(client, session, ADMIN, mall)
    me = session.scalars(select(Operator).where(Operator.username == "admin")).one()

    demoted = client.post(
        f"/console/operators/{me.id}/edit",
        data={"display_name": "我", "role": "auditor", "csrf_token": token},
    )
    deactivated = client.post(f"/console/operators/{me.id}/active", data={"active": "0", "csrf_token": token})

    assert demoted.status_code == 409 and "不能修改自己的角色" in demoted.get_data(as_text=True)
    assert deactivated.status_code == 409 and "不能停用自己的账号" in deactivated.get_data(as_text=True)
    session.refresh(me)
    assert me.role == ADMIN and me.is_active and count(session, AuditEvent) == 0


def test_the_last_active_admin_stays_an_admin(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    other_admin = factories.create_operator(
        session, "root", PASSWORD, role=ADMIN, is_active=False, display_name="root"
    )
    token = sign_in(client, session, ADMIN, mall)

    # Reactivating the other admin then demoting them is fine: "admin" is still there.
    client.post(f"/console/operators/{other_admin.id}/active", data={"active": "1", "csrf_token": token})
    demoted = client.post(
        f"/console/operators/{other_admin.id}/edit",
        data={"display_name": "root", "role": "auditor", "csrf_token": token},
    )

    assert demoted.status_code == 302
    session.refresh(other_admin)
    assert other_admin.role == AUDITOR
    (row,) = audit_rows(session, "operator.update")
    assert row.detail == {"role": ["admin", "auditor"]}


def test_changing_an_operators_role_and_store_is_audited(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    other = factories.create_operator(session, "li", PASSWORD, role=MARKETING, display_name="李")
    token = sign_in(client, session, ADMIN, mall)
    form = client.get(f"/console/operators/{other.id}/edit").get_data(as_text=True)
    assert 'value="marketing" selected' in form

    response = client.post(
        f"/console/operators/{other.id}/edit",
        data={
            "display_name": "李",
            "role": "store_manager",
            "store_id": str(mall["theirs"]),
            "csrf_token": token,
        },
    )

    assert response.status_code == 302
    session.refresh(other)
    assert (other.role, other.store_id) == (STORE_MANAGER, mall["theirs"])
    (row,) = audit_rows(session, "operator.update")
    assert row.detail == {"role": ["marketing", "store_manager"], "store_id": [None, mall["theirs"]]}


def test_an_admin_resets_a_password_without_it_reaching_the_audit_log(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    other = factories.create_operator(session, "li", PASSWORD, role=MARKETING)
    token = sign_in(client, session, ADMIN, mall)

    short = client.post(
        f"/console/operators/{other.id}/password", data={"password": "x", "csrf_token": token}
    )
    response = client.post(
        f"/console/operators/{other.id}/password", data={"password": NEW_PASSWORD, "csrf_token": token}
    )

    assert short.status_code == 422 and "密码：长度" in short.get_data(as_text=True)
    assert response.status_code == 302
    assert log_in(app.test_client(), "li", PASSWORD).status_code == 401
    assert log_in(app.test_client(), "li", NEW_PASSWORD).status_code == 302
    (row,) = audit_rows(session, "operator.reset_password")
    assert row.target_id == str(other.id) and row.detail == {}


# Stores


def test_an_admin_creates_and_edits_a_store(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    created = client.post(
        "/console/stores/new",
        data={"code": "F101", "name": "海底捞", "category": "餐饮", "floor": "5F", "csrf_token": token},
    )
    store = session.scalars(select(Store).where(Store.code == "F101")).one()
    edited = client.post(
        f"/console/stores/{store.id}/edit",
        data={"code": "F101", "name": "海底捞火锅", "category": "餐饮", "floor": "5F", "csrf_token": token},
    )

    assert created.status_code == 302 and edited.status_code == 302
    session.refresh(store)
    assert (store.name, store.category, store.floor) == ("海底捞火锅", "餐饮", "5F")
    assert "海底捞火锅" in client.get("/console/stores").get_data(as_text=True)
    (create_row,) = audit_rows(session, "store.create")
    assert create_row.detail == {"code": "F101", "name": "海底捞", "category": "餐饮", "floor": "5F"}
    (update_row,) = audit_rows(session, "store.update")
    assert update_row.target_id == str(store.id) and update_row.detail == {"name": ["海底捞", "海底捞火锅"]}


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"code": "OURS"}, 409, "门店编码已存在"),
        ({"name": ""}, 422, "门店名称：必填"),
        ({"code": "X" * 40}, 422, "门店编码：长度"),
    ],
)
def test_bad_store_input_is_refused_on_the_form(
    client: FlaskClient,
    session: Session,
    mall: dict[str, Any],
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    token = sign_in(client, session, ADMIN, mall)
    data = {"code": "F102", "name": "新店", "category": "服饰", **fields, "csrf_token": token}

    response = client.post("/console/stores/new", data=data)

    assert response.status_code == status and message in response.get_data(as_text=True)
    assert count(session, Store) == 2


def test_editing_a_store_to_another_stores_code_is_refused(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    response = client.post(
        f"/console/stores/{mall['ours']}/edit",
        data={"code": "THEIRS", "name": "本店", "category": "服饰", "csrf_token": token},
    )

    assert response.status_code == 409 and "门店编码已存在" in response.get_data(as_text=True)
    assert fresh(session, Store, mall["ours"]).code == "OURS"


# Staff


def test_a_store_manager_sees_and_manages_only_their_stores_staff(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, STORE_MANAGER, mall)

    listing = client.get("/console/staff").get_data(as_text=True)
    assert "adv-ours" in listing and "clerk-ours" in listing
    assert "adv-theirs" not in listing and "他店" not in listing
    assert client.get(f"/console/staff?store_id={mall['theirs']}").status_code == 403
    assert client.get(f"/console/staff/{mall['other']}/edit").status_code == 403
    refused = client.post(f"/console/staff/{mall['other']}/active", data={"active": "0", "csrf_token": token})
    assert refused.status_code == 403 and fresh(session, Staff, mall["other"]).is_active
    moved_away = client.post(
        f"/console/staff/{mall['other']}/edit",
        data={"name": "x", "role": "advisor", "store_id": str(mall["ours"]), "csrf_token": token},
    )
    assert moved_away.status_code == 403 and fresh(session, Staff, mall["other"]).store_id == mall["theirs"]


def test_a_store_managers_new_staff_join_their_store_whatever_the_form_says(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, STORE_MANAGER, mall)

    response = client.post(
        "/console/staff/new",
        data={"wecom_userid": "new-clerk", "name": "新店员", "role": "store_staff", "csrf_token": token}
        | {"store_id": str(mall["theirs"])},
    )

    assert response.status_code == 302
    created = session.scalars(select(Staff).where(Staff.wecom_userid == "new-clerk")).one()
    assert created.store_id == mall["ours"] and created.role == StaffRole.STORE_STAFF
    (row,) = audit_rows(session, "staff.create")
    assert row.target_id == str(created.id) and row.detail["store_id"] == mall["ours"]


def test_a_store_manager_changes_a_role_and_deactivates_their_staff(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, STORE_MANAGER, mall)

    promoted = client.post(
        f"/console/staff/{mall['clerk']}/edit", data={"name": "店员", "role": "advisor", "csrf_token": token}
    )
    off = client.post(f"/console/staff/{mall['clerk']}/active", data={"active": "0", "csrf_token": token})

    assert promoted.status_code == 302 and off.status_code == 302
    clerk = fresh(session, Staff, mall["clerk"])
    assert clerk.role == StaffRole.ADVISOR and not clerk.is_active and clerk.store_id == mall["ours"]
    (update_row,) = audit_rows(session, "staff.update")
    assert update_row.detail["role"] == ["store_staff", "advisor"]
    assert [row.target_id for row in audit_rows(session, "staff.deactivate")] == [str(mall["clerk"])]
    assert "已停用" in client.get("/console/staff?active=0").get_data(as_text=True)


def test_an_admin_moves_staff_between_stores_and_sees_who_wecom_cannot_reach(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    other = fresh(session, Staff, mall["other"])
    other.wecom_unreachable_since = datetime(2026, 11, 20, tzinfo=UTC)
    session.flush()
    token = sign_in(client, session, ADMIN, mall)

    listing = client.get(f"/console/staff?store_id={mall['theirs']}").get_data(as_text=True)
    response = client.post(
        f"/console/staff/{mall['other']}/edit",
        data={"name": "小王", "role": "advisor", "store_id": str(mall["ours"]), "csrf_token": token},
    )

    assert "无法触达" in listing and "adv-ours" not in listing
    assert response.status_code == 302
    assert fresh(session, Staff, mall["other"]).store_id == mall["ours"]
    (row,) = audit_rows(session, "staff.update")
    assert row.detail == {"store_id": [mall["theirs"], mall["ours"]]}


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"wecom_userid": "adv-ours"}, 409, "该企业微信账号已登记"),
        ({"store_id": ""}, 422, "店员和导购必须指定所属门店"),
        ({"role": "boss"}, 422, "岗位：可选值"),
        ({"wecom_userid": "有空格 的"}, 422, "企业微信账号：只能包含"),
        ({"store_id": "999999"}, 422, "门店不存在"),
    ],
)
def test_bad_staff_input_is_refused_on_the_form(
    client: FlaskClient,
    session: Session,
    mall: dict[str, Any],
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    token = sign_in(client, session, ADMIN, mall)
    data = {"wecom_userid": "new-adv", "name": "新导购", "role": "advisor", "store_id": str(mall["ours"])}

    response = client.post("/console/staff/new", data={**data, **fields, "csrf_token": token})

    assert response.status_code == status and message in response.get_data(as_text=True)
    assert count(session, Staff) == 4


# Advisors


def test_reassignment_moves_every_member_to_the_other_advisor(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, STORE_MANAGER, mall)
    page = client.get("/console/advisors").get_data(as_text=True)
    assert "转移导购的会员" in page and "小王" not in page

    response = client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["advisor"], "to_staff_id": mall["colleague"], "csrf_token": token},
    )

    assert response.status_code == 302
    advisors = set(session.scalars(select(Member.advisor_id).where(Member.id.in_(mall["members"]))))
    assert advisors == {mall["colleague"]}
    assert count(session, AdvisorAssignment) == 3
    (row,) = audit_rows(session, "advisor.reassign")
    assert row.target_id == str(mall["advisor"]) and row.detail == {
        "to_staff_id": mall["colleague"],
        "moved": 3,
    }
    assert "3 位会员" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_reassignment_back_to_the_pool_fills_the_stores_pool(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    scene = QrScene(kind=SceneKind.STORE, name="本店码", scene="st-pool", store_id=mall["ours"])
    session.add(scene)
    session.flush()
    for member_id in mall["members"]:
        fresh(session, Member, member_id).signup_scene_id = scene.id
    session.flush()
    token = sign_in(client, session, ADMIN, mall)

    before = client.get("/console/advisors").get_data(as_text=True)
    client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["advisor"], "to_staff_id": "", "csrf_token": token},
    )
    after = client.get("/console/advisors").get_data(as_text=True)

    assert pool_of(before, mall["ours"]) == "0" and pool_of(after, mall["ours"]) == "3"
    assert pool_of(after, mall["theirs"]) == "0"
    assert session.scalar(select(func.count()).where(Member.advisor_id.is_(None))) == 3


def pool_of(html: str, store_id: int) -> str:
    found = re.search(rf'<tr data-pool="{store_id}"><td>[^<]*</td><td>(\d+)</td>', html)
    assert found, "no pool row for the store"
    return found.group(1)


def test_a_store_manager_cannot_move_another_stores_advisor(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, STORE_MANAGER, mall)

    away = client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["advisor"], "to_staff_id": mall["other"], "csrf_token": token},
    )
    in_ = client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["other"], "to_staff_id": mall["advisor"], "csrf_token": token},
    )

    assert away.status_code == 403 and in_.status_code == 403
    assert client.get(f"/console/advisors?store_id={mall['theirs']}").status_code == 403
    assert set(session.scalars(select(Member.advisor_id))) == {mall["advisor"]}
    assert count(session, AuditEvent) == 0


def test_reassigning_to_a_clerk_is_refused_on_the_page(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    to_clerk = client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["advisor"], "to_staff_id": mall["clerk"], "csrf_token": token},
    )
    to_self = client.post(
        "/console/advisors/reassign",
        data={"from_staff_id": mall["advisor"], "to_staff_id": mall["advisor"], "csrf_token": token},
    )
    nobody = client.post("/console/advisors/reassign", data={"to_staff_id": "", "csrf_token": token})

    assert to_clerk.status_code == 422 and "不是在职导购" in to_clerk.get_data(as_text=True)
    assert to_self.status_code == 422 and "不能转给同一位导购" in to_self.get_data(as_text=True)
    assert nobody.status_code == 422 and "请选择转出导购" in nobody.get_data(as_text=True)
    assert set(session.scalars(select(Member.advisor_id))) == {mall["advisor"]}


def test_the_leaderboard_sorts_by_the_chosen_figure(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    factories.create_member(session, mall["vault"], "13900000001", mall["tier"], advisor_id=mall["other"])
    sign_in(client, session, MARKETING, mall)

    html = client.get("/console/advisors?sort=bound_members").get_data(as_text=True)

    ranked = re.findall(r'<tr data-advisor="(\d+)">', html)
    assert ranked[:2] == [str(mall["advisor"]), str(mall["other"])]
    assert "转移导购的会员" not in html  # marketing reads only
    bad = client.get("/console/advisors?sort=nonsense&from=2026-11-10&to=2026-11-01")
    assert bad.status_code == 422 and "排序：可选值" in bad.get_data(as_text=True)


def test_the_leaderboard_ranks_by_task_completion_by_default(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    rule = TaskRule(
        name="唤醒", trigger_kind=TaskTrigger.LIFECYCLE, from_stage=LifecycleStage.ACTIVE,
        to_stage=LifecycleStage.DORMANT, task_type=TaskType.WIN_BACK_DORMANT, message_template="您好",
        priority=1, cool_down_days=30, due_in_days=3,
    )  # fmt: skip
    session.add(rule)
    session.flush()
    theirs = factories.create_member(
        session, mall["vault"], "13900000002", mall["tier"], advisor_id=mall["other"]
    )
    with client.application.app_context():
        today = mall_time().today
    done_at = datetime.now(UTC)

    def task(member_id: int, advisor_id: int, done: bool) -> AdvisorTask:
        return AdvisorTask(
            business_date=today, member_id=member_id, advisor_id=advisor_id, rule_id=rule.id,
            task_type=TaskType.WIN_BACK_DORMANT, priority=1, trigger_kind=TaskTrigger.LIFECYCLE,
            trigger_value="active>dormant", due_date=today + timedelta(days=3),
            status=TaskStatus.DONE if done else TaskStatus.OPEN, completed_at=done_at if done else None,
        )  # fmt: skip

    session.add_all(
        [
            task(mall["members"][0], mall["advisor"], True),
            task(mall["members"][1], mall["advisor"], False),
            task(theirs.id, mall["other"], True),
        ]
    )
    session.commit()
    sign_in(client, session, ADMIN, mall)

    html = client.get("/console/advisors").get_data(as_text=True)

    ranked = re.findall(r'<tr data-advisor="(\d+)">', html)
    assert ranked == [str(mall["other"]), str(mall["advisor"]), str(mall["colleague"])]
    assert "100.0%" in html and "50.0%" in html and "1 / 2" in html


# QR scenes


def test_a_new_scene_lists_its_sign_ups_and_downloads_as_a_png(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    token = sign_in(client, session, MARKETING, mall)

    created = client.post(
        "/console/scenes",
        data={"kind": "advisor", "name": "小林的码", "advisor_userid": "adv-ours", "csrf_token": token},
    )
    event = client.post("/console/scenes", data={"kind": "event", "name": "双十一", "csrf_token": token})

    assert created.status_code == 302 and event.status_code == 302
    scene = session.scalars(select(QrScene).where(QrScene.name == "小林的码")).one()
    assert (scene.advisor_id, scene.store_id) == (mall["advisor"], mall["ours"])
    for n in range(2):
        factories.create_member(
            session, mall["vault"], f"1370000000{n}", mall["tier"], signup_scene_id=scene.id
        )
    html = client.get("/console/scenes").get_data(as_text=True)
    assert signups_of(html, scene.id) == "2"
    event_id = session.scalars(select(QrScene.id).where(QrScene.name == "双十一")).one()
    assert signups_of(html, event_id) == "0"
    image = client.get(f"/console/scenes/{scene.id}/image")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    rows = audit_rows(session, "qr_scene.create")
    assert [row.target_id for row in rows] == [str(scene.id), str(event_id)]
    assert rows[0].detail["advisor_id"] == mall["advisor"]


def signups_of(html: str, scene_id: int) -> str:
    found = re.search(rf'<tr data-scene="{scene_id}">.*?<td class="signups">(\d+)</td>', html, re.S)
    assert found, "no row for the scene"
    return found.group(1)


def test_a_store_manager_works_with_their_stores_scenes_only(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    theirs = QrScene(kind=SceneKind.STORE, name="他店码", scene="st-theirs", store_id=mall["theirs"])
    session.add(theirs)
    session.flush()
    token = sign_in(client, session, STORE_MANAGER, mall)

    created = client.post(
        "/console/scenes",
        data={"kind": "poster", "name": "本店海报", "store_id": str(mall["theirs"]), "csrf_token": token},
    )
    other_advisor = client.post(
        "/console/scenes",
        data={"kind": "advisor", "name": "x", "advisor_userid": "adv-theirs", "csrf_token": token},
    )

    assert created.status_code == 302
    poster = session.scalars(select(QrScene).where(QrScene.name == "本店海报")).one()
    assert poster.store_id == mall["ours"]
    assert other_advisor.status_code == 422 and "只能选择本门店的导购" in other_advisor.get_data(as_text=True)
    html = client.get("/console/scenes").get_data(as_text=True)
    assert "本店海报" in html and "他店码" not in html
    assert client.get(f"/console/scenes/{theirs.id}/image").status_code == 403
    assert client.get(f"/console/scenes/{poster.id}/image").status_code == 200
    assert count(session, QrScene) == 2


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"kind": "referral"}, 422, "推荐码由会员在小程序内分享生成"),
        ({"kind": "store"}, 422, "门店码必须指定门店"),
        ({"kind": "advisor", "advisor_userid": "clerk-ours"}, 422, "导购不存在或已停用"),
        ({"name": ""}, 422, "名称：必填"),
        ({"kind": "rocket"}, 422, "类型：可选值"),
    ],
)
def test_bad_scene_input_is_refused_on_the_page(
    client: FlaskClient,
    session: Session,
    mall: dict[str, Any],
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    token = sign_in(client, session, ADMIN, mall)

    response = client.post(
        "/console/scenes", data={"kind": "event", "name": "码", **fields, "csrf_token": token}
    )

    assert response.status_code == status and message in response.get_data(as_text=True)
    assert count(session, QrScene) == 0


# Audit log


def test_the_audit_log_filters_and_pages_through_real_console_actions(
    client: FlaskClient, session: Session, mall: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = sign_in(client, session, ADMIN, mall)
    for n in range(3):
        data = {"code": f"A{n}", "name": f"店{n}", "category": "餐饮", "csrf_token": token}
        assert client.post("/console/stores/new", data=data).status_code == 302
    for n in range(2):
        data = {"wecom_userid": f"s{n}", "name": f"员工{n}", "role": "manager", "csrf_token": token}
        assert client.post("/console/staff/new", data=data).status_code == 302
    me = session.scalars(select(Operator.id).where(Operator.username == "admin")).one()
    monkeypatch.setattr(audit, "PAGE_SIZE", 2)

    def shown(query: str) -> list[str]:
        html = client.get(f"/console/audit?{query}").get_data(as_text=True)
        return re.findall(r'<tr data-event="(\d+)">', html)

    every = [
        str(event_id) for event_id in session.scalars(select(AuditEvent.id).order_by(AuditEvent.id.desc()))
    ]
    assert len(every) == 5
    first_page = client.get("/console/audit?action=store.").get_data(as_text=True)
    assert re.findall(r'<tr data-event="(\d+)">', first_page) == every[2:4]
    assert "新建门店" in first_page and "门店 #" in first_page and "运营（admin）" in first_page
    next_link = re.search(r'href="(/console/audit\?[^"]+)">下一页', first_page)
    assert next_link and "action=store." in next_link.group(1).replace("&amp;", "&")
    second_page = client.get(next_link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'<tr data-event="(\d+)">', second_page) == every[4:]
    assert "下一页" not in second_page
    assert shown("target_type=staff") == every[:2]
    newest_staff = session.scalars(select(Staff.id).where(Staff.wecom_userid == "s1")).one()
    assert shown(f"operator_id={me}&target_type=staff&target_id={newest_staff}") == every[:1]
    assert shown(f"operator_id={me + 1000}") == []
    today = datetime.now(UTC).astimezone(extensions_tz(client)).date()
    assert shown(f"from={today}&to={today}&target_type=staff") == every[:2]
    assert shown(f"from={today + timedelta(days=1)}") == []
    assert shown(f"to={today - timedelta(days=1)}") == []


def extensions_tz(client: FlaskClient) -> Any:
    with client.application.app_context():
        return extensions().mall_tz


def test_the_audit_log_shows_who_viewed_unmasked_phones_in_mall_time(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    viewer = factories.create_operator(session, "viewer", PASSWORD, display_name="张客服")
    at = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)  # 00:30 the next day in Shanghai
    audit.record(session, operator_id=viewer.id, action="member.view_phone", target_type="member",
                 target_id=mall["members"][0], client_ip="10.0.0.8")  # fmt: skip
    session.execute(update(AuditEvent).values(at=at))
    audit.record(session, operator_id=viewer.id, action="points.adjust", target_type="member",
                 target_id=mall["members"][0], detail={"points": 100})  # fmt: skip
    session.commit()
    sign_in(client, session, AUDITOR, mall)

    page = client.get("/console/audit").get_data(as_text=True)
    assert 'href="/console/audit?action=member.view_phone"' in page
    html = client.get("/console/audit?action=member.view_phone").get_data(as_text=True)

    assert len(re.findall(r"<tr data-event=", html)) == 1
    assert "查看会员完整手机号" in html and "张客服（viewer）" in html and "10.0.0.8" in html
    with app.app_context():
        local = at.astimezone(extensions().mall_tz).strftime("%Y-%m-%d %H:%M:%S")
    assert local in html and local.startswith("2026-11-25 00:30")
    assert "调整积分" in page and "&#34;points&#34;: 100" in page


def test_unknown_actions_show_as_recorded_and_bad_filters_in_chinese(
    client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    audit.record(session, operator_id=None, action="mystery.thing", target_type="gadget", target_id=7)
    session.commit()
    sign_in(client, session, ADMIN, mall)

    html = client.get("/console/audit").get_data(as_text=True)
    bad_date = client.get("/console/audit?from=2026-13-01")
    reversed_range = client.get("/console/audit?from=2026-11-05&to=2026-11-01")
    bad_operator = client.get("/console/audit?operator_id=abc")

    assert "mystery.thing" in html and "gadget #7" in html and "系统" in html
    assert bad_date.status_code == 422 and "起始日期：日期格式应为 YYYY-MM-DD" in bad_date.get_data(
        as_text=True
    )
    assert reversed_range.status_code == 422 and "结束日期不能早于起始日期" in reversed_range.get_data(
        as_text=True
    )
    assert bad_operator.status_code == 422 and "操作人：应为整数" in bad_operator.get_data(as_text=True)


# Job runs


def test_job_runs_show_duration_outcome_counts_and_errors_filtered_by_job(
    app: Flask, client: FlaskClient, session: Session, mall: dict[str, Any]
) -> None:
    started = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
    session.add_all(
        [
            JobRun(job="send-outbox", runner="host:1:1", started_at=started,
                   finished_at=started + timedelta(seconds=42), outcome="发送 3 条",
                   counts={"sent": 3, "dead": 0}),
            JobRun(job="generate-tasks", runner="cli", started_at=started + timedelta(minutes=1),
                   finished_at=started + timedelta(minutes=3, seconds=5), error="OperationalError: gone"),
            JobRun(job="refresh-tags", runner="cli", started_at=started + timedelta(minutes=2)),
        ]
    )  # fmt: skip
    session.commit()
    sign_in(client, session, AUDITOR, mall)

    html = client.get("/console/jobs").get_data(as_text=True)
    only = client.get("/console/jobs?job=send-outbox").get_data(as_text=True)
    bad = client.get("/console/jobs?job=nonsense")

    assert len(re.findall(r"<tr data-run=", html)) == 3
    assert "42 秒" in html and "2 分 5 秒" in html and "运行中" in html
    assert "sent 3，dead 0" in html and "OperationalError: gone" in html
    with app.app_context():
        local = started.astimezone(extensions().mall_tz).strftime("%m-%d %H:%M:%S")
    assert local in html
    assert len(re.findall(r"<tr data-run=", only)) == 1 and "发送 3 条" in only
    assert bad.status_code == 422 and "任务：可选值" in bad.get_data(as_text=True)
    assert "当前没有调度进程" in html
