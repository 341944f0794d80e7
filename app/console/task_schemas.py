"""Request and response shapes of task rules, task settings and advisor tasks."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.console.schemas import PageArgs
from app.input_bounds import MAX_INT, date_range
from app.models import LifecycleStage
from app.models.task import TaskOutcome, TaskStatus, TaskTrigger, TaskType
from app.services.task_rules import PLACEHOLDERS, TASK_TYPE_NAMES

TEMPLATE_DESCRIPTION = "消息模板，可用占位符：" + "；".join(
    f"{{{name}}} {meaning}" for name, meaning in PLACEHOLDERS.items()
)
TASK_TYPE_DESCRIPTION = "任务类型：" + "，".join(
    f"{kind.value} {name}" for kind, name in TASK_TYPE_NAMES.items()
)


class TaskRuleIn(ma.Schema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    trigger_kind = ma.fields.Enum(
        TaskTrigger,
        by_value=True,
        required=True,
        metadata={
            "description": "触发方式：tag 持有标签，segment 属于人群，lifecycle 当天发生的生命周期变化"
        },
    )
    tag_id = ma.fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "tag 触发必填"},
    )
    segment_id = ma.fields.Integer(
        strict=True,
        load_default=None,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "segment 触发必填"},
    )
    from_stage = ma.fields.Enum(
        LifecycleStage,
        by_value=True,
        load_default=None,
        metadata={"description": "lifecycle 触发：原阶段（不填为任意阶段）"},
    )
    to_stage = ma.fields.Enum(
        LifecycleStage,
        by_value=True,
        load_default=None,
        metadata={"description": "lifecycle 触发必填：新阶段"},
    )
    task_type = ma.fields.Enum(
        TaskType, by_value=True, required=True, metadata={"description": TASK_TYPE_DESCRIPTION}
    )
    message_template = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": TEMPLATE_DESCRIPTION},
    )
    priority = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=99),
        metadata={"description": "优先级，1 最高；超出每日上限时优先保留数字小的"},
    )
    cool_down_days = ma.fields.Integer(
        strict=True,
        load_default=30,
        validate=validate.Range(min=0, max=365),
        metadata={"description": "冷却天数：同一会员同类任务在此天数内不重复生成"},
    )
    due_in_days = ma.fields.Integer(
        strict=True,
        load_default=3,
        validate=validate.Range(min=0, max=60),
        metadata={"description": "生成后 N 天到期（0 为当天）"},
    )
    active_from = ma.fields.Date(
        load_default=None,
        validate=date_range(),
        metadata={"description": "生效开始营业日（含）"},
    )
    active_until = ma.fields.Date(
        load_default=None, validate=date_range(), metadata={"description": "生效结束营业日（含）"}
    )
    active = ma.fields.Boolean(load_default=True)


class TaskRuleOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    trigger_kind = ma.fields.Enum(TaskTrigger, by_value=True)
    tag_id = ma.fields.Integer(allow_none=True)
    segment_id = ma.fields.Integer(allow_none=True)
    from_stage = ma.fields.Enum(LifecycleStage, by_value=True, allow_none=True)
    to_stage = ma.fields.Enum(LifecycleStage, by_value=True, allow_none=True)
    task_type = ma.fields.Enum(TaskType, by_value=True)
    message_template = ma.fields.String()
    priority = ma.fields.Integer()
    cool_down_days = ma.fields.Integer()
    due_in_days = ma.fields.Integer()
    active_from = ma.fields.Date(allow_none=True)
    active_until = ma.fields.Date(allow_none=True)
    active = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class TaskSettingsIn(ma.Schema):
    daily_cap_per_advisor = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "每位顾问每天最多生成的任务数"},
    )
    daily_cap_per_store_pool = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=5000),
        metadata={"description": "每个门店公共池每天最多生成的任务数"},
    )
    expire_after_overdue_days = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=0, max=365),
        metadata={"description": "逾期超过 N 天仍未完成的任务记为已过期"},
    )


class TaskSettingsOut(TaskSettingsIn):
    pass


class TaskListArgs(PageArgs):
    date = ma.fields.Date(
        load_default=None, validate=date_range(), metadata={"description": "生成任务的营业日"}
    )
    advisor_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    store_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    status = ma.fields.String(
        load_default=None,
        validate=validate.OneOf([*(status.value for status in TaskStatus), "overdue"]),
        metadata={"description": "open / done / expired，或 overdue（未完成且已过到期日）"},
    )


class AdminTaskOut(ma.Schema):
    id = ma.fields.Integer()
    business_date = ma.fields.Date(metadata={"description": "生成任务的营业日"})
    member_id = ma.fields.Integer()
    member_nickname = ma.fields.String(allow_none=True)
    member_phone_masked = ma.fields.String()
    advisor_id = ma.fields.Integer(allow_none=True, metadata={"description": "空：门店公共池"})
    advisor_name = ma.fields.String(allow_none=True)
    store_id = ma.fields.Integer(allow_none=True)
    rule_id = ma.fields.Integer()
    task_type = ma.fields.Enum(TaskType, by_value=True)
    priority = ma.fields.Integer()
    trigger_kind = ma.fields.Enum(TaskTrigger, by_value=True)
    trigger_value = ma.fields.String(
        metadata={
            "description": "生成原因：标签编码、人群（id:名称）或生命周期变化（原阶段>新阶段，* 为任意）"
        }
    )
    due_date = ma.fields.Date()
    status = ma.fields.Enum(TaskStatus, by_value=True)
    overdue = ma.fields.Boolean(metadata={"description": "未完成且已过到期日"})
    outcome = ma.fields.Enum(TaskOutcome, by_value=True, allow_none=True)
    note = ma.fields.String(allow_none=True)
    completed_at = ma.fields.AwareDateTime(allow_none=True)
    completed_by_staff_id = ma.fields.Integer(allow_none=True)


class TaskPageOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AdminTaskOut))
    total = ma.fields.Integer(metadata={"description": "符合条件的任务总数"})
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()


def task_row_out(row: Any, overdue: bool) -> dict[str, Any]:
    """A (task, nickname, phone_masked, advisor_name) row in the shape of AdminTaskOut."""
    task = row.AdvisorTask
    fields = {name: getattr(task, name) for name in AdminTaskOut._declared_fields if hasattr(task, name)}
    return {
        **fields,
        "member_nickname": row.nickname,
        "member_phone_masked": row.phone_masked,
        "advisor_name": row.advisor_name,
        "overdue": overdue,
    }
