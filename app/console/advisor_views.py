"""Advisors for operators: 联系我 QR codes, reassigning a leaving advisor's members, history."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.advisor_schemas import (
    AdvisorKpiArgs,
    AdvisorKpisOut,
    AssignmentOut,
    ContactWayOut,
    ReassignIn,
    ReassignOut,
)
from app.db import report_transaction, run_transaction, transaction, utcnow
from app.errors import NotFound, ValidationFailed, raises
from app.extensions import extensions, mall_time
from app.integrations import wechat_client
from app.models import AdvisorAssignment, AdvisorContactWay
from app.services import advisor_kpis, advisors

blp = Blueprint(
    "admin_advisors", __name__, url_prefix="/api/admin/v1", description="运营后台：导购与会员绑定"
)


@blp.route("/advisors/<int:staff_id>/contact-way", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(201, ContactWayOut, description="新建的联系我二维码")
@blp.alt_response(200, schema=ContactWayOut, description="该导购已有联系我二维码：原样返回")
@raises(NotFound, advisors.NotAnAdvisor, wechat_client.WeComUnavailable)
def create_contact_way(staff_id: int) -> tuple[AdvisorContactWay, int]:
    """为导购创建企业微信「联系我」二维码（每位导购一个）；客户扫码添加后自动绑定为其专属顾问"""
    wecom = extensions().wecom
    contact_way, created = run_transaction(
        lambda session: advisors.ensure_contact_way(session, wecom, staff_id)
    )
    return contact_way, 201 if created else 200


@blp.route("/advisor-contact-ways", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, ContactWayOut(many=True))
def list_contact_ways() -> list[AdvisorContactWay]:
    """全部导购的联系我二维码"""
    with transaction() as session:
        return advisors.list_contact_ways(session)


@blp.route("/advisors/<int:staff_id>/reassign", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(ReassignIn())
@blp.response(200, ReassignOut)
@raises(NotFound, advisors.NotAnAdvisor, ValidationFailed)
def reassign(args: dict[str, Any], staff_id: int) -> dict[str, int]:
    """导购离职或调岗：把其全部会员转给另一位导购，或退回门店待认领池；保留绑定历史并记录操作人"""
    operator_id, at = current_operator().id, utcnow()
    moved = run_transaction(
        lambda session: advisors.reassign_members(session, staff_id, args["to_staff_id"], operator_id, at=at)
    )
    return {"moved": moved}


@blp.route("/members/<int:member_id>/advisor-assignments", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, AssignmentOut(many=True))
def assignment_history(member_id: int) -> list[AdvisorAssignment]:
    """会员的专属顾问变更历史（最早的在前）"""
    with transaction() as session:
        return advisors.assignment_history(session, member_id)


@blp.route("/advisor-kpis", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(AdvisorKpiArgs(), location="query")
@blp.response(200, AdvisorKpisOut)
def kpis(args: dict[str, Any]) -> dict[str, Any]:
    """导购绩效：绑定会员、任务生成/完成/逾期、完成率、转化（完成任务后 7 天内消费的会员与金额）、
    通过导购二维码注册的新会员；按导购和门店汇总"""
    at = mall_time()
    with report_transaction() as session:
        per_advisor, per_store = advisor_kpis.advisor_kpis(
            session, args["from_"], args["to"], store_id=args["store_id"], at=at
        )
    return {"advisors": per_advisor, "stores": per_store}
