"""Advisors and their store's pool: members without an advisor, which store advisors may claim."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app import idempotency
from app.auth import BEARER_SECURITY, current_staff, staff_required
from app.db import run_transaction, transaction, utcnow
from app.errors import NotFound, raises
from app.models import StaffRole
from app.services import advisors
from wecom.schemas import ClaimOut, PoolArgs, PoolMemberOut

blp = Blueprint("advisor_pool", __name__, url_prefix="/api/staff/v1", description="导购：本门店待认领会员")
idempotency.enable(blp)


@blp.route("/pool/members", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.ADVISOR)
@blp.arguments(PoolArgs(), location="query")
@blp.response(200, PoolMemberOut(many=True))
def pool_members(args: dict[str, Any]) -> list[advisors.PoolMember]:
    """本门店还没有专属顾问的会员（按注册场景所属门店），按会员号分页"""
    with transaction() as session:
        return advisors.store_pool(
            session, current_staff(), after_member_id=args["after"], limit=args["limit"]
        )


@blp.route("/pool/members/<int:member_id>/claim", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.ADVISOR)
@blp.response(200, ClaimOut)
@raises(NotFound, advisors.MemberAlreadyAssigned)
def claim_member(member_id: int) -> dict[str, int]:
    """认领本门店待认领的会员，成为其专属顾问；已被他人认领时返回 409"""
    staff, at = current_staff(), utcnow()
    run_transaction(lambda session: advisors.claim_member(session, staff, member_id, at=at))
    return {"member_id": member_id, "advisor_id": staff.id}
