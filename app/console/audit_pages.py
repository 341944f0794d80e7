"""Console page: the audit log (操作日志), newest first with keyset paging, filtered by operator,
action, target and business days; its quick filter `member.view_phone` answers "who saw whose
unmasked phone". Admins and auditors only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import render_template, request

from app.console.forms import FormInvalid, day_bounds, load_form
from app.console.org_schemas import AuditFilterArgs
from app.console.pages import bp, console_page
from app.db import transaction
from app.extensions import mall_time
from app.models import AuditEvent, OperatorRole
from app.services import audit, operators

VIEW_PHONE = "member.view_phone"

# Chinese names of the actions the console and admin API record; others are shown as recorded.
ACTION_LABELS = {
    VIEW_PHONE: "查看会员完整手机号",
    "member.update": "修改会员资料",
    "points.adjust": "调整积分",
    "operator.create": "新建运营账号",
    "operator.update": "修改运营账号",
    "operator.deactivate": "停用运营账号",
    "operator.reactivate": "启用运营账号",
    "operator.reset_password": "重置运营账号密码",
    "store.create": "新建门店",
    "store.update": "修改门店",
    "staff.create": "新建员工",
    "staff.update": "修改员工",
    "staff.deactivate": "停用员工",
    "staff.reactivate": "启用员工",
    "advisor.reassign": "转移导购会员",
    "qr_scene.create": "新建注册二维码",
    "pos_terminal.create": "新建 POS 终端",
    "pos_terminal.rotate_key": "更换 POS 终端密钥",
    "pos_terminal.deactivate": "停用 POS 终端",
    "coupon_template.create": "新建券模板",
    "coupon_template.update": "修改券模板",
    "tag_rule.create": "新建标签规则",
    "tag_rule.update": "修改标签规则",
    "task_rule.create": "新建任务规则",
    "task_rule.update": "修改任务规则",
    "campaign.create": "新建发券活动",
    "import.create": "提交数据导入",
    "import.download_report": "下载导入报告",
}

TARGET_LABELS = {
    "member": "会员",
    "operator": "运营账号",
    "store": "门店",
    "staff": "员工",
    "qr_scene": "注册二维码",
    "pos_terminal": "POS 终端",
    "coupon_template": "券模板",
    "tag_rule": "标签规则",
    "task_rule": "任务规则",
    "campaign": "发券活动",
    "tier": "会员等级",
    "import_job": "导入任务",
}

FILTER_LABELS = {
    "operator_id": "操作人",
    "action": "操作",
    "target_type": "对象类型",
    "target_id": "对象编号",
    "from": "起始日期",
    "to": "结束日期",
    "before": "翻页位置",
}


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    operator: str
    action: str
    action_label: str
    target: str
    detail: str
    client_ip: str


@bp.get("/audit")
@console_page(OperatorRole.ADMIN, OperatorRole.AUDITOR)
def audit_log() -> str | tuple[str, int]:
    at = mall_time()
    try:
        args = load_form(
            AuditFilterArgs(), {k: v for k, v in request.args.items() if v.strip()}, labels=FILTER_LABELS
        )
    except FormInvalid as error:
        with transaction() as session:
            everyone = operators.list_operators(session)
        html = render_template(
            "console/audit.html", lines=[], error=error.message, args=request.args, operators=everyone
        )
        return html, error.status
    since, until = day_bounds(at, args["from_"], args["to"])
    query = audit.AuditQuery(
        operator_id=args["operator_id"],
        action_prefix=args["action"],
        target_type=args["target_type"],
        target_id=args["target_id"],
        since=since,
        until=until,
        before_id=args["before"],
        limit=audit.PAGE_SIZE + 1,  # one more tells whether there is a next page
    )
    with transaction() as session:
        found = audit.events(session, query)
        everyone = operators.list_operators(session)
        who = operators.names(session, {e.operator_id for e in found if e.operator_id is not None})
    shown, more = found[: audit.PAGE_SIZE], len(found) > audit.PAGE_SIZE
    lines = [_line(event, who, at.tz) for event in shown]
    next_args = _next_page_args(shown[-1].id) if more and shown else None
    return render_template(
        "console/audit.html",
        lines=lines,
        error=None,
        args=request.args,
        operators=everyone,
        more=next_args,
    )


def _next_page_args(last_id: int) -> dict[str, str]:
    kept = {key: value for key, value in request.args.items() if key != "before" and value}
    return {**kept, "before": str(last_id)}


def _line(event: AuditEvent, who: dict[int, str], tz: Any) -> AuditLine:
    target = TARGET_LABELS.get(event.target_type, event.target_type)
    if event.target_id:
        target = f"{target} #{event.target_id}"
    operator = who.get(event.operator_id, f"#{event.operator_id}") if event.operator_id else "系统"
    return AuditLine(
        id=event.id,
        at=event.at.astimezone(tz),
        operator=operator,
        action=event.action,
        action_label=ACTION_LABELS.get(event.action, event.action),
        target=target,
        detail=json.dumps(event.detail, ensure_ascii=False, sort_keys=True) if event.detail else "",
        client_ip=event.client_ip or "—",
    )
