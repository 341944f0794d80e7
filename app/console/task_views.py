"""Advisor task rules, generation settings and the generated tasks, for operators."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.task_schemas import (
    TaskListArgs,
    TaskPageOut,
    TaskRuleIn,
    TaskRuleOut,
    TaskSettingsIn,
    TaskSettingsOut,
    task_row_out,
)
from app.db import run_transaction, transaction
from app.errors import NotFound, raises
from app.extensions import mall_time
from app.models.task import TaskRule, TaskSettings, TaskStatus
from app.services import task_rules, tasks

blp = Blueprint("admin_task_views", __name__, url_prefix="/api/admin/v1", description="运营后台：导购任务")


@blp.route("/task-rules", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TaskRuleOut(many=True))
def list_task_rules() -> list[TaskRule]:
    """全部任务规则（按优先级）"""
    with transaction() as session:
        return task_rules.list_rules(session)


@blp.route("/task-rules", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TaskRuleIn())
@blp.response(201, TaskRuleOut)
@raises(task_rules.TaskRuleNameTaken, task_rules.InvalidTaskRule)
def create_task_rule(args: dict[str, Any]) -> TaskRule:
    """新建任务规则：标签、人群或生命周期变化 → 任务类型；从下一次任务生成（每天 07:30）起生效"""
    values, operator_id = task_rules.RuleValues(**args), current_operator().id
    return run_transaction(lambda session: task_rules.create_rule(session, values, operator_id=operator_id))


@blp.route("/task-rules/<int:rule_id>", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TaskRuleOut)
@raises(NotFound)
def get_task_rule(rule_id: int) -> TaskRule:
    """任务规则详情"""
    with transaction() as session:
        return task_rules.get_rule(session, rule_id)


@blp.route("/task-rules/<int:rule_id>", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TaskRuleIn())
@blp.response(200, TaskRuleOut)
@raises(NotFound, task_rules.TaskRuleNameTaken, task_rules.InvalidTaskRule)
def update_task_rule(args: dict[str, Any], rule_id: int) -> TaskRule:
    """修改任务规则（需提交全部字段）；已生成的任务保留生成时的记录"""
    values = task_rules.RuleValues(**args)
    return run_transaction(lambda session: task_rules.update_rule(session, rule_id, values))


@blp.route("/task-rules/<int:rule_id>/deactivate", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TaskRuleOut)
@raises(NotFound)
def deactivate_task_rule(rule_id: int) -> TaskRule:
    """停用任务规则（不再生成任务；已生成的任务不受影响）"""
    return run_transaction(lambda session: task_rules.deactivate_rule(session, rule_id))


@blp.route("/task-settings", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, TaskSettingsOut)
def get_task_settings() -> TaskSettings:
    """任务生成设置：每位顾问、每个门店公共池的每日上限，逾期多久记为过期"""
    with transaction() as session:
        return task_rules.settings_of(session)


@blp.route("/task-settings", methods=["PUT"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TaskSettingsIn())
@blp.response(200, TaskSettingsOut)
def put_task_settings(args: dict[str, Any]) -> TaskSettings:
    """修改任务生成设置（下次生成时生效）"""
    operator_id = current_operator().id
    return run_transaction(lambda session: task_rules.save_settings(session, args, operator_id=operator_id))


@blp.route("/tasks", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(TaskListArgs(), location="query")
@blp.response(200, TaskPageOut)
def list_tasks(args: dict[str, Any]) -> dict[str, Any]:
    """已生成的导购任务（新的营业日在前，同日按优先级），可按营业日、顾问、门店、状态筛选"""
    today = mall_time().today
    status = args["status"]
    filters = tasks.TaskFilter(
        business_date=args["date"],
        advisor_id=args["advisor_id"],
        store_id=args["store_id"],
        status=TaskStatus(status) if status and status != "overdue" else None,
        overdue_on=today if status == "overdue" else None,
    )
    with transaction() as session:
        rows, total = tasks.task_page(
            session, filters, offset=(args["page"] - 1) * args["per_page"], limit=args["per_page"]
        )
    return {
        "items": [task_row_out(row, tasks.is_overdue(row.AdvisorTask, today)) for row in rows],
        "total": total,
        "page": args["page"],
        "per_page": args["per_page"],
    }
