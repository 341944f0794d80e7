"""Console advisor task rules: list, create and edit (placeholders checked, Chinese errors, nothing saved
when refused), activate / deactivate, the generation settings; who may do what; the audit trail."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, OperatorRole, Tag, TagKind
from app.models.task import TaskRule, TaskSettings, TaskTrigger, TaskType
from tests.app.console.console_flows import signed_in

RULE_FORM = {
    "name": "生日问候",
    "trigger_kind": "tag",
    "task_type": "birthday_greeting",
    "message_template": "{会员昵称}您好，生日快乐！{顾问}为您准备了生日礼券。",
    "priority": "10",
    "cool_down_days": "30",
    "due_in_days": "3",
    "active": "1",
}


@pytest.fixture
def tag(session: Session) -> Tag:
    found = Tag(code="birthday-7d", name="7天内生日", kind=TagKind.MANUAL)
    session.add(found)
    session.flush()
    return found


def post(client: FlaskClient, path: str, token: str, form: dict[str, Any] | None = None) -> Any:
    return client.post(path, data={**(form or {}), "csrf_token": token})


def audits(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def rule_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(TaskRule)) or 0)


def field_error(html: str, field: str) -> str:
    found = re.search(rf'data-field="{field}">([^<]*)<', html)
    assert found, f"no error shown for {field}"
    return found.group(1)


@pytest.mark.parametrize("path", ["/console/task-rules", "/console/task-rules/new"])
def test_strangers_are_sent_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 302 and "/console/login" in response.headers["Location"]


def test_a_store_manager_is_refused_and_an_auditor_only_reads(
    client: FlaskClient, session: Session, tag: Tag
) -> None:
    manager_client = client.application.test_client()
    manager_token = signed_in(manager_client, session, OperatorRole.STORE_MANAGER)
    token = signed_in(client, session, OperatorRole.AUDITOR)

    manager_list = manager_client.get("/console/task-rules")
    manager_post = post(
        manager_client, "/console/task-rules/new", manager_token, {**RULE_FORM, "tag_id": tag.id}
    )
    listing = client.get("/console/task-rules")
    auditor_post = post(client, "/console/task-rules/new", token, {**RULE_FORM, "tag_id": tag.id})
    auditor_settings = post(client, "/console/task-settings", token, {"daily_cap_per_advisor": "5"})

    assert (manager_list.status_code, manager_post.status_code) == (403, 403)
    assert listing.status_code == 200 and "新建任务规则" not in listing.get_data(as_text=True)
    assert (auditor_post.status_code, auditor_settings.status_code) == (403, 403)
    assert rule_count(session) == 0
    assert session.get(TaskSettings, 1) is None


def test_a_rule_is_created_listed_and_audited(client: FlaskClient, session: Session, tag: Tag) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    form = client.get("/console/task-rules/new").get_data(as_text=True)

    created = post(
        client, "/console/task-rules/new", token, {**RULE_FORM, "tag_id": tag.id, "to_stage": "dormant"}
    )

    assert "{会员昵称}" in form and "7天内生日" in form
    assert created.status_code == 302
    rule = session.scalars(select(TaskRule)).one()
    assert (rule.name, rule.trigger_kind, rule.tag_id, rule.task_type) == (
        "生日问候",
        TaskTrigger.TAG,
        tag.id,
        TaskType.BIRTHDAY_GREETING,
    )
    assert rule.to_stage is None  # another trigger's field, left from an earlier choice: ignored
    assert (rule.priority, rule.cool_down_days, rule.due_in_days, rule.active) == (10, 30, 3, True)
    listing = client.get("/console/task-rules").get_data(as_text=True)
    assert "持有标签：7天内生日" in listing and "生日祝福" in listing
    (row,) = audits(session, "task_rule.create")
    assert (
        row.target_id == str(rule.id)
        and row.detail["after"]["message_template"] == RULE_FORM["message_template"]
    )


def test_an_unknown_placeholder_is_refused_on_the_form_and_nothing_saved(
    client: FlaskClient, session: Session, tag: Tag
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    form = {**RULE_FORM, "tag_id": tag.id, "message_template": "{昵称}您好"}

    response = post(client, "/console/task-rules/new", token, form)
    braces = post(client, "/console/task-rules/new", token, {**form, "message_template": "{会员昵称 您好"})

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "message_template") == "消息模板中有未知占位符：{昵称}"
    assert "{昵称}您好" in html  # kept as typed
    assert braces.status_code == 422
    assert field_error(braces.get_data(as_text=True), "message_template") == "消息模板中的花括号不成对"
    assert rule_count(session) == 0 and audits(session, "task_rule.create") == []


def test_schema_errors_are_shown_in_chinese(client: FlaskClient, session: Session) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)
    form = {**RULE_FORM, "name": "", "priority": "0", "due_in_days": "x", "trigger_kind": "", "task_type": ""}

    response = post(client, "/console/task-rules/new", token, form)
    no_tag = post(client, "/console/task-rules/new", token, RULE_FORM)

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "name") == "必填"
    assert field_error(html, "priority") == "应在 1 到 99 之间"
    assert field_error(html, "due_in_days") == "应为整数"
    assert field_error(html, "trigger_kind") == "请选择触发方式"
    assert field_error(html, "task_type") == "请选择任务类型"
    assert no_tag.status_code == 422 and field_error(no_tag.get_data(as_text=True), "tag_id") == "标签不存在"
    assert rule_count(session) == 0


def test_an_edit_and_deactivate_then_activate_are_audited(
    client: FlaskClient, session: Session, tag: Tag
) -> None:
    token = signed_in(client, session, OperatorRole.MARKETING)
    post(client, "/console/task-rules/new", token, {**RULE_FORM, "tag_id": tag.id})
    rule = session.scalars(select(TaskRule)).one()
    edit_form = client.get(f"/console/task-rules/{rule.id}/edit").get_data(as_text=True)

    edited = post(
        client,
        f"/console/task-rules/{rule.id}/edit",
        token,
        {**RULE_FORM, "trigger_kind": "lifecycle", "to_stage": "dormant", "priority": "5", "tag_id": tag.id},
    )
    off = post(client, f"/console/task-rules/{rule.id}/deactivate", token)
    off_state = session.get_one(TaskRule, rule.id, populate_existing=True).active
    on = post(client, f"/console/task-rules/{rule.id}/activate", token)

    assert 'value="生日问候"' in edit_form and 'value="10"' in edit_form
    assert (edited.status_code, off.status_code, on.status_code) == (302, 302, 302)
    stored = session.get_one(TaskRule, rule.id, populate_existing=True)
    assert (stored.trigger_kind, stored.tag_id, stored.to_stage, stored.priority) == (
        TaskTrigger.LIFECYCLE,
        None,
        "dormant",
        5,
    )
    assert (off_state, stored.active) == (False, True)
    (update,) = audits(session, "task_rule.update")
    assert update.detail["priority"] == [10, 5] and update.detail["tag_id"] == [tag.id, None]
    assert [row.detail for row in audits(session, "task_rule.deactivate")] == [{"active": [True, False]}]
    assert [row.detail for row in audits(session, "task_rule.activate")] == [{"active": [False, True]}]


def test_task_settings_are_saved_audited_and_checked(client: FlaskClient, session: Session) -> None:
    token = signed_in(client, session, OperatorRole.ADMIN)
    caps = {"daily_cap_per_advisor": "12", "daily_cap_per_store_pool": "40", "expire_after_overdue_days": "7"}

    saved = post(client, "/console/task-settings", token, caps)
    refused = post(client, "/console/task-settings", token, {**caps, "daily_cap_per_advisor": "0"})

    assert saved.status_code == 302
    stored = session.get_one(TaskSettings, 1, populate_existing=True)
    assert (stored.daily_cap_per_advisor, stored.daily_cap_per_store_pool) == (12, 40)
    (row,) = audits(session, "task_settings.update")
    assert row.detail == {"daily_cap_per_advisor": [30, 12], "daily_cap_per_store_pool": [30, 40]}
    assert refused.status_code == 422
    assert field_error(refused.get_data(as_text=True), "daily_cap_per_advisor") == "应在 1 到 500 之间"
    assert session.get_one(TaskSettings, 1, populate_existing=True).daily_cap_per_advisor == 12
    assert 'value="12"' in client.get("/console/task-rules").get_data(as_text=True)
