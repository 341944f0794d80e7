"""Operators set task rules and settings and read generated tasks over HTTP; generation runs as the
CLI and the scheduler run it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import jobs
from app.extensions import extensions
from app.models import MemberTag, QrScene, SceneKind, StaffRole, Tag, TagKind, TagSource
from tests import factories
from tests.flows import bearer, operator_login

API = "/api/admin/v1"


@pytest.fixture
def mall(app: Flask, session: Session) -> dict[str, Any]:
    with app.app_context():
        vault = extensions().phone_vault
    tiers = factories.create_tiers(session)
    store = factories.create_store(session, name="优衣库")
    scene = QrScene(kind=SceneKind.STORE, name="优衣库", scene="store-uniqlo", store_id=store.id)
    session.add(scene)
    session.flush()
    ann = factories.create_staff(session, "ann", StaffRole.ADVISOR, name="安", store_id=store.id)
    factories.create_operator(session, "ops", "correct-horse")
    vip = Tag(code="vip", name="VIP", kind=TagKind.MANUAL)
    session.add(vip)
    session.flush()
    members = [
        factories.create_member(session, vault, "13800138001", tiers[0], nickname="甲", advisor_id=ann.id),
        factories.create_member(session, vault, "13800138002", tiers[0], nickname="乙", advisor_id=ann.id),
        factories.create_member(session, vault, "13800138003", tiers[0], signup_scene_id=scene.id),
    ]
    for member in members:
        session.add(MemberTag(member_id=member.id, tag_id=vip.id, source=TagSource.MANUAL))
    session.flush()
    return {"store": store, "ann": ann, "vip": vip, "members": members}


@pytest.fixture
def admin(client: FlaskClient, mall: dict) -> dict[str, str]:
    return bearer(operator_login(client))


def rule_body(mall: dict, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "VIP 邀约",
        "trigger_kind": "tag",
        "tag_id": mall["vip"].id,
        "task_type": "vip_invitation",
        "message_template": "{会员昵称}您好，我是您的顾问{顾问}，本周末有 VIP 专场",
        "priority": 2,
        "cool_down_days": 14,
        "due_in_days": 2,
        **overrides,
    }


def generate(app: Flask, day: str) -> str:
    result = app.test_cli_runner().invoke(args=["tasks", "generate", "--date", day, "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    return result.output


def test_operators_create_read_update_and_deactivate_a_rule(
    client: FlaskClient, admin: dict, mall: dict
) -> None:
    created = client.post(f"{API}/task-rules", json=rule_body(mall), headers=admin)
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()

    updated = client.put(
        f"{API}/task-rules/{rule['id']}",
        json=rule_body(mall, priority=1, active_until="2026-12-31"),
        headers=admin,
    )
    deactivated = client.post(f"{API}/task-rules/{rule['id']}/deactivate", headers=admin)
    listed = client.get(f"{API}/task-rules", headers=admin).get_json()
    fetched = client.get(f"{API}/task-rules/{rule['id']}", headers=admin).get_json()

    assert (rule["trigger_kind"], rule["tag_id"], rule["active"]) == ("tag", mall["vip"].id, True)
    assert (updated.status_code, updated.get_json()["priority"]) == (200, 1)
    assert deactivated.get_json()["active"] is False
    assert [item["id"] for item in listed] == [rule["id"]]
    assert (fetched["active"], fetched["active_until"], fetched["cool_down_days"]) == (
        False,
        "2026-12-31",
        14,
    )


def test_an_unknown_placeholder_is_a_422_naming_it(client: FlaskClient, admin: dict, mall: dict) -> None:
    response = client.post(
        f"{API}/task-rules",
        json=rule_body(mall, message_template="{会员昵称}，{优惠券}快到期了"),
        headers=admin,
    )

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "INVALID_TASK_RULE"
    assert body["message"] == "消息模板中有未知占位符：{优惠券}"
    assert body["details"]["placeholder"] == "优惠券"
    assert "{会员昵称}" in body["details"]["allowed"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"tag_id": 9999}, "tag_id", "标签不存在"),
        ({"trigger_kind": "segment", "tag_id": None}, "segment_id", "人群不存在"),
        ({"trigger_kind": "lifecycle", "from_stage": "active"}, "to_stage", "生命周期触发需要目标阶段"),
        (
            {"active_from": "2026-12-01", "active_until": "2026-11-01"},
            "active_until",
            "生效开始日期不能晚于结束日期",
        ),
    ],
)
def test_a_rule_that_cannot_work_is_a_422_in_chinese(
    client: FlaskClient, admin: dict, mall: dict, overrides: dict, field: str, message: str
) -> None:
    response = client.post(f"{API}/task-rules", json=rule_body(mall, **overrides), headers=admin)

    assert response.status_code == 422
    assert response.get_json()["message"] == message
    assert response.get_json()["details"]["field"] == field


def test_malformed_fields_are_a_422_per_field_and_a_taken_name_a_409(
    client: FlaskClient, admin: dict, mall: dict
) -> None:
    malformed = client.post(
        f"{API}/task-rules",
        json=rule_body(mall, priority=0, task_type="hug", cool_down_days="x"),
        headers=admin,
    )
    client.post(f"{API}/task-rules", json=rule_body(mall), headers=admin)
    taken = client.post(f"{API}/task-rules", json=rule_body(mall), headers=admin)
    missing = client.get(f"{API}/task-rules/9999", headers=admin)

    assert malformed.status_code == 422
    details = malformed.get_json()["details"]
    assert details["priority"] == ["应在 1 到 99 之间"]
    assert details["cool_down_days"] == ["应为整数"]
    assert details["task_type"][0].startswith("可选值：birthday_greeting")
    assert (taken.status_code, taken.get_json()["code"]) == (409, "TASK_RULE_NAME_TAKEN")
    assert (missing.status_code, missing.get_json()["message"]) == (404, "任务规则不存在")


def test_settings_default_to_a_cap_of_30_and_can_be_changed(client: FlaskClient, admin: dict) -> None:
    defaults = client.get(f"{API}/task-settings", headers=admin).get_json()
    saved = client.put(
        f"{API}/task-settings",
        json={"daily_cap_per_advisor": 1, "daily_cap_per_store_pool": 5, "expire_after_overdue_days": 3},
        headers=admin,
    )
    refused = client.put(
        f"{API}/task-settings",
        json={"daily_cap_per_advisor": 0, "daily_cap_per_store_pool": 5, "expire_after_overdue_days": 3},
        headers=admin,
    )

    assert defaults == {
        "daily_cap_per_advisor": 30,
        "daily_cap_per_store_pool": 30,
        "expire_after_overdue_days": 7,
    }
    assert saved.status_code == 200
    assert client.get(f"{API}/task-settings", headers=admin).get_json()["daily_cap_per_advisor"] == 1
    assert refused.status_code == 422 and refused.get_json()["details"]["daily_cap_per_advisor"]


def test_generated_tasks_are_listed_with_filters_and_pages(
    app: Flask, client: FlaskClient, admin: dict, mall: dict
) -> None:
    rule_id = client.post(f"{API}/task-rules", json=rule_body(mall), headers=admin).get_json()["id"]

    output = generate(app, "2026-06-15")
    again = generate(app, "2026-06-15")
    everything = client.get(f"{API}/tasks?date=2026-06-15", headers=admin).get_json()
    anns = client.get(f"{API}/tasks?advisor_id={mall['ann'].id}&per_page=1&page=2", headers=admin).get_json()
    store = client.get(f"{API}/tasks?store_id={mall['store'].id}&status=open", headers=admin).get_json()
    overdue = client.get(f"{API}/tasks?status=overdue", headers=admin).get_json()
    none_done = client.get(f"{API}/tasks?status=done", headers=admin).get_json()
    bad = client.get(f"{API}/tasks?status=later&date=tomorrow", headers=admin)

    assert "candidates" in output and "assign" in output and "3 tasks from 1 active rules" in output
    assert "0 tasks" in again
    assert everything["total"] == 3
    first = everything["items"][0]
    assert (first["rule_id"], first["trigger_kind"], first["trigger_value"]) == (rule_id, "tag", "vip")
    assert (first["due_date"], first["status"], first["overdue"]) == ("2026-06-17", "open", True)
    assert first["member_phone_masked"].startswith("138****")
    assert (anns["total"], len(anns["items"]), anns["page"]) == (2, 1, 2)
    assert anns["items"][0]["advisor_name"] == "安"
    pool = [item for item in store["items"] if item["advisor_id"] is None]
    # Ann's members signed up without a store: their tasks carry Ann's store.
    assert store["total"] == 3 and [item["member_id"] for item in pool] == [mall["members"][2].id]
    assert overdue["total"] == 3 and none_done["total"] == 0
    assert bad.status_code == 422
    assert set(bad.get_json()["details"]) == {"status", "date"}
    assert bad.get_json()["details"]["date"] == ["日期格式应为 YYYY-MM-DD"]


def test_task_generation_is_a_scheduled_job_after_the_nightly_tags(
    app: Flask, client: FlaskClient, admin: dict, mall: dict
) -> None:
    client.post(f"{API}/task-rules", json=rule_body(mall), headers=admin)

    result = app.test_cli_runner().invoke(args=["jobs", "run", "generate-tasks"])

    assert result.exit_code == 0, result.output
    assert "generated 3 tasks" in result.output
    assert jobs.JOBS["generate-tasks"].schedule == {"hour": "7", "minute": "30"}
    assert int(jobs.JOBS["refresh-tags"].schedule["hour"]) < 7


def test_the_openapi_spec_documents_the_task_endpoints(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    assert {"get", "post"} <= set(spec["paths"]["/api/admin/v1/task-rules"])
    assert "/api/admin/v1/tasks" in spec["paths"]
    template = spec["components"]["schemas"]["TaskRuleIn"]["properties"]["message_template"]
    assert "{会员昵称}" in template["description"]
