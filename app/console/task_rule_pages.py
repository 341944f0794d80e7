"""Console pages for advisor task rules (任务规则): the list, create and edit forms (validated by the
admin API's schema, saved by its service, placeholders checked there), activate / deactivate, and the
generation settings (daily caps per advisor and per store pool)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app.console.forms import form_failure, integer, load_form
from app.console.pages import audit_console_action, bp, console_operator, console_page
from app.console.task_schemas import TaskRuleIn, TaskRuleOut, TaskSettingsIn, TaskSettingsOut
from app.db import run_transaction, transaction
from app.errors import DomainError
from app.models import LifecycleStage, OperatorRole
from app.models.task import TaskRule, TaskTrigger
from app.services import audit, segments, tags, task_rules

VIEW_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING, OperatorRole.AUDITOR)
CHANGE_ROLES = (OperatorRole.ADMIN, OperatorRole.MARKETING)

TRIGGER_LABELS = {
    TaskTrigger.TAG: "持有标签",
    TaskTrigger.SEGMENT: "属于人群",
    TaskTrigger.LIFECYCLE: "生命周期变化",
}
STAGE_LABELS = {
    LifecycleStage.NEW: "新会员",
    LifecycleStage.ACTIVE: "活跃",
    LifecycleStage.DORMANT: "沉睡",
    LifecycleStage.CHURNED: "流失",
}
SETTINGS_LABELS = {
    "daily_cap_per_advisor": "每位顾问每天最多任务数",
    "daily_cap_per_store_pool": "每个门店公共池每天最多任务数",
    "expire_after_overdue_days": "逾期多少天后记为已过期",
}
TEXT_FIELDS = ("name", "trigger_kind", "task_type", "message_template", "from_stage", "to_stage")
INTEGER_FIELDS = ("tag_id", "segment_id", "priority", "cool_down_days", "due_in_days")
DATE_FIELDS = ("active_from", "active_until")

NEW_RULE_STATE: dict[str, Any] = {
    "trigger_kind": TaskTrigger.TAG.value,
    "priority": "50",
    "cool_down_days": "30",
    "due_in_days": "3",
    "active": True,
}


def _form_state(form: MultiDict[str, str]) -> dict[str, Any]:
    state: dict[str, Any] = {
        name: form.get(name, "") for name in (*TEXT_FIELDS, *INTEGER_FIELDS, *DATE_FIELDS)
    }
    state["active"] = bool(form.get("active"))
    return state


def _rule_values(state: dict[str, Any]) -> task_rules.RuleValues:
    """The posted form, checked by the admin API's schema; FormInvalid says what to correct."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {name: state[name].strip() or None for name in TEXT_FIELDS}
    data.update({name: integer(state[name]) for name in INTEGER_FIELDS})
    data.update({name: state[name].strip() or None for name in DATE_FIELDS})
    trigger = data["trigger_kind"]
    # Only what the chosen trigger uses: the other selects may still hold an earlier choice.
    if trigger != TaskTrigger.TAG.value:
        data["tag_id"] = None
    if trigger != TaskTrigger.SEGMENT.value:
        data["segment_id"] = None
    if trigger != TaskTrigger.LIFECYCLE.value:
        data["from_stage"] = data["to_stage"] = None
    if trigger is None:
        errors["trigger_kind"] = "请选择触发方式"
    if data["task_type"] is None:
        errors["task_type"] = "请选择任务类型"
    data["active"] = bool(state["active"])
    payload = {name: value for name, value in data.items() if value is not None}
    return task_rules.RuleValues(**load_form(TaskRuleIn(), payload, errors=errors))


def _snapshot(rule: TaskRule) -> dict[str, Any]:
    snapshot: dict[str, Any] = TaskRuleOut().dump(rule)
    for name in ("created_at", "updated_at"):
        snapshot.pop(name, None)
    return snapshot


def _state_of(rule: TaskRule) -> dict[str, Any]:
    return {
        name: "" if value is None else str(value)
        for name, value in _snapshot(rule).items()
        if name in (*TEXT_FIELDS, *INTEGER_FIELDS, *DATE_FIELDS)
    } | {"active": rule.active}


def _render_form(
    state: dict[str, Any],
    *,
    rule: TaskRule | None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> str:
    with transaction() as session:
        tag_choices = tags.list_tags(session)
        segment_choices = segments.list_segments(session)
    return render_template(
        "console/task_rule_form.html",
        state=state,
        rule=rule,
        errors=errors or {},
        message=message,
        tags=tag_choices,
        segments=segment_choices,
        trigger_labels=TRIGGER_LABELS,
        stage_labels=STAGE_LABELS,
        task_type_names=task_rules.TASK_TYPE_NAMES,
        placeholders=task_rules.PLACEHOLDERS,
    )


def _refused(error: DomainError, rule: TaskRule | None) -> tuple[str, int]:
    invalid = form_failure(error, missing_is_invalid=True)
    page = _render_form(_form_state(request.form), rule=rule, errors=invalid.errors, message=invalid.message)
    return page, invalid.status


@bp.get("/task-rules")
@console_page(*VIEW_ROLES)
def task_rules_list() -> str:
    return _render_list()


def _render_list(
    settings_state: dict[str, Any] | None = None,
    settings_errors: dict[str, str] | None = None,
    settings_message: str | None = None,
) -> str:
    with transaction() as session:
        rules = task_rules.list_rules(session)
        tag_names = {tag.id: tag.name for tag in tags.list_tags(session)}
        segment_names = {segment.id: segment.name for segment in segments.list_segments(session)}
        current = TaskSettingsOut().dump(task_rules.settings_of(session))
    return render_template(
        "console/task_rules.html",
        rules=rules,
        tag_names=tag_names,
        segment_names=segment_names,
        settings_state=settings_state or {name: str(value) for name, value in current.items()},
        settings_errors=settings_errors or {},
        settings_message=settings_message,
        settings_labels=SETTINGS_LABELS,
        trigger_labels=TRIGGER_LABELS,
        stage_labels=STAGE_LABELS,
        task_type_names=task_rules.TASK_TYPE_NAMES,
        can_change=console_operator().role in CHANGE_ROLES,
    )


@bp.route("/task-rules/new", methods=["GET", "POST"])
@console_page(*CHANGE_ROLES)
def new_task_rule() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return _render_form(dict(NEW_RULE_STATE), rule=None)
    operator_id = console_operator().id
    try:
        values = _rule_values(_form_state(request.form))

        def create(session: Session) -> int:
            rule = task_rules.create_rule(session, values, operator_id=operator_id)
            audit_console_action(
                session, "task_rule.create", "task_rule", rule.id, {"after": _snapshot(rule)}
            )
            return rule.id

        rule_id = run_transaction(create)
    except DomainError as error:
        return _refused(error, None)
    return redirect(url_for("console.task_rules_list", saved=rule_id))


@bp.route("/task-rules/<int:rule_id>/edit", methods=["GET", "POST"])
@console_page(*CHANGE_ROLES)
def edit_task_rule(rule_id: int) -> str | Response | tuple[str, int]:
    with transaction() as session:
        rule = task_rules.get_rule(session, rule_id)
    if request.method == "GET":
        return _render_form(_state_of(rule), rule=rule)
    try:
        values = _rule_values(_form_state(request.form))

        def update(session: Session) -> None:
            before = _snapshot(task_rules.get_rule(session, rule_id))
            after = _snapshot(task_rules.update_rule(session, rule_id, values))
            audit_console_action(
                session, "task_rule.update", "task_rule", rule_id, audit.changes(before, after)
            )

        run_transaction(update)
    except DomainError as error:
        return _refused(error, rule)
    return redirect(url_for("console.task_rules_list", saved=rule_id))


def _switch(rule_id: int, *, active: bool) -> Response:
    def work(session: Session) -> None:
        before = task_rules.get_rule(session, rule_id).active
        switch = task_rules.activate_rule if active else task_rules.deactivate_rule
        rule = switch(session, rule_id)
        action = "task_rule.activate" if active else "task_rule.deactivate"
        audit_console_action(session, action, "task_rule", rule_id, {"active": [before, rule.active]})

    run_transaction(work)
    return redirect(url_for("console.task_rules_list", switched=rule_id))


@bp.post("/task-rules/<int:rule_id>/activate")
@console_page(*CHANGE_ROLES)
def activate_task_rule(rule_id: int) -> Response:
    return _switch(rule_id, active=True)


@bp.post("/task-rules/<int:rule_id>/deactivate")
@console_page(*CHANGE_ROLES)
def deactivate_task_rule(rule_id: int) -> Response:
    return _switch(rule_id, active=False)


@bp.post("/task-settings")
@console_page(*CHANGE_ROLES)
def save_task_settings() -> Response | tuple[str, int]:
    state = {name: request.form.get(name, "") for name in SETTINGS_LABELS}
    operator_id = console_operator().id
    try:
        payload = {name: value for name, raw in state.items() if (value := integer(raw)) is not None}
        values = load_form(TaskSettingsIn(), payload)

        def save(session: Session) -> None:
            before = TaskSettingsOut().dump(task_rules.settings_of(session))
            after = TaskSettingsOut().dump(task_rules.save_settings(session, values, operator_id=operator_id))
            audit_console_action(
                session, "task_settings.update", "task_settings", 1, audit.changes(before, after)
            )

        run_transaction(save)
    except DomainError as error:
        invalid = form_failure(error, missing_is_invalid=True)
        return _render_list(state, invalid.errors, invalid.message), invalid.status
    return redirect(url_for("console.task_rules_list", settings_saved=1))
