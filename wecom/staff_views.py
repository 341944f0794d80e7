"""Staff login through WeCom OAuth, and scanning a shopper's member code."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, Audience, current_staff, issue_token, staff_required
from app.db import transaction, utcnow
from app.extensions import extensions
from app.models import Member, StaffRole
from app.services import authentication, member_codes, members
from wecom.schemas import MemberCodeIn, MemberSummaryOut, StaffLoginOut, WeComLoginIn

blp = Blueprint("staff", __name__, url_prefix="/api/staff/v1", description="员工（企业微信）：登录与扫码")


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(WeComLoginIn)
@blp.response(200, StaffLoginOut)
def login(args: dict[str, Any]) -> dict[str, Any]:
    """用企业微信网页授权 code 登录；非本商场员工返回 403"""
    with transaction() as session:
        staff_member = authentication.staff_from_wecom_code(session, extensions().wecom, args["code"])
    token, expires_in = issue_token(Audience.STAFF, staff_member.id)
    return {"token": token, "expires_in": expires_in, "staff": staff_member}


@blp.route("/member-codes/verify", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@staff_required(StaffRole.STORE_STAFF, StaffRole.MANAGER)
@blp.arguments(MemberCodeIn)
@blp.response(200, MemberSummaryOut)
def verify_member_code(args: dict[str, Any]) -> Member:
    """扫描会员码：返回会员概要；每个会员码只能使用一次"""
    with transaction() as session:
        member = member_codes.redeem_member_code(
            session,
            extensions().member_code_signer,
            args["code"],
            staff_id=current_staff().id,
            at=utcnow(),
        )
        return members.member_profile(session, member.id)
