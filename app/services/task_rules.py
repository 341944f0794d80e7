"""Task rules (任务规则): which members get which advisor task, and the generation settings.

A rule has one trigger: a tag the member holds, a saved segment the member is in, or a lifecycle
transition recorded on the business day. Its message template may use the placeholders in
`PLACEHOLDERS` (written in braces, e.g. `{会员昵称}`); anything else in braces is refused on save.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, NotFound
from app.models import LifecycleStage, Segment, Tag
from app.models.task import TaskRule, TaskSettings, TaskTrigger, TaskType
from app.services.singletons import replace_settings

# Placeholder → what it stands for (rendered by app.services.tasks.render_message).
PLACEHOLDERS: dict[str, str] = {
    "会员昵称": "会员的微信昵称（没有时为“会员”）",
    "等级": "会员当前等级名称",
    "积分": "会员当前可用积分",
    "顾问": "任务所属顾问的姓名（门店公共池任务为“您的专属顾问”）",
    "门店": "会员注册门店名称",
    "生日": "会员生日（如 3月8日）",
    "到期日": "任务到期日（如 11月30日）",
}
_BRACED = re.compile(r"\{([^{}]*)\}")

TASK_TYPE_NAMES = {
    TaskType.BIRTHDAY_GREETING: "生日祝福",
    TaskType.WIN_BACK_DORMANT: "唤醒沉睡会员",
    TaskType.VIP_INVITATION: "VIP 邀约",
    TaskType.COUPON_EXPIRING_REMINDER: "优惠券到期提醒",
    TaskType.NEW_MEMBER_WELCOME: "新会员欢迎",
    TaskType.POST_PURCHASE_FOLLOW_UP: "购后回访",
}


class InvalidTaskRule(DomainError):
    code, status, message = "INVALID_TASK_RULE", 422, "任务规则有误"


class TaskRuleNameTaken(Conflict):
    code, message = "TASK_RULE_NAME_TAKEN", "任务规则名称已存在"


@dataclass(frozen=True)
class RuleValues:
    """Everything an operator sets on a rule (create and update take the whole of it)."""

    name: str
    trigger_kind: TaskTrigger
    task_type: TaskType
    message_template: str
    priority: int
    cool_down_days: int
    due_in_days: int
    tag_id: int | None = None
    segment_id: int | None = None
    from_stage: LifecycleStage | None = None
    to_stage: LifecycleStage | None = None
    active_from: date | None = None
    active_until: date | None = None
    active: bool = True


def placeholders_in(template: str) -> list[str]:
    """The placeholder names a template uses, in order of first use."""
    return list(dict.fromkeys(_BRACED.findall(template)))


def check_template(template: str) -> None:
    """Refuse unknown placeholders (naming the first) and stray braces."""
    for name in placeholders_in(template):
        if name not in PLACEHOLDERS:
            raise InvalidTaskRule(
                f"消息模板中有未知占位符：{{{name}}}",
                details={
                    "field": "message_template",
                    "placeholder": name,
                    "allowed": [f"{{{known}}}" for known in PLACEHOLDERS],
                },
            )
    if "{" in _BRACED.sub("", template) or "}" in _BRACED.sub("", template):
        raise InvalidTaskRule(
            "消息模板中的花括号不成对", details={"field": "message_template", "problem": "花括号不成对"}
        )


def create_rule(session: Session, values: RuleValues, *, operator_id: int | None) -> TaskRule:
    rule = TaskRule(created_by_operator_id=operator_id)
    _apply(session, rule, values)
    session.add(rule)
    _flush_named(session, values.name)
    return rule


def update_rule(session: Session, rule_id: int, values: RuleValues) -> TaskRule:
    """Replace the rule's settings; tasks already generated keep what they recorded."""
    rule = get_rule(session, rule_id)
    _apply(session, rule, values)
    _flush_named(session, values.name)
    return rule


def deactivate_rule(session: Session, rule_id: int) -> TaskRule:
    """Stop generating tasks from the rule (idempotent); it stays, as its tasks refer to it."""
    rule = get_rule(session, rule_id)
    rule.active = False
    session.flush()
    return rule


def activate_rule(session: Session, rule_id: int) -> TaskRule:
    """Generate tasks from the rule again, from the next generation (idempotent)."""
    rule = get_rule(session, rule_id)
    rule.active = True
    session.flush()
    return rule


def get_rule(session: Session, rule_id: int) -> TaskRule:
    rule = session.get(TaskRule, rule_id)
    if rule is None:
        raise NotFound("任务规则不存在")
    return rule


def list_rules(session: Session) -> list[TaskRule]:
    return list(session.scalars(select(TaskRule).order_by(TaskRule.priority, TaskRule.id)))


def active_rules(session: Session, day: date) -> list[TaskRule]:
    """The rules that generate tasks on business day `day`."""
    return list(
        session.scalars(
            select(TaskRule)
            .where(
                TaskRule.active.is_(True),
                (TaskRule.active_from.is_(None)) | (TaskRule.active_from <= day),
                (TaskRule.active_until.is_(None)) | (TaskRule.active_until >= day),
            )
            .order_by(TaskRule.priority, TaskRule.id)
        )
    )


def _apply(session: Session, rule: TaskRule, values: RuleValues) -> None:
    check_template(values.message_template)
    if values.active_from and values.active_until and values.active_from > values.active_until:
        raise InvalidTaskRule(
            "生效开始日期不能晚于结束日期", details={"field": "active_until", "problem": "早于开始日期"}
        )
    tag_id = segment_id = None
    from_stage = to_stage = None
    if values.trigger_kind is TaskTrigger.TAG:
        if values.tag_id is None or session.get(Tag, values.tag_id) is None:
            raise InvalidTaskRule("标签不存在", details={"field": "tag_id", "problem": "标签不存在"})
        tag_id = values.tag_id
    elif values.trigger_kind is TaskTrigger.SEGMENT:
        if values.segment_id is None or session.get(Segment, values.segment_id) is None:
            raise InvalidTaskRule("人群不存在", details={"field": "segment_id", "problem": "人群不存在"})
        segment_id = values.segment_id
    else:
        if values.to_stage is None:
            raise InvalidTaskRule(
                "生命周期触发需要目标阶段", details={"field": "to_stage", "problem": "必填"}
            )
        if values.from_stage == values.to_stage:
            raise InvalidTaskRule(
                "起始阶段与目标阶段不能相同", details={"field": "from_stage", "problem": "与目标阶段相同"}
            )
        from_stage, to_stage = values.from_stage, values.to_stage
    rule.name = values.name
    rule.trigger_kind = values.trigger_kind
    rule.tag_id, rule.segment_id = tag_id, segment_id
    rule.from_stage, rule.to_stage = from_stage, to_stage
    rule.task_type = values.task_type
    rule.message_template = values.message_template
    rule.priority = values.priority
    rule.cool_down_days = values.cool_down_days
    rule.due_in_days = values.due_in_days
    rule.active_from, rule.active_until = values.active_from, values.active_until
    rule.active = values.active


def _flush_named(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise TaskRuleNameTaken(details={"name": name}) from exc


# --- settings ---------------------------------------------------------------------------------------


def settings_of(session: Session) -> TaskSettings:
    return session.get(TaskSettings, 1) or TaskSettings.with_defaults()


def save_settings(session: Session, values: dict[str, Any], *, operator_id: int | None) -> TaskSettings:
    """Replace the settings (they apply from the next generation)."""
    return replace_settings(session, TaskSettings, values, operator_id=operator_id)
