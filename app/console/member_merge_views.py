"""Admin API: merging two members (会员合并), the same service as the console's merge page."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.member_schemas import MemberMergeIn, MemberMergeOut
from app.db import run_transaction
from app.errors import NotFound, raises
from app.extensions import mall_time
from app.services import member_merge

blp = Blueprint(
    "admin_member_merge_views", __name__, url_prefix="/api/admin/v1", description="运营后台：会员合并"
)


@blp.route("/members/<int:member_id>/merge", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(MemberMergeIn())
@blp.response(200, MemberMergeOut)
@blp.alt_response(409, description="任一会员已被合并，或有未完成的停车缴费（MEMBER_MERGE_REFUSED）")
@blp.alt_response(422, description="与自己合并（MEMBER_MERGE_SAME）或参数有误")
@raises(NotFound, member_merge.MergeRefused, member_merge.SameMember)
def merge_member(args: dict[str, Any], member_id: int) -> member_merge.MergeOutcome:
    """把另一位会员并入路径中的会员（仅管理员）：积分（保留到期日）、欠分、券、消费、车牌、标签、任务、
    微信账号等全部转入，被并入的会员停用；重复合并会被拒绝。记入审计日志。"""
    operator_id, at, client_ip = current_operator().id, mall_time(), request.remote_addr
    source_id = args["source_member_id"]
    return run_transaction(
        lambda session: member_merge.merge(
            session, member_id, source_id, operator_id=operator_id, at=at, client_ip=client_ip
        )
    )
